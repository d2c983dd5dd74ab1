"""Two tiers against a real redis-server (started by the fixtures on a free port)."""

import asyncio
import concurrent.futures
import time

import pytest

from herdcache import CacheManager, ManualClock, Policy

from background import eventually, settled, subscribed

pytestmark = pytest.mark.redis

POLICIES = {"c": Policy(ttl=10, stale=5, jitter=0), "l2only": Policy(ttl=10, stale=5, jitter=0, memory=False)}


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
async def pair(redis_url, clock):
    a = CacheManager(redis_url=redis_url, namespace="n", policies=POLICIES, clock=clock)
    b = CacheManager(redis_url=redis_url, namespace="n", policies=POLICIES, clock=clock)
    async with a, b:
        # Plain reads need the invalidation channel: the tests count them from the start.
        await subscribed(a, b)
        yield a, b




async def test_two_managers_share_the_redis_tier(pair):
    a, b = pair
    calls = 0

    async def loader():
        nonlocal calls
        calls += 1
        return {"rows": [1, 2], "n": calls}

    assert await a.get_or_load(a.key("c", "o1"), loader) == {"rows": [1, 2], "n": 1}
    assert await b.get_or_load(b.key("c", "o1"), loader) == {"rows": [1, 2], "n": 1}
    assert calls == 1
    stats = b.stats()["resources"]["c"]
    # b took a's value from Redis: by its read, or (a's write being answered in the
    # background) after waiting on a's lease, by the fill notice or the read that follows.
    assert stats["loads"] == 0
    assert stats["redis"]["redis_hits"] == 1 or stats["lease_waits"] == 1
    # the shared hit filled b's memory tier
    assert b.stats()["memory_entries"] == 1


async def test_invalidation_reaches_every_instance_memory_tier(pair):
    a, b = pair
    for m in (a, b):
        await m.get_or_load(m.key("c", "o1", 1), lambda: "v1", tags=["org:1"])
        await m.get_or_load(m.key("c", "o2", 1), lambda: "v2", tags=["org:2"])
    assert b.stats()["memory_entries"] == 2
    await a.invalidate_tags("org:1")
    await eventually(lambda: b.stats()["memory_entries"] == 1)
    assert b.stats()["redis"]["invalidations_received"] >= 1
    await a.invalidate("c", "o2")
    await eventually(lambda: b.stats()["memory_entries"] == 0)
    await b.set(b.key("c", "x"), 1)
    await b.set(b.key("c", "y"), 1)
    await a.delete(a.key("c", "x"))
    await eventually(lambda: b.stats()["memory_entries"] == 1)
    await a.invalidate_pattern("c:*")
    await eventually(lambda: b.stats()["memory_entries"] == 0)
    await b.set(b.key("c", "z"), 1)
    await a.clear()
    await eventually(lambda: b.stats()["memory_entries"] == 0)


def received(m):
    return m.stats()["redis"]["invalidations_received"]


async def test_tag_and_prefix_invalidation_hold_in_redis_itself(pair, redis_server, redis_url, clock):
    a, b = pair
    await a.set(a.key("l2only", "o1", 1), "x", tags=["org:1"])
    await a.set(a.key("l2only", "o10", 1), "y")
    assert await b.get(b.key("l2only", "o1", 1)) == "x"
    heard = received(b)
    await a.invalidate_tags("org:1")
    # A manager that never heard of the invalidation (no known versions) misses too.
    async with CacheManager(redis_url=redis_url, namespace="n", policies=POLICIES, clock=clock) as fresh:
        assert await fresh.get(fresh.key("l2only", "o1", 1)) is None
    await eventually(lambda: received(b) > heard)
    assert await b.get(b.key("l2only", "o1", 1)) is None
    await a.set(a.key("l2only", "o1", 1), "x2", tags=["org:1"])
    assert await b.get(b.key("l2only", "o1", 1)) == "x2"
    heard = received(b)
    await a.invalidate("l2only", "o1")
    await eventually(lambda: received(b) > heard)
    assert await b.get(b.key("l2only", "o1", 1)) is None
    assert await b.get(b.key("l2only", "o10", 1)) == "y"  # o10 is not under the prefix o1
    # a tag invalidation costs one script call, whatever the number of tagged keys
    for i in range(300):
        await a.set(a.key("l2only", "many", i), i, tags=["bulk"])
    await a.invalidate_tags("bulk")
    assert all([await b.get(b.key("l2only", "many", i)) is None for i in range(0, 300, 37)])


