"""Mistakes a type checker must catch in code using herdcache: tests/test_typing.py runs
mypy --strict on this file and expects an error on exactly the lines marked `# error`.
With a decorator that lost the function's signature, these would all pass."""

from __future__ import annotations

from herdcache import CacheManager

cache = CacheManager()


@cache.cached("courses")
async def fetch_courses(org_id: str, semester: int = 1) -> list[str]:
    return [org_id]


@cache.cached("config")
def load_config(org_id: int) -> dict[str, str]:
    return {}


@cache.cached("rooms", tags=42)  # error
def rooms(org_id: str) -> list[str]:
    return []


async def mistakes() -> None:
    await fetch_courses(42)  # error
    await fetch_courses("org-1", semester="2")  # error
    fetch_courses.key(organization="org-1")  # error
    count: str = await fetch_courses.invalidate("org-1")  # error
    courses: list[int] = await fetch_courses.warm("org-1")  # error
    config: list[str] = load_config(1)  # error
    load_config.warm("1")  # error
    load_config.key(1, 2)  # error
    fetched: str = await fetch_courses.uncached("org-1")  # error
    await cache.set("not a key", 1)  # error
