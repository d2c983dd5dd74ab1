"""herdcache.fastapi.cached_route through real ASGI apps, on both tiers.

Time is a ManualClock: freshness (max-age) and staleness move with clock.advance, never
with sleeps. Two managers on one Redis stand for two instances of a service.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
from typing import Annotated

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from herdcache import CacheManager, ManualClock, Policy
from herdcache.fastapi import admin_router, cached_route

from background import eventually, settled, subscribed

TTL, STALE = 60.0, 30.0
POLICIES = {"rooms": Policy(ttl=TTL, stale=STALE, jitter=0), "plain": Policy(ttl=TTL, jitter=0)}


class Room(BaseModel):
    id: int
    name: str


class RoomOut(BaseModel):  # the response model leaves `secret` out
    id: int
    name: str


class RoomRow(RoomOut):
    secret: str = "hidden"


class Session:
    """A dependency-injected object (a database session): never part of a key."""


def session() -> Session:
    return Session()


def user_id(x_user: str = Header("anonymous")) -> str:
    return x_user


class Db:
    def __init__(self, label: str = "") -> None:
        self.label = label  # which instance's database made a row
        self.calls: list[tuple] = []
        self.gate: asyncio.Event | None = None  # set: loads wait for it

    async def rooms(self, *args) -> list[dict]:
        self.calls.append(args)
        if self.gate is not None:
            await self.gate.wait()
        return [{"id": i, "name": f"{self.label}{args[0]}-{i}-{len(self.calls)}", "secret": "s"} for i in range(3)]


def make_app(cache: CacheManager, db: Db, **options) -> FastAPI:
    app = FastAPI()

    @app.api_route("/api/{org_id}/rooms", methods=["GET", "HEAD", "POST"], response_model=list[RoomOut])
    @cached_route(cache, "rooms", tags=lambda org_id: [f"org:{org_id}"], vary=("accept-language",), **options)
    async def rooms(org_id: str, request: Request, db_session: Session = Depends(session), floor: int = 0):
        assert isinstance(db_session, Session) and isinstance(request, Request)
        return await db.rooms(org_id, floor)

    @app.get("/api/{org_id}/mine")
    @cached_route(cache, "plain", private=True)
    async def mine(org_id: str, user: Annotated[str, Depends(user_id)]) -> list[dict]:
        return await db.rooms(org_id, user)

    @app.get("/api/{org_id}/status")
    @cached_route(cache, "plain")
    async def status(org_id: str, response: Response, code: int = 200, cookie: bool = False) -> dict:
        await db.rooms(org_id, "status", code)
        response.status_code = code
        if cookie:
            response.set_cookie("session", "abc")
        return {"org": org_id}

    @app.get("/api/{org_id}/fails")
    @cached_route(cache, "plain")
    async def fails(org_id: str) -> dict:
        await db.rooms(org_id, "fails")
        raise HTTPException(404, f"no {org_id}")

    app.include_router(admin_router(cache, allow_unauthenticated=True), prefix="/api/cache")
    return app


@contextlib.asynccontextmanager
async def client_of(app: FastAPI):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def db():
    return Db()


@pytest.fixture
async def cache(tier, clock):
    async with tier.open(namespace="routes", policies=POLICIES, clock=clock) as m:
        yield m


@pytest.fixture
async def client(cache, db):
    async with client_of(make_app(cache, db)) as c:
        yield c


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


# --- what a hit replays ----------------------------------------------------------------


async def test_a_hit_replays_the_bytes_without_running_the_endpoint(client, db):
    first = await client.get("/api/o1/rooms")
    second = await client.get("/api/o1/rooms")
    assert first.status_code == second.status_code == 200
    assert len(db.calls) == 1
    assert second.content == first.content
    assert second.json() == [{"id": i, "name": f"o1-{i}-1"} for i in range(3)]  # the response model applied
    assert second.headers["content-type"] == "application/json"
    assert second.headers["content-length"] == str(len(first.content))


async def test_the_etag_is_a_strong_hash_of_the_body(client):
    reply = await client.get("/api/o1/rooms")
    assert reply.headers["etag"] == etag_of(reply.content)
    assert not reply.headers["etag"].startswith("W/")


@pytest.mark.parametrize("private, visibility", [(False, "public"), (True, "private")])
async def test_cache_control_says_the_seconds_fresh_left_and_the_stale_window(cache, db, clock, private, visibility):
    async with client_of(make_app(cache, db, private=private)) as client:
        assert (await client.get("/api/o1/rooms")).headers["cache-control"] == \
            f"{visibility}, max-age={int(TTL)}, stale-while-revalidate={int(STALE)}"
        clock.advance(20.5)
        assert (await client.get("/api/o1/rooms")).headers["cache-control"] == \
            f"{visibility}, max-age=39, stale-while-revalidate={int(STALE)}"


async def test_no_stale_window_no_stale_while_revalidate(client):
    assert (await client.get("/api/o1/status")).headers["cache-control"] == f"public, max-age={int(TTL)}"
    assert (await client.get("/api/o1/mine")).headers["cache-control"] == f"private, max-age={int(TTL)}"


async def test_head_gets_the_headers_and_no_body(client, db):
    full = await client.get("/api/o1/rooms")
    head = await client.head("/api/o1/rooms")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == full.headers["etag"]
    assert head.headers["content-length"] == str(len(full.content))
    assert len(db.calls) == 1


# --- conditional requests --------------------------------------------------------------


@pytest.mark.parametrize("header", ["{etag}", 'W/{etag}', '"other", {etag}', "*"])
async def test_if_none_match_gets_304_with_no_body(client, db, header):
    etag = (await client.get("/api/o1/rooms")).headers["etag"]
    reply = await client.get("/api/o1/rooms", headers={"if-none-match": header.format(etag=etag)})
    assert reply.status_code == 304 and reply.content == b""
    assert reply.headers["etag"] == etag
    assert reply.headers["cache-control"].startswith("public, max-age=")
    assert reply.headers["vary"] == "accept-language"
    assert "content-type" not in reply.headers
    assert len(db.calls) == 1


async def test_a_cold_conditional_request_loads_and_answers_304_for_the_same_body(client, db, cache):
    etag = (await client.get("/api/o1/status")).headers["etag"]  # the body is the same every load
    await cache.invalidate("plain")
    reply = await client.get("/api/o1/status", headers={"if-none-match": etag})
    assert reply.status_code == 304 and len(db.calls) == 2


async def test_a_stale_etag_gets_the_new_body(client):
    old = await client.get("/api/o1/rooms")
    await client.post("/api/cache/invalidate", json={"tags": ["org:o1"]})
    new = await client.get("/api/o1/rooms", headers={"if-none-match": old.headers["etag"]})
    assert new.status_code == 200 and new.content != old.content
    assert new.headers["etag"] == etag_of(new.content) != old.headers["etag"]


async def test_a_clients_no_cache_does_not_make_the_database_work(client, db):
    await client.get("/api/o1/rooms")
    for header in ("no-cache", "no-store", "max-age=0"):
        assert (await client.get("/api/o1/rooms", headers={"cache-control": header, "pragma": "no-cache"})).status_code == 200
    assert len(db.calls) == 1


# --- keys ------------------------------------------------------------------------------


async def test_each_path_and_query_value_is_its_own_entry(client, db):
    a = (await client.get("/api/o1/rooms")).json()
    b = (await client.get("/api/o2/rooms")).json()
    c = (await client.get("/api/o1/rooms?floor=2")).json()
    assert (await client.get("/api/o1/rooms?floor=0")).json() == a  # the default is bound: one key
    assert db.calls == [("o1", 0), ("o2", 0), ("o1", 2)]
    assert len({str(x) for x in (a, b, c)}) == 3


async def test_a_plain_dependency_value_is_part_of_the_key_and_a_session_is_not(client, db, cache):
    alice = await client.get("/api/o1/mine", headers={"x-user": "alice"})
    bob = await client.get("/api/o1/mine", headers={"x-user": "bob"})
    assert (await client.get("/api/o1/mine", headers={"x-user": "alice"})).content == alice.content
    assert alice.content != bob.content and len(db.calls) == 2
    # rooms() takes a Session from a dependency: left out, so one entry serves every request
    await client.get("/api/o1/rooms")
    await client.get("/api/o1/rooms")
    assert len(db.calls) == 3
    assert await cache.invalidate("plain", "o1", "alice") == 1  # the key: resource, org_id, user


async def test_vary_headers_are_part_of_the_key(client, db):
    en = await client.get("/api/o1/rooms", headers={"accept-language": "en"})
    de = await client.get("/api/o1/rooms", headers={"accept-language": "de"})
    none = await client.get("/api/o1/rooms")
    assert (await client.get("/api/o1/rooms", headers={"accept-language": "en"})).content == en.content
    assert len(db.calls) == 3
    assert {en.headers["vary"], de.headers["vary"], none.headers["vary"]} == {"accept-language"}


# --- what is not cached ----------------------------------------------------------------


async def test_errors_are_not_cached(client, db):
    for _ in range(2):
        reply = await client.get("/api/o1/fails")
        assert reply.status_code == 404 and reply.json() == {"detail": "no o1"}
        assert "etag" not in reply.headers and "cache-control" not in reply.headers
    assert len(db.calls) == 2


@pytest.mark.parametrize("query", ["code=201", "code=203", "cookie=true"])
async def test_only_200s_without_cookies_are_cached(client, db, query):
    for _ in range(2):
        reply = await client.get(f"/api/o1/status?{query}")
        assert reply.status_code in (200, 201, 203) and "etag" not in reply.headers
    assert len(db.calls) == 2
    await client.get("/api/o1/status")
    await client.get("/api/o1/status")
    assert len(db.calls) == 3


async def test_posts_are_not_cached(client, db):
    await client.get("/api/o1/rooms")
    for _ in range(2):
        reply = await client.post("/api/o1/rooms")
        assert reply.status_code == 200 and "etag" not in reply.headers
    assert len(db.calls) == 3


async def concurrently(client: httpx.AsyncClient, db: Db, path: str, n: int) -> list[httpx.Response]:
    """n requests at once, all arriving while the first load is held at the database."""
    db.gate = asyncio.Event()
    replies = asyncio.gather(*(client.get(path) for _ in range(n)))
    await eventually(lambda: db.calls)
    db.gate.set()
    return await replies


async def test_a_failure_reaches_every_coalesced_request_and_nothing_is_cached(client, db):
    replies = await concurrently(client, db, "/api/o1/fails", 10)
    assert {r.status_code for r in replies} == {404}
    assert len(db.calls) == 1


# --- coalescing, freshness -------------------------------------------------------------


async def test_fifty_cold_requests_run_the_endpoint_once(client, db):
    replies = await concurrently(client, db, "/api/o1/rooms", 50)
    assert {r.status_code for r in replies} == {200}
    assert len({r.content for r in replies}) == 1 and len({r.headers["etag"] for r in replies}) == 1
    assert len(db.calls) == 1


async def test_a_stale_entry_is_served_while_one_refresh_runs(client, db, clock, cache):
    first = await client.get("/api/o1/rooms")
    clock.advance(TTL + 1)  # stale, inside the stale window
    stale = await client.get("/api/o1/rooms")
    assert stale.content == first.content
    assert cache.stats()["resources"]["rooms"]["stale_served"] == 1
    assert stale.headers["cache-control"] == f"public, max-age=0, stale-while-revalidate={int(STALE)}"
    await settled(cache)
    fresh = await client.get("/api/o1/rooms")
    assert len(db.calls) == 2 and fresh.content != first.content
    assert fresh.headers["cache-control"] == f"public, max-age={int(TTL)}, stale-while-revalidate={int(STALE)}"


async def test_a_refresh_runs_before_the_stale_requests_dependencies_are_torn_down(cache, db, clock):
    events: list[str] = []

    async def tracked_session():
        events.append("opened")
        yield Session()
        events.append("closed")

    app = FastAPI()

    @app.get("/api/{org_id}/rooms")
    @cached_route(cache, "rooms")
    async def rooms(org_id: str, db_session: Session = Depends(tracked_session)) -> list[dict]:
        events.append("load")
        return await db.rooms(org_id)

    async with client_of(app) as client:
        await client.get("/api/o1/rooms")
        assert events == ["opened", "load", "closed"]
        clock.advance(TTL + 1)
        db.gate = asyncio.Event()
        stale = asyncio.create_task(client.get("/api/o1/rooms"))
        await eventually(lambda: len(db.calls) == 2)  # the refresh is loading
        assert events[3:] == ["opened", "load"]  # the stale request's session is still open
        db.gate.set()
        assert (await stale).status_code == 200
        assert events[3:] == ["opened", "load", "closed"]


async def test_past_the_stale_window_the_request_waits_for_the_load(client, db, clock):
    first = await client.get("/api/o1/rooms")
    clock.advance(TTL + STALE + 1)
    again = await client.get("/api/o1/rooms")
    assert again.content != first.content and len(db.calls) == 2


# --- invalidation ----------------------------------------------------------------------


async def test_invalidation_by_tag_prefix_and_pattern_reaches_route_entries(client, db, cache):
    async def loads_after(invalidate) -> int:
        await client.get("/api/o1/rooms")
        before = len(db.calls)
        await invalidate()
        await client.get("/api/o1/rooms")
        return len(db.calls) - before

    assert await loads_after(lambda: cache.invalidate_tags("org:o1")) == 1
    assert await loads_after(lambda: cache.invalidate("rooms", "o1")) == 1
    assert await loads_after(lambda: cache.invalidate_pattern("rooms:o1:*")) == 1
    assert await loads_after(lambda: cache.invalidate("rooms", "o2")) == 0
    assert await loads_after(lambda: client.post("/api/cache/invalidate", json={"resource": "rooms", "args": ["o1"]})) == 1
    assert await loads_after(lambda: client.post("/api/cache/invalidate", json={"tags": ["org:o1"]})) == 1
    assert await loads_after(cache.clear) == 1


async def test_the_admin_router_knows_a_resource_only_a_route_caches(cache, db):
    app = FastAPI()

    @app.get("/pages/{name}")
    @cached_route(cache, "pages")  # no policy, no cached function
    async def pages(name: str) -> dict:
        return {"name": name, "version": len(await db.rooms(name))}

    app.include_router(admin_router(cache, allow_unauthenticated=True), prefix="/api/cache")
    async with client_of(app) as client:
        await client.get("/pages/home")
        reply = await client.post("/api/cache/invalidate", json={"resource": "pages", "args": ["home"]})
        assert reply.status_code == 200 and reply.json()["invalidated"] == 1
        await client.get("/pages/home")
    assert len(db.calls) == 2


async def test_a_cached_function_of_the_same_resource_is_invalidated_with_the_route(cache, db):
    @cache.cached("rooms", tags=lambda org_id: [f"org:{org_id}"])
    async def fetch_rooms(org_id: str) -> list[dict]:
        return await db.rooms(org_id, "fn")

    app = FastAPI()

    @app.get("/api/{org_id}/rooms")
    @cached_route(cache, "rooms", tags=lambda org_id: [f"org:{org_id}"])
    async def rooms(org_id: str) -> list[dict]:
        return await fetch_rooms(org_id)

    app.include_router(admin_router(cache, allow_unauthenticated=True), prefix="/api/cache")
    async with client_of(app) as client:
        await client.get("/api/o1/rooms")
        assert (await fetch_rooms("o1"))[0]["name"] == "o1-0-1"  # a separate entry, filled by the route's run
        # the admin router binds args to the registered function, then invalidates the prefix
        reply = await client.post("/api/cache/invalidate", json={"resource": "rooms", "args": ["o1"]})
        assert reply.json()["invalidated"] == 2
        assert (await client.get("/api/o1/rooms")).json()[0]["name"] == "o1-0-2"
        assert await fetch_rooms.invalidate("o1") == 2


# --- encoding: what FastAPI would have sent --------------------------------------------


class IndentedJSON(JSONResponse):
    media_type = "application/vnd.indented+json"

    def render(self, content) -> bytes:
        return json.dumps(content, indent=1).encode()


def encoding_app(cache: CacheManager | None) -> FastAPI:
    """The same routes cached (cache given) or not: their responses must be byte-identical."""
    wrap = (lambda name: cached_route(cache, name)) if cache is not None else (lambda name: (lambda fn: fn))
    router = APIRouter(prefix="/v1", default_response_class=IndentedJSON)
    app = FastAPI()

    @app.get("/model", response_model=list[RoomOut])
    @wrap("model")
    async def model() -> list[RoomRow]:
        return [RoomRow(id=1, name="a"), RoomRow(id=2, name="ü")]

    @app.get("/annotated")
    @wrap("annotated")
    async def annotated() -> list[Room]:
        return [Room(id=1, name="a")]

    @app.get("/plain")
    @wrap("plain")
    def plain(response: Response) -> dict:  # a blocking endpoint; a header set on Response
        response.headers["x-extra"] = "1"
        return {"a": [1, 2.5, None, "é"]}

    @app.get("/text", response_class=PlainTextResponse)
    @wrap("text")
    async def text() -> str:
        return "hello"

    @app.get("/returned")
    @wrap("returned")
    async def returned() -> Response:
        return Response(b"\x00\xffbinary", media_type="application/octet-stream", headers={"x-r": "1"})

    @router.get("/indented")
    @wrap("indented")
    async def indented(org: str = "o") -> dict:
        return {"b": 1, "org": org}

    app.include_router(router)
    return app


@pytest.mark.parametrize("path", ["/model", "/annotated", "/plain", "/text", "/returned", "/v1/indented"])
async def test_a_cached_response_is_what_the_route_sends_uncached(cache, path):
    added = {"etag", "cache-control"}
    async with client_of(encoding_app(None)) as plain, client_of(encoding_app(cache)) as cached:
        expected = await plain.get(path)
        for attempt in range(2):  # the miss, then the hit
            got = await cached.get(path)
            assert got.status_code == expected.status_code == 200
            assert got.content == expected.content
            assert {k: v for k, v in got.headers.items() if k not in added} == dict(expected.headers), attempt


async def test_the_openapi_schema_is_the_uncached_routes(cache):
    assert encoding_app(cache).openapi() == encoding_app(None).openapi()


async def test_a_route_without_a_path_operation_says_so(cache):
    endpoint = cached_route(cache, "rooms")(lambda: None)
    request = Request({"type": "http", "method": "GET", "headers": [], "path": "/", "query_string": b""})
    with pytest.raises(RuntimeError, match="under a FastAPI path operation"):
        await endpoint(_herdcache_request=request, _herdcache_response=Response())


def test_arguments_are_checked_when_decorating(cache):
    with pytest.raises(ValueError, match="vary names request headers"):
        cached_route(cache, "rooms", vary=("*",))
    with pytest.raises(ValueError, match="tags must be non-empty"):
        cached_route(cache, "rooms", tags=[""])

    async def stream():
        yield b"x"

    with pytest.raises(TypeError, match="streams"):
        cached_route(cache, "rooms")(stream)


# --- two instances on one Redis ----------------------------------------------------------


@pytest.fixture
async def two_apps(redis_url, clock):
    async with CacheManager(redis_url, namespace="routes", policies=POLICIES, clock=clock) as a, \
            CacheManager(redis_url, namespace="routes", policies=POLICIES, clock=clock) as b:
        await subscribed(a, b)
        db_a, db_b = Db("a:"), Db("b:")
        async with client_of(make_app(a, db_a)) as ca, client_of(make_app(b, db_b)) as cb:
            yield (a, ca, db_a), (b, cb, db_b)


async def test_a_second_instance_replays_the_first_ones_response_from_redis(two_apps):
    (a, ca, db_a), (b, cb, db_b) = two_apps
    first = await ca.get("/api/o1/rooms")
    await settled(a)
    second = await cb.get("/api/o1/rooms")
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
    assert (await cb.get("/api/o1/rooms", headers={"if-none-match": first.headers["etag"]})).status_code == 304
    assert (len(db_a.calls), len(db_b.calls)) == (1, 0)


async def test_cold_requests_on_two_instances_run_the_endpoint_once(two_apps):
    (a, ca, db_a), (b, cb, db_b) = two_apps
    db_a.gate = asyncio.Event()
    replies = asyncio.gather(*(ca.get("/api/o1/rooms") for _ in range(25)))
    await eventually(lambda: db_a.calls)
    replies_b = asyncio.gather(*(cb.get("/api/o1/rooms") for _ in range(25)))
    await asyncio.sleep(0)
    db_a.gate.set()
    everything = [*await replies, *await replies_b]
    assert len({r.content for r in everything}) == 1
    assert (len(db_a.calls), len(db_b.calls)) == (1, 0)


async def test_an_invalidation_on_one_instance_reaches_the_others_route_entries(two_apps):
    (a, ca, db_a), (b, cb, db_b) = two_apps
    await ca.get("/api/o1/rooms")
    await settled(a)
    await cb.get("/api/o1/rooms")  # now in b's memory tier too
    assert (len(db_a.calls), len(db_b.calls)) == (1, 0)
    assert (await ca.post("/api/cache/invalidate", json={"tags": ["org:o1"]})).status_code == 200

    async def b_loaded_again() -> bool:
        await cb.get("/api/o1/rooms")
        return len(db_b.calls) == 1

    await eventually(b_loaded_again)


async def test_a_resource_kept_out_of_memory_is_replayed_from_redis_with_its_freshness(redis_url, clock, db):
    policies = {**POLICIES, "rooms": Policy(ttl=TTL, stale=STALE, jitter=0, memory=False)}
    async with CacheManager(redis_url, namespace="nomem", policies=policies, clock=clock) as cache:
        await subscribed(cache)
        async with client_of(make_app(cache, db)) as client:
            first = await client.get("/api/o1/rooms")
            await settled(cache)
            clock.advance(10.5)
            again = await client.get("/api/o1/rooms")
            assert cache.stats()["resources"]["rooms"]["redis"]["redis_hits"] == 1
    assert again.content == first.content and len(db.calls) == 1
    assert again.headers["cache-control"] == f"public, max-age=49, stale-while-revalidate={int(STALE)}"


@pytest.mark.parametrize("command", [["--resource", "rooms", "o1"], ["--tags", "org:o1"], ["--pattern", "rooms:o1:*"]])
async def test_the_command_line_invalidates_route_entries_in_every_instance(two_apps, redis_url, command):
    from herdcache.cli import main

    (a, ca, db_a), (b, cb, db_b) = two_apps
    await ca.get("/api/o1/rooms")
    await settled(a)
    old = (await cb.get("/api/o1/rooms")).content  # in both memory tiers now
    assert await asyncio.to_thread(main, ["--redis-url", redis_url, "--namespace", "routes", "invalidate", *command]) == 0

    async def both_serve_a_new_body() -> bool:
        replies = [await ca.get("/api/o1/rooms"), await cb.get("/api/o1/rooms")]
        return all(r.content != old for r in replies)

    await eventually(both_serve_a_new_body)
    assert len(db_a.calls) + len(db_b.calls) == 2  # one load after the invalidation, across both


async def test_a_binary_body_crosses_redis_intact(redis_url):
    async with CacheManager(redis_url, namespace="bin") as a, CacheManager(redis_url, namespace="bin") as b:
        await subscribed(a, b)
        async with client_of(encoding_app(a)) as ca, client_of(encoding_app(b)) as cb:
            first = await ca.get("/returned")
            await settled(a)
            assert b.stats()["resources"].get("returned", {}).get("loads", 0) == 0
            second = await cb.get("/returned")
            assert second.content == first.content == b"\x00\xffbinary"
            assert b.stats()["resources"]["returned"]["redis"]["redis_hits"] == 1


# --- over a socket -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def served(app: FastAPI):
    """uvicorn serving `app` on a free loopback port, in this event loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_through_uvicorn_over_a_socket(cache, db):
    async with served(make_app(cache, db)) as url, httpx.AsyncClient(base_url=url) as client:
        first = await client.get("/api/o1/rooms")
        head = await client.head("/api/o1/rooms")
        not_modified = await client.get("/api/o1/rooms", headers={"if-none-match": first.headers["etag"]})
    assert first.status_code == 200 and first.headers["etag"] == etag_of(first.content)
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == first.headers["etag"]
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert len(db.calls) == 1