def reads(m):
    r = m.stats()["redis"]
    return r["reads_plain"], r["reads_scripted"]


async def test_reads_are_plain_once_the_versions_are_known(pair):
    a, b = pair
    key = a.key("l2only", "o1", 1)
    heard = received(b)
    await a.set(key, "x", tags=["org:1"])
    # a's write is announced; its arrival forgets the key's dependency version, and a read
    # in flight then learns nothing (the epoch rule), so b reads once it has arrived
    await eventually(lambda: received(b) > heard)
    assert await b.get(key) == "x"
    assert reads(b) == (0, 1)  # nothing known yet: the script reads it and tells the versions
    assert b.stats()["redis"]["versions_known"] == 4  # its three prefix levels and one tag
    for _ in range(3):
        assert await b.get(key) == "x"
    assert reads(b) == (3, 1)
    # Another instance's invalidation: once its broadcast arrived, the version is unknown
    # again, so the read goes back to the script, which finds the entry out of date.
    heard = received(b)
    await a.invalidate_tags("org:1")
    await eventually(lambda: received(b) > heard)
    assert await b.get(key) is None
    assert reads(b) == (3, 2)
    heard = received(b)
    await a.set(key, "x2", tags=["org:1"])
    await eventually(lambda: received(b) > heard)
    assert await b.get(key) == "x2"
    assert await b.get(key) == "x2"
    assert reads(b) == (4, 3)
    assert await b.get(b.key("l2only", "absent")) is None  # a plain miss: no lease wanted
    assert reads(b) == (5, 3)


async def test_an_instance_sees_its_own_invalidations_at_once(pair):
    a, _ = pair
    keys = [a.key("l2only", "o1", 1), a.key("l2only", "o2", 1)]
    await a.set(keys[0], "x", tags=["org:1"])
    await a.set(keys[1], "y")
    for _ in range(2):
        assert [await a.get(k) for k in keys] == ["x", "y"]
    assert reads(a)[0] >= 2
    await a.invalidate_tags("org:1")
    assert await a.get(keys[0]) is None  # no broadcast awaited: the bump precedes the read
    await a.invalidate("l2only", "o2")
    assert await a.get(keys[1]) is None


async def test_known_versions_are_dropped_with_the_invalidation_channel(pair, redis_server):
    a, b = pair
    key = a.key("l2only", "o1", 1)
    await a.set(key, "x", tags=["org:1"])
    for _ in range(2):
        assert await b.get(key) == "x"
    # A bump whose broadcast b never hears (made behind herdcache's back): b cannot know,
    # and keeps serving the entry it judges by the versions it knows.
    redis_server.command("INCR", "n#t:org:1")
    assert await b.get(key) == "x"
    # b loses its subscriber connection: broadcasts may have been missed, so it trusts no
    # known version any more, and the next read asks the script.
    flushes = b.stats()["redis"]["memory_flushes"]
    redis_server.command("CLIENT", "KILL", "TYPE", "pubsub")
    await eventually(lambda: b.stats()["redis"]["memory_flushes"] > flushes)
    assert await b.get(key) is None


async def test_pattern_and_clear_remove_keys_with_scan(pair, redis_server):
    a, _ = pair
    for i in range(1200):
        await a.set(a.key("l2only", "p", i), i)
    await a.set(a.key("c", "keep"), 1)
    assert await a.invalidate_pattern("l2only:*") == 1200
    assert redis_server.command("EXISTS", *(str(a.key("l2only", "p", i)) for i in range(1200))) == 0
    assert await a.get(a.key("c", "keep")) == 1
    assert redis_server.command("EXISTS", str(a.key("c", "keep"))) == 1
    assert await a.clear() >= 1
    assert redis_server.command("EXISTS", str(a.key("c", "keep"))) == 0


