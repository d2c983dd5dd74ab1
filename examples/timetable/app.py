"""A timetable backend that caches its database reads with herdcache.

    app = create_app()                      # settings from the environment (Settings.from_env)
    app = create_app(cache, Settings(...))  # your own CacheManager, e.g. with a ManualClock

Every read is a `@cache.cached` function with its own TTL (POLICIES) and tags
`org:<org>` plus `<resource>:<org>` for each table it reads, so a write invalidates
exactly the entries built from what it changed: a new room capacity drops that
organization's rooms, a new timetable config drops its config and its time slots.
The time slots carry no tags of their own for that: they are built from the config and
the departments (cached reads inside their loader), so they depend on those entries.
The read endpoints cache their encoded responses too (`cached_route`, under the same
resource names and tags, so the same invalidations drop them): a hit sends bytes, with an
ETag and Cache-Control. `GET /api/{org_id}/timetable-data` is everything a timetable
generator reads, the seven resources in one response.
The admin endpoints (`/api/cache/...`) need the `X-Admin-Token` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Optional

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel, Field

from herdcache import CacheManager, Policy
from herdcache.fastapi import admin_router, cached_route

from .data import Database

# Seconds each resource stays fresh; `stale` serves an expired value that much longer
# while one background refresh runs, so no request waits on the database after a TTL.
POLICIES = {
    "departments": Policy(ttl=2 * 3600, stale=600),
    "rooms": Policy(ttl=3600, stale=300),
    "courses": Policy(ttl=30 * 60, stale=300),
    "faculty": Policy(ttl=3600, stale=300),
    "students": Policy(ttl=30 * 60, stale=300),
    "config": Policy(ttl=24 * 3600, stale=3600),
    "timeslots": Policy(ttl=2 * 3600, stale=600),
}
# Responses that no single cached function stands behind.
ROUTE_POLICIES = {"timetable": Policy(ttl=30 * 60, stale=300)}
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@dataclass
class Settings:
    db_path: Optional[str] = None  # None: $TIMETABLE_DB, else a file in the temp directory
    db_latency: float = 0.0        # seconds added to every query (to see the cache work)
    query_latency: dict[str, float] = field(default_factory=dict)  # seconds per query name, instead
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    redis_url: Optional[str] = None  # None: the memory tier alone
    warm_org: Optional[str] = "org-1"  # loaded at startup; None to start cold

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            db_path=env.get("TIMETABLE_DB") or None,
            db_latency=float(env.get("TIMETABLE_DB_LATENCY_MS", "0")) / 1000,
            query_latency=_per_query(env.get("TIMETABLE_QUERY_MS", "")),
            admin_token=env.get("TIMETABLE_ADMIN_TOKEN") or secrets.token_urlsafe(16),
            redis_url=env.get("HERDCACHE_REDIS_URL") or None,
            warm_org=env.get("TIMETABLE_WARM_ORG", "org-1") or None,
        )


def _per_query(spec: str) -> dict[str, float]:
    """"courses=180,students=250" (ms) -> {"courses": 0.18, "students": 0.25}."""
    out = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, ms = item.partition("=")
        out[name.strip()] = float(ms) / 1000
    return out


def tagged(*tables: str):
    """Tags for a function of (org_id, ...): the org and each table read, per org."""
    return lambda org_id, *args, **params: [f"org:{org_id}", *(f"{t}:{org_id}" for t in tables)]


def cached_reads(cache: CacheManager, db: Database) -> SimpleNamespace:
    """The app's reads, each cached under its resource name."""

    @cache.cached("departments", tags=tagged("departments", "courses"))
    async def departments(org_id: str) -> list[dict]:
        return await db.select("departments", org_id)

    @cache.cached("rooms", tags=tagged("rooms"))
    async def rooms(org_id: str) -> list[dict]:
        return await db.select("rooms", org_id)

    @cache.cached("courses", tags=tagged("courses", "faculty"))
    async def courses(org_id: str, semester: int = 1) -> list[dict]:
        return await db.select("courses", org_id, semester)

    @cache.cached("faculty", tags=tagged("faculty"))
    async def faculty(org_id: str) -> list[dict]:
        return await db.select("faculty", org_id)

    @cache.cached("students", tags=tagged("students"))
    async def students(org_id: str) -> list[dict]:
        return await db.select("students", org_id)

    @cache.cached("config", tags=tagged("config"))
    async def config(org_id: str) -> dict:
        found = await db.config(org_id)
        if found is None:
            raise LookupError(org_id)  # nothing is cached for an unknown organization
        return found

    @cache.cached("timeslots", tags=tagged())
    async def timeslots(org_id: str) -> list[dict]:
        # Built from two other cached reads: usually no query at all. Reading them here
        # makes the time slots depend on them: whatever invalidates the config or the
        # departments (their tags, their resource, the key) invalidates the slots too.
        cfg, depts = await asyncio.gather(config(org_id), departments(org_id))
        hour, minute = map(int, cfg["day_start"].split(":"))
        starts = [hour * 60 + minute + i * cfg["slot_minutes"] for i in range(cfg["slots_per_day"])]
        return [{"department": d["code"], "day": day, "slot": i + 1, "start": f"{s // 60:02d}:{s % 60:02d}"}
                for d in depts for day in DAYS[:cfg["working_days"]] for i, s in enumerate(starts)]

    return SimpleNamespace(departments=departments, rooms=rooms, courses=courses, faculty=faculty,
                           students=students, config=config, timeslots=timeslots)


