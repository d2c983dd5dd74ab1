"""The FastAPI app bench_http.py serves with uvicorn: one route per case, every route
answering the same 2,000-row JSON list (the floor sends it pre-encoded).

BENCH_REDIS_URL set: herdcache has that Redis behind its memory tier, fastapi-cache2 uses
its RedisBackend and cashews its redis backend; unset: herdcache's memory tier alone,
fastapi-cache2's InMemoryBackend and cashews' mem:// backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from cashews import cache as cashews
from fastapi import FastAPI, Response
from fastapi_cache import FastAPICache
from fastapi_cache.decorator import cache as fastapi_cache2
from pydantic import BaseModel, TypeAdapter

from herdcache import CacheManager, Policy
from herdcache.fastapi import cached_route

ROWS = 2000
REDIS_URL = os.environ.get("BENCH_REDIS_URL") or None
HOUR = 3600


class Row(BaseModel):
    id: int
    code: str
    title: str
    credits: int
    department: str
    sections: int
    faculty: str


def query_rows() -> list[dict]:
    """The "database": builds the rows anew for each load, as a driver would."""
    return [{"id": i, "code": f"C{i:05d}", "title": f"Course {i % 400}", "credits": 2 + i % 3,
             "department": f"D{i % 40:02d}", "sections": 1 + i % 4, "faculty": f"Faculty {i % 215}"}
            for i in range(ROWS)]


_ROWS = TypeAdapter(list[Row])
ENCODED = _ROWS.dump_json(_ROWS.validate_python(query_rows()))  # what FastAPI sends for list[Row]
cache = CacheManager(REDIS_URL, namespace="bench-http", policies={"rows": Policy(ttl=HOUR),
                                                                   "route": Policy(ttl=HOUR, stale=60)})


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    if REDIS_URL:
        import redis.asyncio
        from fastapi_cache.backends.redis import RedisBackend

        FastAPICache.init(RedisBackend(redis.asyncio.from_url(REDIS_URL)), prefix="fc2")
        cashews.setup(REDIS_URL)
    else:
        from fastapi_cache.backends.inmemory import InMemoryBackend

        FastAPICache.init(InMemoryBackend(), prefix="fc2")
        cashews.setup("mem://")
    async with cache:
        yield
    await cashews.close()


app = FastAPI(lifespan=lifespan)


class InFlight:
    """Counts the requests in progress, so /idle can wait for the ones wrk left behind: a
    slow case's requests run on after wrk stops and would eat into the next case's run."""

    def __init__(self, app) -> None:
        self.app = app
        self.count = 0
        self.changed: asyncio.Condition | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.changed = self.changed or asyncio.Condition()
        self.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.count -= 1
            async with self.changed:
                self.changed.notify_all()

    async def idle(self) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: self.count <= 1), 120)


app.add_middleware(InFlight)
in_flight: InFlight | None = None


@app.get("/idle")
async def idle() -> dict:
    """Answers once this is the only request in progress."""
    global in_flight
    if in_flight is None:  # the middleware instance Starlette built
        layer = app.middleware_stack
        while not isinstance(layer, InFlight):
            layer = layer.app
        in_flight = layer
    await in_flight.idle()
    return {"idle": True}


@app.get("/floor")
async def floor() -> Response:
    return Response(ENCODED, media_type="application/json")


@app.get("/uncached")
async def uncached() -> list[Row]:
    return query_rows()


@cache.cached("rows")
async def fetch_rows() -> list[dict]:
    return query_rows()


@app.get("/function")
async def function_cached() -> list[Row]:
    return await fetch_rows()


@app.get("/route")
@cached_route(cache, "route")
async def route_cached() -> list[Row]:
    return query_rows()


@app.get("/fastapi-cache2")
@fastapi_cache2(expire=HOUR)
async def fastapi_cache2_cached() -> list[Row]:
    return query_rows()


@app.get("/cashews")
@cashews(ttl=HOUR)
async def cashews_cached() -> list[Row]:
    return query_rows()
