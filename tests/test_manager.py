"""CacheManager: the public API contract, run on every tier (the `tier` fixture: memory
alone, and memory in front of Redis). Where the tiers legitimately differ, a test says
so and asserts each tier's behaviour."""

import asyncio
import math

import pytest

from herdcache import CacheError, CacheManager, Key, ManualClock, Policy, SerializationError

from background import settled


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
async def cache(tier, clock):
    async with tier.open(
        namespace="t", policies={"courses": Policy(ttl=10, stale=5, jitter=0)}, clock=clock
    ) as c:
        yield c


async def test_set_get_delete(cache):
    key = cache.key("courses", "o1", semester=1)
    assert str(key) == "t:courses:o1:semester=1"
    assert await cache.get(key) is None
    value = {"rows": [1, 2, 3]}
    await cache.set(key, value)
    got = await cache.get(key)
    assert got == value
    assert await cache.get(key) is got  # hits share one object: the decoded copy the memory tier keeps
    assert await cache.delete(key) is True
    assert await cache.delete(key) is False
    assert await cache.get(key) is None


async def test_ttl_and_stale_follow_the_injected_clock(cache, clock):
    key = cache.key("courses", "o1")
    await cache.set(key, "v")
    clock.advance(9.9)
    assert await cache.get(key) == "v"
    assert cache.stats()["stale_served"] == 0
    clock.advance(0.2)  # stale window: still served, counted as stale
    assert await cache.get(key) == "v"
    assert cache.stats()["stale_served"] == 1
    clock.advance(5)  # past ttl + stale: expired
    assert await cache.get(key) is None


async def test_explicit_ttl_overrides_the_policy(cache, clock):
    key = cache.key("courses", "o2")
    await cache.set(key, "v", ttl=1)
    clock.advance(1.5)
    state = cache.stats()
    assert await cache.get(key) == "v"  # stale window of the policy still applies
    clock.advance(5)
    assert await cache.get(key) is None
    assert cache.stats()["misses"] == state["misses"] + 1


async def test_default_policy_applies_to_unknown_resources(tier, clock):
    async with tier.open(default_policy=Policy(ttl=2, jitter=0), clock=clock) as c:
        key = c.key("rooms", 1)
        await c.set(key, [1])
        clock.advance(1.9)
        assert await c.get(key) == [1]
        clock.advance(0.2)
        assert await c.get(key) is None


async def test_jitter_only_shortens_lifetimes(tier, clock):
    async with tier.open(default_policy=Policy(ttl=100, jitter=0.5), clock=clock) as c:
        keys = [c.key("r", i) for i in range(200)]
        for k in keys:
            await c.set(k, 1)
        clock.advance(49.9)
        assert all([await c.get(k) == 1 for k in keys])
        clock.advance(30)
        alive = sum([await c.get(k) == 1 for k in keys])
        assert 0 < alive < 200  # spread between 50 and 100 seconds
        clock.advance(20.2)
        assert all([await c.get(k) is None for k in keys])


async def test_get_or_load_caches_and_counts(cache):
    calls = []
    key = cache.key("courses", "o1")

    async def loader():
        calls.append(1)
        return ["a"]

    assert await cache.get_or_load(key, loader) == ["a"]
    assert await cache.get_or_load(key, loader) == ["a"]
    assert len(calls) == 1
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["loads"]) == (1, 1, 1)
    assert stats["resources"]["courses"]["load_ms"]["count"] == 1
    assert math.isclose(stats["hit_rate"], 0.5)


async def test_hit_rate_counts_a_wait_for_another_callers_load_as_answered(cache):
    key = cache.key("courses", "herd")
    release = asyncio.Event()

    async def loader():
        await release.wait()
        return ["a"]

    herd = [asyncio.ensure_future(cache.get_or_load(key, loader)) for _ in range(10)]
    await asyncio.sleep(0)  # the leader is loading, the other nine wait on its flight
    release.set()
    assert await asyncio.gather(*herd) == [["a"]] * 10
    assert await cache.get_or_load(key, loader) == ["a"]
    stats = cache.stats()
    assert (stats["hits"], stats["coalesced"], stats["misses"]) == (1, 9, 1)
    assert math.isclose(stats["hit_rate"], 10 / 11)  # (hits + coalesced) / (hits + coalesced + misses)
    assert math.isclose(stats["resources"]["courses"]["hit_rate"], 10 / 11)


async def test_sync_loader_works_with_async_api(cache):
    key = cache.key("courses", "sync")
    assert await cache.get_or_load(key, lambda: 41 + 1) == 42
    assert await cache.get(key) == 42


