"""herdcache.fastapi.admin_router through a real ASGI app (httpx + ASGITransport)."""

from __future__ import annotations


import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from herdcache import CacheManager, Policy
from herdcache.fastapi import admin_router
from herdcache.prometheus import HerdcacheCollector

from background import eventually

TOKEN = "s3cret"
AUTH = {"X-Admin-Token": TOKEN}


def require_admin(x_admin_token: str | None = Header(None)) -> None:
    if x_admin_token is None:
        raise HTTPException(401, "missing X-Admin-Token")
    if x_admin_token != TOKEN:
        raise HTTPException(403, "bad X-Admin-Token")


class Loads:
    """The fake database: counts loader calls per resource."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.fail = False


def register(cache: CacheManager, db: Loads) -> dict:
    @cache.cached("courses", tags=lambda org_id, semester=1: [f"org:{org_id}"])
    async def fetch_courses(org_id: str, semester: int = 1) -> list:
        db.calls.append(("courses", org_id, semester))
        if db.fail:
            raise ConnectionError("database down")
        return [f"{org_id}-{semester}-{len(db.calls)}"]

    @cache.cached("rooms", tags=lambda org_id: [f"org:{org_id}", "rooms"])
    def fetch_rooms(org_id: int) -> list:  # a blocking loader
        db.calls.append(("rooms", org_id))
        return [org_id, len(db.calls)]

    return {"courses": fetch_courses, "rooms": fetch_rooms}


def make_app(cache: CacheManager, **kwargs) -> FastAPI:
    app = FastAPI()
    kwargs.setdefault("dependencies", [Depends(require_admin)])
    app.include_router(admin_router(cache, **kwargs), prefix="/api/cache")
    return app


@pytest.fixture
async def cache():
    async with CacheManager(policies={"courses": Policy(ttl=60), "rooms": Policy(ttl=60)}) as c:
        yield c


@pytest.fixture
def db():
    return Loads()


@pytest.fixture
def fns(cache, db):
    return register(cache, db)


@pytest.fixture
async def client(cache, fns):
    transport = httpx.ASGITransport(app=make_app(cache))
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=AUTH) as c:
        yield c


# --- building the router -------------------------------------------------------------


def test_refuses_to_build_without_dependencies(cache):
    with pytest.raises(ValueError, match="allow_unauthenticated=True"):
        admin_router(cache)
    with pytest.raises(ValueError, match="dependencies"):
        admin_router(cache, dependencies=[])
    assert admin_router(cache, allow_unauthenticated=True).routes


async def test_allow_unauthenticated_serves_without_credentials(cache):
    app = make_app(cache, dependencies=None, allow_unauthenticated=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        assert (await c.get("/api/cache/stats")).status_code == 200


# --- auth ------------------------------------------------------------------------------

ENDPOINTS = [
    ("POST", "/api/cache/invalidate", {"all": True}),
    ("GET", "/api/cache/stats", None),
    ("POST", "/api/cache/warm", {"resource": "courses", "args": ["o1"]}),
    ("GET", "/api/cache/health", None),
    ("GET", "/api/cache/metrics", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_every_endpoint_refuses_without_credentials(client, cache, db, method, path, body):
    key = cache.key("courses", "o1", 1)
    await cache.set(key, ["cached"])
    assert (await client.request(method, path, json=body, headers={"X-Admin-Token": ""})).status_code == 403
    del client.headers["X-Admin-Token"]
    assert (await client.request(method, path, json=body)).status_code == 401
    assert (await client.request(method, path, json=body, headers={"X-Admin-Token": "wrong"})).status_code == 403
    assert db.calls == [] and await cache.get(key) == ["cached"]  # nothing ran
    assert (await client.request(method, path, json=body, headers=AUTH)).status_code == 200


# --- invalidate ------------------------------------------------------------------------


async def test_invalidate_registered_resource_by_prefix(client, cache, fns):
    await fns["courses"]("o1", 1)
    await fns["courses"]("o1", 2)
    await fns["courses"]("o2", 1)
    r = await client.post("/api/cache/invalidate", json={"resource": "courses", "args": ["o1"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"mode": "resource", "invalidated": 2, "resource": "courses", "prefix": ["o1"],
                        "tags": None, "pattern": None, "rewarmed": None}
    assert await cache.get(fns["courses"].key("o1", 1)) is None
    assert await cache.get(fns["courses"].key("o2", 1)) is not None


async def test_invalidate_by_params_and_converts_to_annotations(client, cache, fns):
    fns["rooms"](7)
    fns["rooms"](8)
    # JSON "7" for an int parameter is the key of rooms(7), not of rooms("7").
    r = await client.post("/api/cache/invalidate", json={"resource": "rooms", "params": {"org_id": "7"}})
    assert r.json()["invalidated"] == 1 and r.json()["prefix"] == [7]
    assert await cache.get(fns["rooms"].key(7)) is None
    assert await cache.get(fns["rooms"].key(8)) is not None


async def test_invalidate_whole_resource(client, cache, fns):
    await fns["courses"]("o1")
    await fns["courses"]("o2")
    r = await client.post("/api/cache/invalidate", json={"resource": "courses"})
    assert r.json()["invalidated"] == 2


async def test_invalidate_unregistered_resource_by_raw_prefix(client, cache):
    await cache.set(cache.key("config", "o1", "x"), 1)
    await cache.set(cache.key("config", "o2"), 2)
    r = await client.post("/api/cache/invalidate", json={"resource": "config", "args": ["o1"]})
    assert r.json()["invalidated"] == 1
    assert await cache.get(cache.key("config", "o2")) == 2


async def test_invalidate_an_unknown_resource_is_a_404_that_names_the_known_ones(client, cache, fns):
    await fns["courses"]("o1")
    r = await client.post("/api/cache/invalidate", json={"resource": "course", "args": ["o1"]})
    assert r.status_code == 404
    assert "unknown resource 'course'" in r.json()["detail"] and "courses" in r.json()["detail"]
    assert cache.stats()["resources"]["courses"]["loads"] == 1
    await fns["courses"]("o1")
    assert cache.stats()["resources"]["courses"]["loads"] == 1  # nothing was invalidated


async def test_invalidate_tags(client, cache, fns):
    await fns["courses"]("o1")
    fns["rooms"](1)
    await fns["courses"]("o2")
    r = await client.post("/api/cache/invalidate", json={"tags": ["org:o1", "rooms"]})
    assert r.json()["mode"] == "tags" and r.json()["invalidated"] == 2
    assert await cache.get(fns["courses"].key("o2")) is not None


async def test_invalidate_pattern(client, cache, fns):
    await fns["courses"]("o1", 1)
    await fns["courses"]("o1", 2)
    fns["rooms"](1)
    r = await client.post("/api/cache/invalidate", json={"pattern": "courses:*"})
    assert r.json() == {"mode": "pattern", "invalidated": 2, "resource": None, "prefix": None,
                        "tags": None, "pattern": "courses:*", "rewarmed": None}
    assert await cache.get(fns["rooms"].key(1)) is not None


async def test_invalidate_all(client, cache, fns):
    await fns["courses"]("o1")
    fns["rooms"](1)
    r = await client.post("/api/cache/invalidate", json={"all": True})
    assert r.json()["mode"] == "all" and r.json()["invalidated"] == 2
    assert cache.stats()["memory_entries"] == 0


async def test_invalidate_rewarm_runs_the_loader_again(client, cache, db, fns):
    first = await fns["courses"]("o1", 2)
    r = await client.post("/api/cache/invalidate", json={"resource": "courses", "args": ["o1", 2], "rewarm": True})
    assert r.status_code == 200, r.text
    assert r.json()["invalidated"] == 1
    assert r.json()["rewarmed"] == str(fns["courses"].key("o1", 2))
    assert len(db.calls) == 2
    again = await fns["courses"]("o1", 2)
    assert again != first and len(db.calls) == 2  # the rewarmed value, no third load


# --- malformed bodies: 422 with the reason, never 500 ----------------------------------

BAD_INVALIDATE = {
    "not json": b"{nope",
    "nested past the recursion limit": b'{"resource": "x", "args": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "lone surrogate in resource": rb'{"resource": "x\ud800"}',
    "lone surrogate in args": rb'{"resource": "x", "args": [{"k": ["\udfff"]}]}',
    "lone surrogate in a param name": rb'{"resource": "courses", "params": {"\ud800": 1}}',
    "lone surrogate in a tag": rb'{"tags": ["\ud800"]}',
    "json array": [1, 2],
    "json string": "all",
    "null": None,
    "empty object": {},
    "all false only": {"all": False},
    "two modes": {"resource": "courses", "tags": ["t"]},
    "all with pattern": {"all": True, "pattern": "x*"},
    "args without resource": {"tags": ["t"], "args": [1]},
    "rewarm without resource": {"all": True, "rewarm": True},
    "the seed's old body": {"organization_id": "uuid", "resource_type": "rooms"},
    "resource not a string": {"resource": 5},
    "empty resource": {"resource": ""},
    "args not a list": {"resource": "courses", "args": "o1"},
    "params not an object": {"resource": "courses", "params": ["o1"]},
    "too many args": {"resource": "courses", "args": list(range(65))},
    "empty tags": {"tags": []},
    "empty tag": {"tags": [""]},
    "tag not a string": {"tags": [1]},
    "empty pattern": {"pattern": ""},
    "all not a bool": {"all": "yes please"},
    "unknown parameter": {"resource": "courses", "params": {"nope": 1}},
    "wrong type for annotation": {"resource": "rooms", "args": ["not-an-int"]},
    "too many arguments": {"resource": "rooms", "args": [1, 2]},
    "gap in the prefix": {"resource": "courses", "params": {"semester": 1}},
    "rewarm with a partial key": {"resource": "courses", "rewarm": True},
    "a resource the key format reserves ':' in": {"resource": "a:b"},
    "a resource the key format reserves '#' in": {"resource": "a#b", "args": [1]},
}


@pytest.mark.parametrize("body", BAD_INVALIDATE.values(), ids=BAD_INVALIDATE.keys())
async def test_malformed_invalidate_is_422(client, cache, fns, body):
    await fns["courses"]("o1")
    if isinstance(body, bytes):
        r = await client.post("/api/cache/invalidate", content=body, headers={"Content-Type": "application/json"})
    else:
        r = await client.post("/api/cache/invalidate", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]  # the reason, whatever produced it
    assert cache.stats()["memory_entries"] == 1  # nothing was invalidated


async def test_missing_and_non_json_bodies_are_422(client):
    for path in ("/api/cache/invalidate", "/api/cache/warm"):
        assert (await client.post(path)).status_code == 422
        r = await client.post(path, content=b"all=true", headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 422, r.text
        # Not JSON, not even UTF-8: the 422 echoes it escaped (it was a 500).
        r = await client.post(path, content=b"\xff\xfe{", headers={"Content-Type": "text/plain"})
        assert r.status_code == 422, r.text


async def test_422_names_the_reason(client):
    r = await client.post("/api/cache/invalidate", json={"resource": "courses", "tags": ["t"]})
    assert "exactly one of resource, tags, pattern or all" in r.text
    r = await client.post("/api/cache/warm", json={"resource": "rooms", "args": ["x"]})
    assert "org_id" in r.json()["detail"] and "integer" in r.json()["detail"]


# --- warm ------------------------------------------------------------------------------


async def test_warm_async_function(client, cache, db, fns):
    r = await client.post("/api/cache/warm", json={"resource": "courses", "args": ["o1"], "params": {"semester": 3}})
    assert r.status_code == 200, r.text
    assert r.json() == {"resource": "courses", "key": str(fns["courses"].key("o1", 3))}
    assert db.calls == [("courses", "o1", 3)]
    assert await cache.get(fns["courses"].key("o1", 3)) == ["o1-3-1"]


async def test_warm_sync_function_converts_arguments(client, cache, db, fns):
    r = await client.post("/api/cache/warm", json={"resource": "rooms", "params": {"org_id": "42"}})
    assert r.status_code == 200, r.text
    assert db.calls == [("rooms", 42)]
    assert fns["rooms"](42) == [42, 1] and len(db.calls) == 1  # served from the cache


async def test_warm_refreshes_an_existing_entry(client, cache, db, fns):
    await fns["courses"]("o1")
    await client.post("/api/cache/warm", json={"resource": "courses", "args": ["o1"]})
    assert len(db.calls) == 2 and await fns["courses"]("o1") == ["o1-1-2"]


async def test_warm_unknown_resource_is_404(client):
    r = await client.post("/api/cache/warm", json={"resource": "nope"})
    assert r.status_code == 404 and "nope" in r.json()["detail"]


BAD_WARM = {
    "missing resource": {"args": ["o1"]},
    "missing required argument": {"resource": "courses"},
    "too many arguments": {"resource": "courses", "args": ["o1", 1, 2]},
    "unknown parameter": {"resource": "courses", "args": ["o1"], "params": {"year": 1}},
    "argument twice": {"resource": "courses", "args": ["o1"], "params": {"org_id": "o1"}},
    "wrong type": {"resource": "courses", "args": [["o1"]]},
    "not finite": b'{"resource": "courses", "args": ["o1"], "params": {"semester": NaN}}',
    "lone surrogate": rb'{"resource": "courses", "args": ["\ud800"]}',
    "unknown field": {"resource": "courses", "args": ["o1"], "rewarm": True},
}


@pytest.mark.parametrize("body", BAD_WARM.values(), ids=BAD_WARM.keys())
async def test_malformed_warm_is_422(client, db, body):
    if isinstance(body, bytes):
        r = await client.post("/api/cache/warm", content=body, headers={"Content-Type": "application/json"})
    else:
        r = await client.post("/api/cache/warm", json=body)
    assert r.status_code == 422, r.text
    assert db.calls == []


async def test_warm_loader_failure_is_502_and_caches_nothing(client, cache, db, fns):
    db.fail = True
    r = await client.post("/api/cache/warm", json={"resource": "courses", "args": ["o1"]})
    assert r.status_code == 502
    assert "ConnectionError" in r.json()["detail"] and "database down" not in r.text
    assert await cache.get(fns["courses"].key("o1")) is None


# --- stats, health, metrics --------------------------------------------------------------


async def test_stats_per_resource_and_tier(client, fns):
    await fns["courses"]("o1")
    await fns["courses"]("o1")
    stats = (await client.get("/api/cache/stats")).json()
    courses = stats["resources"]["courses"]
    assert courses["hits"] == 1 and courses["misses"] == 1 and courses["loads"] == 1
    assert courses["memory"]["memory_hits"] == 1
    assert stats["redis"]["configured"] is False


async def test_health_memory_only_is_ok(client):
    r = await client.get("/api/cache/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    redis = r.json()["checks"]["redis"]
    assert redis["ok"] is True and redis["configured"] is False and redis["circuit"] == "disabled"


async def test_health_checks_hook(cache):
    state = {"listening": True}

    async def postgres() -> dict:
        return {"ok": state["listening"], "listening": state["listening"]}

    def broken() -> dict:
        raise RuntimeError("boom")

    app = make_app(cache, health_checks={"postgres": postgres})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=AUTH) as c:
        r = await c.get("/api/cache/health")
        assert r.status_code == 200 and r.json()["checks"]["postgres"] == {"ok": True, "listening": True}
        state["listening"] = False
        r = await c.get("/api/cache/health")
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable" and r.json()["checks"]["redis"]["ok"] is True
    app = make_app(cache, health_checks={"broken": broken})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=AUTH) as c:
        r = await c.get("/api/cache/health")
        assert r.status_code == 503 and r.json()["checks"]["broken"] == {"ok": False, "error": "RuntimeError"}


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams: dict, family: str, name: str | None = None, **labels) -> float:
    matches = [s.value for s in fams[family].samples if s.name == (name or family) and s.labels == labels]
    assert len(matches) == 1, (family, labels, fams[family].samples)
    return matches[0]


async def test_metrics_parse_as_prometheus_text(client, fns):
    await fns["courses"]("o1")
    await fns["courses"]("o1")
    await fns["courses"]("o1")
    fns["rooms"](1)
    r = await client.get("/api/cache/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    fams = families(r.text)
    assert fams["herdcache_hits"].type == "counter"
    assert sample(fams, "herdcache_hits", "herdcache_hits_total", resource="courses", tier="memory") == 2
    assert sample(fams, "herdcache_hits", "herdcache_hits_total", resource="courses", tier="redis") == 0
    assert sample(fams, "herdcache_misses", "herdcache_misses_total", resource="rooms", tier="memory") == 1
    assert sample(fams, "herdcache_loads", "herdcache_loads_total", resource="courses") == 1
    load = fams["herdcache_load_seconds"]
    assert load.type == "histogram"
    assert sample(fams, "herdcache_load_seconds", "herdcache_load_seconds_count", resource="rooms") == 1
    assert sample(fams, "herdcache_load_seconds", "herdcache_load_seconds_bucket", resource="rooms", le="+Inf") == 1
    bounds = [s for s in load.samples if s.name == "herdcache_load_seconds_bucket" and s.labels["resource"] == "rooms"]
    counts = [s.value for s in sorted(bounds, key=lambda s: float(s.labels["le"]))]
    assert counts == sorted(counts) and len(counts) == 16  # cumulative, 15 bounds and +Inf
    assert {"0.0005", "0.25", "30.0"} <= {s.labels["le"] for s in bounds}  # seconds, as Prometheus has them
    assert sample(fams, "herdcache_memory_entries") == 2
    assert sample(fams, "herdcache_redis_up") == 0
    assert sample(fams, "herdcache_redis_circuit", state="disabled") == 1


async def test_metrics_join_the_apps_registry(cache, fns):
    registry = CollectorRegistry()
    from prometheus_client import Counter

    requests = Counter("app_requests", "the app's own metric", registry=registry)
    requests.inc()
    app = make_app(cache, registry=registry)
    await fns["courses"]("o1")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=AUTH) as c:
        fams = families((await c.get("/api/cache/metrics")).text)
    assert sample(fams, "app_requests", "app_requests_total") == 1
    assert sample(fams, "herdcache_loads", "herdcache_loads_total", resource="courses") == 1


async def test_collector_registers_into_any_registry_once(cache, fns):
    registry = CollectorRegistry()
    registry.register(HerdcacheCollector(cache))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(HerdcacheCollector(cache))  # describe() exposes the names
    await fns["courses"]("o1")
    fams = families(generate_latest(registry).decode())
    assert sample(fams, "herdcache_misses", "herdcache_misses_total", resource="courses", tier="memory") == 1


def test_collector_exports_the_engines_other_redis_fields():
    class Stub:
        def stats(self) -> dict:
            return {"redis": {"configured": True, "connected": False, "latency_ms": 2.5, "circuit": "open",
                              "errors": 3, "reconnects": 4, "journal_pending": 5, "subscriber_connected": False}}

    registry = CollectorRegistry()
    registry.register(HerdcacheCollector(Stub()))
    fams = families(generate_latest(registry).decode())
    assert sample(fams, "herdcache_redis_up") == 0
    assert sample(fams, "herdcache_redis_latency_seconds") == 0.0025
    assert sample(fams, "herdcache_redis_circuit", state="open") == 1
    assert sample(fams, "herdcache_redis_circuit", state="closed") == 0
    assert sample(fams, "herdcache_redis_errors", "herdcache_redis_errors_total") == 3
    assert sample(fams, "herdcache_redis_reconnects", "herdcache_redis_reconnects_total") == 4
    assert sample(fams, "herdcache_redis_journal_pending") == 5
    assert sample(fams, "herdcache_redis_subscriber_connected") == 0
    assert fams["herdcache_redis_timeouts"].samples == []  # not reported: no sample


# --- OpenAPI ---------------------------------------------------------------------------


async def test_openapi_documents_the_endpoints(client):
    doc = (await client.get("/openapi.json")).json()
    paths = doc["paths"]
    assert set(paths) >= {f"/api/cache/{p}" for p in ("invalidate", "stats", "warm", "health", "metrics")}
    assert "post" in paths["/api/cache/invalidate"] and "post" in paths["/api/cache/warm"]
    schemas = doc["components"]["schemas"]
    assert {"InvalidateResult", "WarmResult", "HealthReport"} <= set(schemas)
    # The endpoints read their bodies themselves (after authentication): documented inline.
    bodies = {p: paths[f"/api/cache/{p}"]["post"]["requestBody"] for p in ("invalidate", "warm")}
    assert all(b["required"] for b in bodies.values())
    invalidate = bodies["invalidate"]["content"]["application/json"]["schema"]
    assert invalidate["title"] == "InvalidateRequest"
    assert set(invalidate["properties"]) == {"resource", "args", "params", "tags", "pattern", "all", "rewarm"}
    assert bodies["warm"]["content"]["application/json"]["schema"]["required"] == ["resource"]
    assert "413" in paths["/api/cache/invalidate"]["post"]["responses"]
    assert "404" in paths["/api/cache/warm"]["post"]["responses"]
    assert "503" in paths["/api/cache/health"]["get"]["responses"]
    assert "text/plain" in paths["/api/cache/metrics"]["get"]["responses"]["200"]["content"]


# --- against a real redis-server ---------------------------------------------------------


def redis_cache(redis_url: str, **kwargs) -> CacheManager:
    try:
        return CacheManager(redis_url=redis_url, **kwargs)
    except ValueError as exc:
        if "not available" in str(exc):
            pytest.skip("the Redis tier is not in this build yet")
        raise




@pytest.mark.redis
async def test_health_reports_redis_connected_and_latency(redis_url):
    async with redis_cache(redis_url, namespace="health") as cache:
        await cache.get(cache.key("r", 1))  # one round trip
        app = make_app(cache)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=AUTH) as c:
            r = await c.get("/api/cache/health")
            fams = families((await c.get("/api/cache/metrics")).text)
            stats = await c.get("/api/cache/stats")
    assert stats.status_code == 200 and stats.json()["redis"]["connected"] is True
    assert r.status_code == 200, r.text
    redis = r.json()["checks"]["redis"]
    assert redis["configured"] is True and redis["connected"] is True and redis["circuit"] == "closed"
    assert redis["latency_ms"] is not None and redis["latency_ms"] >= 0
    assert sample(fams, "herdcache_redis_up") == 1
    assert sample(fams, "herdcache_redis_circuit", state="closed") == 1


@pytest.mark.redis
async def test_health_is_503_when_redis_is_unreachable():
    async with redis_cache("redis://127.0.0.1:1", namespace="down") as cache:
        await cache.get(cache.key("r", 1))  # fails open: a miss, counted
        app = make_app(cache)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=AUTH) as c:
            r = await c.get("/api/cache/health")
    assert r.status_code == 503
    assert r.json()["checks"]["redis"]["connected"] is False


@pytest.mark.redis
async def test_invalidate_reaches_every_instance(redis_url):
    one, two = Loads(), Loads()
    async with redis_cache(redis_url, namespace="fleet") as a, redis_cache(redis_url, namespace="fleet") as b:
        fa, fb = register(a, one), register(b, two)
        await fa["courses"]("o1")
        await fb["courses"]("o1")  # now in both memory tiers
        app = make_app(a)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=AUTH) as c:
            r = await c.post("/api/cache/invalidate", json={"tags": ["org:o1"]})
        assert r.status_code == 200

        async def gone_from_b() -> bool:
            return await b.get(fb["courses"].key("o1")) is None

        await eventually(gone_from_b)