async def test_stale_while_revalidate_from_redis(pair, clock):
    a, b = pair
    calls = 0

    async def loader():
        nonlocal calls
        calls += 1
        return calls

    assert await a.get_or_load(a.key("l2only", "s"), loader) == 1
    await settled(a)  # the load's write is answered in the background (else b waits on a's lease)
    clock.advance(11)  # stale for everyone, still in Redis
    assert await b.get_or_load(b.key("l2only", "s"), loader) == 1  # served stale at once
    await eventually(lambda: calls == 2 and not b.stats()["background_tasks"])
    assert await a.get_or_load(a.key("l2only", "s"), loader) == 2
    assert b.stats()["stale_served"] == 1


async def test_memory_fill_keeps_the_remaining_lifetime(pair, clock):
    a, b = pair
    await a.set(a.key("c", "life"), "v")
    clock.advance(8)
    assert await b.get(b.key("c", "life")) == "v"  # fills b's memory with ~2 s of freshness
    clock.advance(2.5)
    before = b.stats()["stale_served"]
    assert await b.get(b.key("c", "life")) == "v"
    assert b.stats()["stale_served"] == before + 1


@pytest.mark.parametrize("value", [b"", b"\x00\xff" * 100, "", "é" * 1000, b"x" * (8 * 2**20)])
async def test_binary_empty_and_large_values(redis_url, value):
    async with CacheManager(redis_url=redis_url, serializer="msgpack", policies=POLICIES) as a, CacheManager(
        redis_url=redis_url, serializer="msgpack", policies=POLICIES
    ) as b:
        await a.set(a.key("l2only", "v"), value)
        assert await b.get(b.key("l2only", "v")) == value


async def test_signed_payload_tampered_in_redis_is_a_miss(redis_url, redis_server):
    key_bytes = b"k" * 32
    async with CacheManager(redis_url=redis_url, signing_key=key_bytes, policies=POLICIES) as a:
        key = a.key("l2only", "signed")
        await a.set(key, {"admin": False})
        assert await a.get(key) == {"admin": False}
        payload = redis_server.command("HGET", str(key), "v")
        redis_server.command("HSET", str(key), "v", payload.replace(b"false", b"true "))
        assert await a.get(key) is None
        assert a.stats()["errors"] == 1
        # a loader replaces the forged entry
        assert await a.get_or_load(key, lambda: {"admin": False}) == {"admin": False}


@pytest.mark.parametrize("stored", [b"HC\x00{not json", b"plain bytes", b"", b"HC\x01" + b"m" * 31])
async def test_unusable_payloads_in_redis_are_counted_misses(pair, redis_server, caplog, stored):
    # Unsigned payloads are decoded on the bridge; anything it cannot decode goes back to
    # Python, which logs and counts it exactly as before.
    a, _ = pair
    key = a.key("l2only", "garbage")
    await a.set(key, {"ok": True})
    assert await a.get(key) == {"ok": True}
    redis_server.command("HSET", str(key), "v", stored)
    with caplog.at_level("WARNING", logger="herdcache"):
        assert await a.get(key) is None
    assert a.stats()["errors"] == 1
    assert f"ignoring {key} in redis" in caplog.text


async def test_a_redis_hit_from_get_fills_memory_and_is_counted(pair):
    a, b = pair
    heard = received(b)
    await a.set(b.key("c", "o1"), [1, 2])
    # The set's announcement fences reads of the key that b sent before hearing it.
    await eventually(lambda: received(b) > heard)
    assert await b.get(b.key("c", "o1")) == [1, 2]
    assert await b.get(b.key("c", "o1")) == [1, 2]  # now from b's memory tier
    res = b.stats()["resources"]["c"]
    assert (res["hits"], res["misses"], res["redis"]["redis_hits"]) == (2, 0, 1)
    assert b.stats()["memory_entries"] == 1
    assert await b.get(b.key("l2only", "absent")) is None
    assert b.stats()["resources"]["l2only"]["misses"] == 1


async def test_redis_error_replies_do_not_raise(pair, redis_server):
    a, _ = pair
    key = a.key("l2only", "wrongtype")
    redis_server.command("SET", str(key), "not a hash")  # HMGET on it fails: WRONGTYPE
    assert await a.get(key) is None
    assert await a.get_or_load(key, lambda: "loaded") == "loaded"
    assert a.stats()["errors"] >= 1


