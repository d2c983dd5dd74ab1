"""Code written the way a user of herdcache writes it, type-checked with mypy --strict by
tests/test_typing.py (never run): every assert_type here is what a type checker must see."""

from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

from herdcache import CacheManager, Key, Policy

cache = CacheManager(redis_url=None, namespace="app", policies={"courses": Policy(ttl=1800, stale=300)})


@cache.cached("courses", tags=lambda org_id, semester=1: [f"org:{org_id}"])
async def fetch_courses(org_id: str, semester: int = 1) -> list[dict[str, int]]:
    return [{"semester": semester}]


@cache.cached("config", ttl=60)
def load_config(org_id: int, *, fresh: bool = False) -> dict[str, str]:
    return {"org": str(org_id)}


class Rooms:
    @cache.cached("rooms", ignore=["verbose"])
    def for_org(self, org_id: str, verbose: bool = False) -> list[str]:
        return [org_id]


async def async_use(key: Key) -> None:
    async with cache:
        assert_type(await fetch_courses("org-1"), list[dict[str, int]])
        assert_type(await fetch_courses(org_id="org-1", semester=2), list[dict[str, int]])
        assert_type(fetch_courses.key("org-1", semester=2), Key)
        assert_type(await fetch_courses.invalidate("org-1"), int)
        assert_type(await fetch_courses.warm("org-1"), list[dict[str, int]])
        assert_type(await fetch_courses.uncached("org-1"), list[dict[str, int]])
        assert_type(fetch_courses.resource, str)
        assert_type(await cache.get(key), Any)
        await cache.set(key, {"a": 1}, ttl=30, tags=["org:1"])
        assert_type(await cache.invalidate_tags("org:1"), int)
        assert_type(await cache.get_or_load(key, lambda: 1), Any)
        assert_type(cache.stats(), dict[str, Any])


def sync_use(key: Key) -> None:
    assert_type(load_config(1), dict[str, str])
    assert_type(load_config(1, fresh=True), dict[str, str])
    assert_type(load_config.key(1), Key)
    assert_type(load_config.invalidate(1), int)
    assert_type(load_config.warm(1), dict[str, str])
    assert_type(load_config.uncached(1), dict[str, str])
    assert_type(Rooms().for_org("org-1"), list[str])
    assert_type(Rooms().for_org.invalidate("org-1"), int)
    assert_type(cache.sync.get(key), Any)
    assert_type(cache.sync.delete(key), bool)
    assert_type(cache.key("courses", "org-1", semester=1), Key)