class RoomUpdate(BaseModel):
    capacity: int = Field(ge=1, le=10_000)


class ConfigUpdate(BaseModel):
    working_days: int = Field(ge=1, le=7)
    slots_per_day: int = Field(ge=1, le=16)


def create_app(cache: CacheManager | None = None, settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    own_cache = cache is None
    if cache is None:
        cache = CacheManager(redis_url=settings.redis_url, namespace="timetable",
                             policies={**POLICIES, **ROUTE_POLICIES},
                             max_concurrent_loads=8)  # at most 8 queries at once, however many misses
    db = Database(settings.db_path, latency=settings.db_latency, query_latency=settings.query_latency)
    reads = cached_reads(cache, db)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await asyncio.to_thread(db.create)
        await cache.start()
        if settings.warm_org:  # the busiest organization's resources, before the first request
            await asyncio.gather(*(cache.warm(name, settings.warm_org) for name in POLICIES))
        yield
        if own_cache:
            await cache.close()

    app = FastAPI(title="timetable (herdcache example)", lifespan=lifespan)
    app.state.cache, app.state.db, app.state.reads, app.state.settings = cache, db, reads, settings

    def require_admin(x_admin_token: str = Header("")) -> None:
        if not secrets.compare_digest(x_admin_token.encode(), settings.admin_token.encode()):
            raise HTTPException(403, "missing or wrong X-Admin-Token")

    app.include_router(admin_router(cache, dependencies=[Depends(require_admin)]), prefix="/api/cache")

    # Each read endpoint's response is cached under its function's resource and tags.
    @app.get("/api/{org_id}/departments")
    @cached_route(cache, "departments", tags=tagged("departments", "courses"))
    async def get_departments(org_id: str) -> list[dict]:
        return await reads.departments(org_id)

    @app.get("/api/{org_id}/rooms")
    @cached_route(cache, "rooms", tags=tagged("rooms"))
    async def get_rooms(org_id: str) -> list[dict]:
        return await reads.rooms(org_id)

    @app.get("/api/{org_id}/courses")
    @cached_route(cache, "courses", tags=tagged("courses", "faculty"))
    async def get_courses(org_id: str, semester: int = 1) -> list[dict]:
        return await reads.courses(org_id, semester)

    @app.get("/api/{org_id}/faculty")
    @cached_route(cache, "faculty", tags=tagged("faculty"))
    async def get_faculty(org_id: str) -> list[dict]:
        return await reads.faculty(org_id)

    @app.get("/api/{org_id}/students")
    @cached_route(cache, "students", tags=tagged("students"))
    async def get_students(org_id: str) -> list[dict]:
        return await reads.students(org_id)

    @app.get("/api/{org_id}/config")
    @cached_route(cache, "config", tags=tagged("config"))
    async def get_config(org_id: str) -> dict:
        try:
            return await reads.config(org_id)
        except LookupError:
            raise HTTPException(404, f"no organization {org_id!r}") from None  # a 404 is not cached

    @app.get("/api/{org_id}/timeslots")
    @cached_route(cache, "timeslots", tags=tagged())  # depends on reads.timeslots, read inside
    async def get_timeslots(org_id: str) -> list[dict]:
        try:
            return await reads.timeslots(org_id)
        except LookupError:
            raise HTTPException(404, f"no organization {org_id!r}") from None

    @app.get("/api/{org_id}/timetable-data")
    @cached_route(cache, "timetable",
                  tags=tagged("departments", "rooms", "courses", "faculty", "students", "config"))
    async def get_timetable_data(org_id: str, semester: int = 1) -> dict:
        """The seven resources a timetable is generated from, read at once."""
        try:
            names = ("departments", "rooms", "courses", "faculty", "students", "config", "timeslots")
            found = await asyncio.gather(
                reads.departments(org_id), reads.rooms(org_id), reads.courses(org_id, semester),
                reads.faculty(org_id), reads.students(org_id), reads.config(org_id), reads.timeslots(org_id))
        except LookupError:
            raise HTTPException(404, f"no organization {org_id!r}") from None
        return dict(zip(names, found))

    @app.put("/api/{org_id}/rooms/{room_id}")
    async def put_room(org_id: str, room_id: int, body: RoomUpdate) -> dict:
        if not await db.set_room_capacity(org_id, room_id, body.capacity):
            raise HTTPException(404, f"no room {room_id} in {org_id!r}")
        # After the write, never before: a read in between would cache the old row again.
        await cache.invalidate_tags(f"rooms:{org_id}")
        return {"id": room_id, "capacity": body.capacity}

    @app.put("/api/{org_id}/config")
    async def put_config(org_id: str, body: ConfigUpdate) -> dict:
        if not await db.set_config(org_id, body.working_days, body.slots_per_day):
            raise HTTPException(404, f"no organization {org_id!r}")
        await cache.invalidate_tags(f"config:{org_id}")  # the config, and what was built from it (the time slots)
        return await reads.config(org_id)

    return app