async def test_500_concurrent_callers_coalesce_into_one_load(cache):
    calls = 0
    release = asyncio.Event()

    async def loader():
        nonlocal calls
        calls += 1
        await release.wait()
        return {"n": calls}

    key = cache.key("courses", "herd")
    waiters = [asyncio.ensure_future(cache.get_or_load(key, loader)) for _ in range(500)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiters)
    assert calls == 1
    assert all(r is results[0] for r in results)
    stats = cache.stats()
    assert stats["loads"] == 1 and stats["coalesced"] == 499


async def test_loader_exception_reaches_every_caller_and_nothing_is_cached(cache):
    release = asyncio.Event()
    calls = 0

    async def loader():
        nonlocal calls
        calls += 1
        await release.wait()
        raise LookupError("db down")

    key = cache.key("courses", "boom")
    waiters = [asyncio.ensure_future(cache.get_or_load(key, loader)) for _ in range(50)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert calls == 1
    assert all(isinstance(r, LookupError) and str(r) == "db down" for r in results)
    assert await cache.get(key) is None
    assert cache.stats()["load_errors"] == 1
    # the next call loads again
    assert await cache.get_or_load(key, lambda: "ok") == "ok"


async def test_cancelled_leader_does_not_cancel_followers(cache):
    release = asyncio.Event()

    async def loader():
        await release.wait()
        return "done"

    key = cache.key("courses", "cancel")
    leader = asyncio.ensure_future(cache.get_or_load(key, loader))
    await asyncio.sleep(0)
    follower = asyncio.ensure_future(cache.get_or_load(key, loader))
    await asyncio.sleep(0)
    leader.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await follower == "done"
    assert await cache.get(key) == "done"


async def test_stale_while_revalidate_serves_stale_and_refreshes_once(cache, clock):
    calls = 0
    release = asyncio.Event()

    async def loader():
        nonlocal calls
        calls += 1
        if calls > 1:
            await release.wait()
        return calls

    key = cache.key("courses", "swr")
    assert await cache.get_or_load(key, loader) == 1
    await settled(cache)  # with Redis the first load's task ends after its callers have the value
    clock.advance(11)  # stale
    results = [await cache.get_or_load(key, loader) for _ in range(20)]
    assert results == [1] * 20  # served at once, without waiting for the refresh
    assert cache.stats()["background_tasks"] == 1
    release.set()
    await settled(cache)
    assert calls == 2
    assert await cache.get_or_load(key, loader) == 2
    assert cache.stats()["stale_served"] == 20


async def test_failed_refresh_keeps_serving_stale_until_hard_expiry(cache, clock, caplog):
    calls = 0

    async def loader():
        nonlocal calls
        calls += 1
        if calls > 1:
            raise ConnectionError("db gone")
        return "old"

    key = cache.key("courses", "swr-fail")
    await cache.get_or_load(key, loader)
    clock.advance(11)
    with caplog.at_level("WARNING", logger="herdcache"):
        assert await cache.get_or_load(key, loader) == "old"
        await settled(cache)
    assert "db gone" in caplog.text
    assert cache.stats()["load_errors"] == 1
    assert await cache.get_or_load(key, loader) == "old"  # still within the stale window
    await settled(cache)
    assert cache.stats()["load_errors"] == 2
    clock.advance(5)  # hard expiry: the failure now reaches the caller
    with pytest.raises(ConnectionError):
        await cache.get_or_load(key, loader)


async def test_invalidate_by_prefix(cache):
    for org in ("o1", "o10"):
        for sem in (1, 2):
            await cache.set(cache.key("courses", org, sem), [org, sem])
    await cache.set(cache.key("rooms", "o1"), "r")
    assert await cache.invalidate("courses", "o1") == 2
    assert await cache.get(cache.key("courses", "o1", 1)) is None
    assert await cache.get(cache.key("courses", "o10", 1)) == ["o10", 1]
    assert await cache.get(cache.key("rooms", "o1")) == "r"
    assert await cache.invalidate("courses") == 2
    assert cache.stats()["memory_entries"] == 1


async def test_invalidate_tags_and_pattern_and_clear(tier, cache):
    await cache.set(cache.key("courses", "o1"), 1, tags=["org:o1"])
    await cache.set(cache.key("rooms", "o1"), 2, tags=["org:o1", "rooms"])
    await cache.set(cache.key("rooms", "o2"), 3, tags=["rooms"])
    assert await cache.invalidate_tags("org:o1") == 2
    assert await cache.get(cache.key("rooms", "o2")) == 3
    await cache.set(cache.key("courses", "o1"), 1)
    # The tiers count differently here. A tag invalidation removes entries from memory,
    # but in Redis it only moves the tag's version: rooms:o1 stays there, dead, until a
    # read or its expiry unlinks it, and the pattern's SCAN + UNLINK counts it again.
    assert await cache.invalidate_pattern("rooms:*") == (2 if tier.redis else 1)
    assert await cache.get(cache.key("rooms", "o2")) is None
    assert await cache.get(cache.key("courses", "o1")) == 1
    assert await cache.clear() == 1
    assert cache.stats()["memory_entries"] == 0


async def test_bad_input_is_refused_and_changes_nothing(cache):
    key = cache.key("courses", "o1")
    await cache.set(key, "keep")
    before = cache.stats()
    with pytest.raises(SerializationError):
        await cache.set(key, {1, 2})  # a set is not JSON
    with pytest.raises(TypeError):  # SerializationError is also a TypeError
        await cache.set(key, object())
    with pytest.raises(ValueError, match="ttl"):
        await cache.set(key, "x", ttl=-1)
    with pytest.raises(ValueError, match="ttl"):
        await cache.set(key, "x", ttl=float("nan"))
    with pytest.raises(ValueError):
        await cache.set(key, "x", tags=[""])
    with pytest.raises(TypeError):
        await cache.get("t:courses:o1")
    with pytest.raises(TypeError, match="cannot build a cache key"):
        cache.key("courses", object())
    with pytest.raises(ValueError):
        cache.key("bad:resource", 1)
    with pytest.raises(ValueError):
        cache.key("", 1)
    with pytest.raises(ValueError):
        await cache.invalidate_pattern("")
    with pytest.raises(TypeError):
        await cache.get_or_load(key, "not callable")
    assert await cache.get(key) == "keep"
    after = cache.stats()
    assert after["memory_entries"] == before["memory_entries"] == 1


async def test_loader_result_that_cannot_be_serialized_fails_every_caller(cache):
    key = cache.key("courses", "unserializable")
    with pytest.raises(SerializationError):
        await cache.get_or_load(key, lambda: {1, 2})
    assert await cache.get(key) is None


# No tier: refused before a manager exists.
def test_constructor_validates():
    with pytest.raises(ValueError, match="ttl"):
        Policy(ttl=-1)
    with pytest.raises(ValueError, match="ttl"):
        Policy(ttl=float("inf"))
    with pytest.raises(ValueError, match="stale"):
        Policy(ttl=1, stale=float("nan"))
    with pytest.raises(ValueError, match="jitter"):
        Policy(ttl=1, jitter=2)
    with pytest.raises(ValueError, match="memory_max_bytes"):
        CacheManager(memory_max_bytes=0)
    with pytest.raises(ValueError, match="lock_timeout"):
        CacheManager(lock_timeout=-1)
    with pytest.raises(ValueError, match="max_concurrent_loads"):
        CacheManager(max_concurrent_loads=0)
    with pytest.raises(TypeError):
        CacheManager(policies={"x": 5})
    with pytest.raises(ValueError, match="serializer"):
        CacheManager(serializer="yaml")
    with pytest.raises(ValueError):
        CacheManager(namespace="a:b")


async def test_closed_manager_refuses_every_call(tier, clock):
    cache = tier.manager(clock=clock)
    key = cache.key("r", 1)
    await cache.set(key, 1)

    @cache.cached("f")
    async def f(x):
        return x

    await cache.close()
    for call in (
        lambda: cache.get(key),
        lambda: cache.set(key, 2),
        lambda: cache.get_or_load(key, lambda: 1),
        lambda: cache.delete(key),
        lambda: cache.invalidate("r"),
        lambda: cache.invalidate_tags("x"),
        lambda: cache.invalidate_pattern("r:*"),
        lambda: cache.clear(),
        lambda: f(1),
    ):
        with pytest.raises(RuntimeError, match="closed"):
            await call()
    for call in (lambda: cache.stats(), lambda: cache.key("r", 1), lambda: cache.sync.get(key), lambda: cache.sync.set(key, 1)):
        with pytest.raises(RuntimeError, match="closed"):
            call()
    with pytest.raises(RuntimeError):
        await cache.start()


async def test_manager_starts_on_first_use(tier, clock):
    cache = tier.manager(clock=clock)
    assert not cache.closed
    await cache.set(cache.key("r", 1), 1)
    assert await cache.get(cache.key("r", 1)) == 1
    await cache.close()
    assert cache.closed


# Memory tier only: byte accounting and eviction are the memory tier's, and Redis would
# serve the evicted entries back.
async def test_memory_budget_is_held(clock):
    budget = 1 << 20
    async with CacheManager(memory_max_bytes=budget, clock=clock) as c:
        for i in range(5000):
            await c.set(c.key("blob", i), "x" * (100 + (i * 37) % 3000))
            assert c.stats()["memory_bytes"] <= budget
        stats = c.stats()
        assert stats["memory_bytes"] >= 0.9 * budget
        assert stats["memory"]["evictions"] > 0
        # the most recently written entries survived
        assert await c.get(c.key("blob", 4999)) is not None


async def test_oversized_value_is_not_kept_in_memory(tier, clock):
    async with tier.open(memory_max_bytes=10_000, clock=clock) as c:
        key = c.key("blob", 1)
        await c.set(key, "x" * 20_000)
        assert c.stats()["memory"]["rejected"] == 1
        if tier.redis:  # Redis keeps what memory cannot: each read is served from there
            assert await c.get(key) == "x" * 20_000
            assert c.stats()["resources"]["blob"]["redis"]["redis_hits"] == 1
            assert c.stats()["memory"]["rejected"] == 2  # the read's fill is refused too
        else:
            assert await c.get(key) is None
            assert c.stats()["misses"] == 1
        assert c.stats()["memory_entries"] == 0


async def test_policy_memory_false_keeps_resource_out_of_memory(tier, clock):
    async with tier.open(policies={"big": Policy(ttl=10, memory=False)}, clock=clock) as c:
        key = c.key("big", 1)
        await c.set(key, 1)
        if tier.redis:  # the resource lives in Redis alone
            assert await c.get(key) == 1
            assert c.stats()["resources"]["big"]["redis"]["redis_hits"] == 1
        else:
            assert await c.get(key) is None
        assert c.stats()["memory_entries"] == 0


# No tier: the error classes and the key type.
def test_cache_error_hierarchy():
    assert issubclass(SerializationError, CacheError)
    assert issubclass(SerializationError, TypeError)
    assert isinstance(CacheManager().key("r"), Key)


async def test_load_latency_histogram_buckets(tier, clock):
    def loader():
        clock.advance(0.3)  # this load "takes" 300 ms
        return 1

    async with tier.open(clock=clock) as c:
        await c.get_or_load(c.key("r", 1), loader)
        load_ms = c.stats()["resources"]["r"]["load_ms"]
    buckets = dict(load_ms["buckets"])
    assert buckets[250.0] == 0 and buckets[500.0] == 1 and buckets[30000.0] == 1  # bounds in ms, as p50...
    assert load_ms["count"] == 1 and 262 <= load_ms["p50"] <= 340


async def test_add_and_compare_and_set(cache):
    key = cache.key("courses", "cond")
    assert await cache.add(key, 1) is True
    assert await cache.add(key, 2) is False
    assert await cache.get(key) == 1
    assert await cache.compare_and_set(key, 2, 3) is False
    assert await cache.compare_and_set(key, 1, 3) is True
    assert await cache.get(key) == 3
    assert cache.sync.add(cache.key("courses", "other"), "x") is True
    assert cache.sync.compare_and_set(cache.key("courses", "other"), "x", "y") is True
    assert await cache.compare_and_set(cache.key("courses", "absent"), None, 1) is False
    with pytest.raises(SerializationError):
        await cache.add(cache.key("courses", "bad"), {1})
    assert await cache.get(cache.key("courses", "bad")) is None


async def test_a_bad_ttl_is_refused_before_the_loader_runs(tier):
    async with tier.open() as m:
        key = m.key("rooms", 1)
        ran = []
        for bad, error in (("10", TypeError), (True, TypeError), (-1, ValueError), (float("nan"), ValueError)):
            with pytest.raises(error, match="ttl"):
                await m.get_or_load(key, lambda: ran.append(1), ttl=bad)
            with pytest.raises(error, match="ttl"):
                m.sync.get_or_load(key, lambda: ran.append(1), ttl=bad)
        assert ran == []
        assert m.stats()["loads"] == 0


async def test_bad_argument_types_name_the_argument(tier):
    async with tier.open() as m:
        key = m.key("rooms", 1)
        with pytest.raises(TypeError, match=r"ttl must be a number of seconds or None, got str '10'"):
            await m.set(key, 1, ttl="10")
        with pytest.raises(TypeError, match=r"ttl must be"):
            m.sync.set(key, 1, ttl="10")
        with pytest.raises(TypeError, match=r"resource must be a str, got int 5"):
            m.key(5, 1)
        with pytest.raises(TypeError, match=r"resource must be a str"):
            await m.invalidate(5)
        with pytest.raises(TypeError, match=r"key must be a Key"):
            await m.set("rooms:1", 1)
        with pytest.raises(TypeError, match=r"resource must be a str"):
            m.cached(5)
        assert await m.get(key) is None  # nothing was stored by the refused calls