async def test_sync_api_on_two_tiers(redis_url):
    a = CacheManager(redis_url=redis_url, policies=POLICIES)
    b = CacheManager(redis_url=redis_url, policies=POLICIES)
    try:
        a.sync.set(a.key("l2only", 1), [1])
        assert b.sync.get(b.key("l2only", 1)) == [1]
        assert b.sync.get_or_load(b.key("l2only", 2), lambda: "x") == "x"
        # The load's write is answered in the background (nobody waits for it): wait for its answer.
        concurrent.futures.wait(list(b._writes), timeout=5)
        assert a.sync.get(a.key("l2only", 2)) == "x"
        assert a.sync.delete(a.key("l2only", 2)) is True
        assert b.sync.get(b.key("l2only", 2)) is None
    finally:
        a.sync.close()
        b.sync.close()


async def test_cancelled_awaiters_do_not_disturb_others(pair):
    a, _ = pair
    await a.set(a.key("l2only", "k"), "v")
    tasks = [asyncio.ensure_future(a.get(a.key("l2only", "k"))) for _ in range(200)]
    await asyncio.sleep(0)
    for t in tasks[::2]:
        t.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(r == "v" for r in results[1::2])
    assert all(isinstance(r, asyncio.CancelledError) or r == "v" for r in results[::2])
    assert await a.get(a.key("l2only", "k")) == "v"


async def test_unreachable_redis_degrades_to_memory(clock):
    from servers import free_port

    cache = CacheManager(redis_url=f"redis://127.0.0.1:{free_port()}/0", policies=POLICIES, clock=clock)
    async with cache:
        started = time.monotonic()
        assert await cache.get_or_load(cache.key("c", 1), lambda: "from db") == "from db"
        assert await cache.get(cache.key("c", 1)) == "from db"  # memory tier keeps serving
        assert await cache.get(cache.key("l2only", 1)) is None
        assert await cache.invalidate_tags("t") == 0
        assert time.monotonic() - started < 5
        redis = cache.stats()["redis"]
        assert redis["configured"] and not redis["connected"]
        assert redis["errors"] >= 1
        assert cache.stats()["errors"] >= 1


async def test_server_killed_mid_traffic_then_restarted(redis_factory, clock):
    server = redis_factory()
    cache = CacheManager(redis_url=server.url, policies=POLICIES, clock=clock)
    other = CacheManager(redis_url=server.url, policies=POLICIES, clock=clock)
    async with cache, other:
        await subscribed(cache, other)  # until then the memory tier keeps nothing
        await cache.set(cache.key("c", "hot"), "v")
        errors = []

        async def reader():
            for _ in range(200):
                try:
                    await cache.get(cache.key("l2only", "k"))
                    assert await cache.get(cache.key("c", "hot")) == "v"
                except Exception as exc:  # noqa: BLE001 - the test records any raise
                    errors.append(exc)
                await asyncio.sleep(0.001)

        readers = [asyncio.ensure_future(reader()) for _ in range(10)]
        await asyncio.sleep(0.02)
        server.kill()
        started = time.monotonic()
        await asyncio.gather(*readers)
        assert errors == []
        assert time.monotonic() - started < 10  # answered quickly while down
        assert not cache.stats()["redis"]["connected"]
        server.start()
        await eventually(lambda: cache.stats()["redis"]["connected"], timeout=10)
        await eventually(lambda: other.stats()["redis"]["connected"], timeout=10)
        await cache.set(cache.key("l2only", "after"), 1)
        assert await other.get(other.key("l2only", "after")) == 1
        # the subscribers reconnected and flushed their memory tiers
        await eventually(lambda: other.stats()["redis"]["memory_flushes"] >= 1, timeout=10)
        assert other.stats()["memory_entries"] == 0


async def test_connection_cut_mid_pipeline(pair, redis_server):
    a, _ = pair
    await a.set(a.key("l2only", "k"), "v")
    results = []

    async def burst():
        results.extend(await asyncio.gather(*(a.get(a.key("l2only", "k")) for _ in range(500))))

    task = asyncio.ensure_future(burst())
    await asyncio.sleep(0)
    redis_server.command("CLIENT", "KILL", "TYPE", "normal")
    await task
    assert len(results) == 500
    assert all(r in ("v", None) for r in results)
    await eventually(lambda: a.stats()["redis"]["connected"])
    assert await a.get(a.key("l2only", "k")) == "v"


