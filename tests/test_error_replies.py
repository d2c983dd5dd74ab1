"""Redis error replies, produced for real by real servers: counted per kind in
stats()["redis"]["error_replies"], the writes-failing rule (reply_errors.hpp: that many
writes in a row answered with an error, until one succeeds), its log lines, /health and
/metrics through the real FastAPI app. Reads never raise through any of it."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from herdcache import CacheManager, Policy
from herdcache.fastapi import admin_router

from background import eventually, subscribed

FAILING_AFTER = 3  # WriteHealth::kFailingAfter
VALUE = {"rows": [1, 2, 3]}


def manager(url: str, namespace: str) -> CacheManager:
    # memory=False: every get is a Redis read, so what Redis answers is what a get sees.
    return CacheManager(redis_url=url, namespace=namespace, policies={"r": Policy(ttl=600, memory=False)})


def client(cache: CacheManager) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(admin_router(cache, allow_unauthenticated=True), prefix="/admin")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def sample(text: str, family: str, **labels: str) -> float | None:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == family and s.labels == labels:
                return s.value
    return None


async def health(cache: CacheManager) -> tuple[int, dict]:
    async with client(cache) as c:
        r = await c.get("/admin/health")
    return r.status_code, r.json()["checks"]["redis"]


async def metrics(cache: CacheManager) -> str:
    async with client(cache) as c:
        return (await c.get("/admin/metrics")).text


def write_lines(caplog, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]


async def failing_writes(cache: CacheManager, n: int = FAILING_AFTER) -> None:
    """n writes, each answered by Redis (with an error): set() never raises for that."""
    for i in range(n):
        await cache.set(cache.key("r", f"w{i}"), VALUE)


async def test_readonly_replica_fails_writes_health_503_then_200(redis_factory, caplog):
    caplog.set_level(logging.INFO, logger="herdcache")
    primary, replica = redis_factory(), redis_factory()
    async with manager(replica.url, "ro") as cache:
        await subscribed(cache)  # /health is 200 only with the invalidation channel up
        key = cache.key("r", "k")
        await cache.set(key, VALUE)
        assert await cache.get(key) == VALUE
        assert (await health(cache))[0] == 200

        replica.command("REPLICAOF", "127.0.0.1", str(primary.port))  # a failover left us on a replica
        await failing_writes(cache)
        # A read does not raise: the value, or None once the replica has synced the primary's
        # empty dataset.
        assert await cache.get(key) in (VALUE, None)

        redis = cache.stats()["redis"]
        assert redis["error_replies"]["READONLY"] >= FAILING_AFTER
        assert redis["writes_failing"] is True and redis["writes_failing_episodes"] == 1
        assert redis["last_write_error"].startswith("READONLY")
        assert redis["connected"] is True and redis["circuit"] == "closed"  # the socket is fine
        status, check = await health(cache)
        assert status == 503 and check["ok"] is False and check["writes_failing"] is True
        text = await metrics(cache)
        assert sample(text, "herdcache_redis_writes_failing") == 1
        assert sample(text, "herdcache_redis_error_replies_total", kind="READONLY") >= FAILING_AFTER

        replica.command("REPLICAOF", "NO", "ONE")  # promoted: writes are taken again

        # No write of the app's: /health itself probes (once a second at most while writes
        # fail), so an instance a load balancer took out on its 503 comes back.
        async def healthy() -> bool:
            return (await health(cache))[0] == 200

        await eventually(healthy)
        assert int(replica.command("GET", "ro#probe")) >= 1  # the probe's write is what succeeded
        await cache.set(key, VALUE)
        assert await cache.get(key) == VALUE
        status, check = await health(cache)
        assert status == 200 and check["writes_failing"] is False and check["write_errors_in_a_row"] == 0
        assert sample(await metrics(cache), "herdcache_redis_writes_failing") == 0

    # Logged once per change of state, not once per failed write.
    assert len(write_lines(caplog, "redis writes failing")) == 1
    assert "READONLY" in write_lines(caplog, "redis writes failing")[0]
    assert len(write_lines(caplog, "redis writes succeed again")) == 1


async def test_oom_fails_writes_until_memory_is_given_back(redis_factory, caplog):
    caplog.set_level(logging.INFO, logger="herdcache")
    server = redis_factory()
    async with manager(server.url, "oom") as cache:
        await subscribed(cache)  # /health is 200 only with the invalidation channel up
        key = cache.key("r", "k")
        await cache.set(key, VALUE)
        server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
        server.command("CONFIG", "SET", "maxmemory", "1")
        try:
            await failing_writes(cache)
            assert await cache.get(key) == VALUE  # what is there is still read; no raise
            await cache.invalidate_tags("t")  # an invalidation is a write too; no raise
            redis = cache.stats()["redis"]
            assert redis["error_replies"]["OOM"] >= FAILING_AFTER
            assert redis["writes_failing"] is True and redis["last_write_error"].startswith("OOM")
            assert (await health(cache))[0] == 503
        finally:
            server.command("CONFIG", "SET", "maxmemory", "0")
        await cache.set(cache.key("r", "after"), VALUE)
        assert await cache.get(cache.key("r", "after")) == VALUE
        assert (await health(cache))[0] == 200
    assert len(write_lines(caplog, "redis writes failing")) == 1
    assert len(write_lines(caplog, "redis writes succeed again")) == 1


async def test_wrongtype_behind_our_back_is_a_miss_and_counted(redis_server):
    async with manager(redis_server.url, "wt") as cache:
        await subscribed(cache)  # /health is 200 only with the invalidation channel up
        key, other = cache.key("r", "k"), cache.key("r", "other")
        await cache.set(key, VALUE)
        assert await cache.get(key) == VALUE
        # Someone else's code puts a list where the entry was.
        redis_server.command("DEL", str(key))
        redis_server.command("RPUSH", str(key), "not", "an", "entry")
        assert await cache.get(key) is None  # a miss, counted as an error, never raised
        assert cache.stats()["redis"]["error_replies"]["WRONGTYPE"] >= 1
        assert cache.stats()["resources"]["r"]["errors"] >= 1

        # Writes of that one key fail; the rule says writes are failing when nothing else
        # succeeds in between, and the first write that succeeds ends it: another key's, or
        # the probe that reading the stats sends while it lasts (it may already have).
        for _ in range(FAILING_AFTER):
            await cache.set(key, VALUE)
        redis = cache.stats()["redis"]
        assert redis["writes_failing_episodes"] == 1
        assert redis["last_write_error"].startswith("WRONGTYPE")
        await cache.set(other, VALUE)
        assert cache.stats()["redis"]["writes_failing"] is False
        assert await cache.get(other) == VALUE
        assert redis_server.command("LRANGE", str(key), "0", "-1") == [b"not", b"an", b"entry"]  # left alone


async def test_noscript_after_every_flush_reruns_once_and_counts(redis_server):
    flushes = 5
    async with manager(redis_server.url, "ns") as cache:
        await subscribed(cache)  # /health is 200 only with the invalidation channel up
        # Loaded at connect (SCRIPT LOAD, answered before this write): by SHA from here on.
        await cache.set(cache.key("r", "warm"), VALUE)
        before = cache.stats()["redis"]
        for i in range(flushes):
            redis_server.command("SCRIPT", "FLUSH")
            key = cache.key("r", f"k{i}")
            await cache.set(key, {"i": i})  # by SHA: NOSCRIPT, then by source, reloaded
            assert await cache.get(key) == {"i": i}
        redis = cache.stats()["redis"]
        reloaded = redis["scripts_reloaded"] - before["scripts_reloaded"]
        # Every flush cost at least the write's re-run, and no call was re-run twice: a
        # set() and a get() run at most two scripts.
        assert flushes <= reloaded <= 2 * flushes
        assert "NOSCRIPT" not in before["error_replies"]
        assert redis["error_replies"]["NOSCRIPT"] == reloaded  # each NOSCRIPT answered by one re-run
        assert redis["writes_failing"] is False and redis["write_errors_in_a_row"] == 0
        assert (await health(cache))[0] == 200
        text = await metrics(cache)
        assert sample(text, "herdcache_redis_error_replies_total", kind="NOSCRIPT") == reloaded
        assert sample(text, "herdcache_redis_scripts_reloaded_total") == redis["scripts_reloaded"]