async def test_invalidations_made_while_down_are_replayed(redis_factory, clock):
    server = redis_factory()
    a = CacheManager(redis_url=server.url, policies=POLICIES, clock=clock)
    async with a:
        await a.set(a.key("l2only", "j"), "old", tags=["t"])
        server.stop()
        await eventually(lambda: not a.stats()["redis"]["connected"])
        await a.invalidate_tags("t")
        assert a.stats()["redis"]["journal_pending"] == 1
        server.start()
        await eventually(lambda: a.stats()["redis"]["journal_pending"] == 0, timeout=10)
        # the server lost its data on restart anyway; the replay must still have run
        await eventually(lambda: server.command("GET", "app#t:t") is not None, timeout=5)
        assert int(server.command("GET", "app#t:t")) == 1


async def test_scripts_are_reloaded_after_noscript(pair, redis_server):
    a, b = pair
    await a.set(a.key("l2only", "before"), 1)
    redis_server.command("SCRIPT", "FLUSH")  # as after a failover or a restart
    assert await b.get(b.key("l2only", "before")) == 1
    assert await b.get_or_load(b.key("l2only", "after"), lambda: 2, tags=["t"]) == 2
    await settled(b)  # the load's write is answered in the background
    assert await a.get(a.key("l2only", "after")) == 2
    heard = b.stats()["redis"]["invalidations_received"]
    await a.invalidate_tags("t")
    # b judges the entry by the tag version it knows until a's broadcast reaches it
    await eventually(lambda: b.stats()["redis"]["invalidations_received"] > heard)
    assert await b.get(b.key("l2only", "after")) is None
    assert b.stats()["errors"] == 0 and a.stats()["errors"] == 0


async def test_add_is_atomic_across_instances(redis_url):
    managers = [CacheManager(redis_url=redis_url, namespace="n", policies=POLICIES) for _ in range(4)]
    try:
        for m in managers:
            await m.start()
        for round_ in range(20):
            results = await asyncio.gather(*(m.add(m.key("c", "lock", round_), i) for i, m in enumerate(managers)))
            assert sorted(results) == [False, False, False, True]
            winner = results.index(True)
            assert all([await m.get(m.key("c", "lock", round_)) == winner for m in managers])
    finally:
        for m in managers:
            await m.close()


async def test_compare_and_set_counts_without_losing_updates(redis_url):
    managers = [CacheManager(redis_url=redis_url, namespace="n", policies=POLICIES) for _ in range(3)]
    try:
        for m in managers:
            await m.start()
        key = managers[0].key("l2only", "counter")
        await managers[0].set(key, 0)

        async def increment(m, times):
            done = 0
            while done < times:
                current = await m.get(m.key("l2only", "counter"))
                if await m.compare_and_set(m.key("l2only", "counter"), current, current + 1):
                    done += 1

        await asyncio.gather(*(increment(m, 30) for m in managers for _ in range(2)))
        assert await managers[1].get(key) == 180
        # a compare_and_set against a stale expectation is refused and changes nothing
        assert await managers[2].compare_and_set(key, 5, 6) is False
        assert await managers[0].get(key) == 180
    finally:
        for m in managers:
            await m.close()


async def test_entries_expire_by_the_engine_clock_in_redis_too(pair, clock, redis_server):
    a, b = pair
    key = a.key("l2only", "expiring")
    await a.set(key, "v", ttl=2)  # stale for 5 more seconds (the policy's stale window)
    clock.advance(6.9)
    assert await b.get(b.key("l2only", "expiring")) == "v"
    clock.advance(0.2)  # past stale-until by the engine's clock; Redis' own has not moved
    assert redis_server.command("EXISTS", str(key)) == 1
    assert await b.get(b.key("l2only", "expiring")) is None
    assert await b.add(b.key("l2only", "expiring"), "new") is True  # expired counts as absent
    assert await a.get(key) == "new"
