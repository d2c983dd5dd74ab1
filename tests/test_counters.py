"""incr / decr: atomic counters on every tier; across processes with Redis."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys

import pytest

from herdcache import ManualClock, Policy

COUNTER_PROCESS = """
import sys
from herdcache import CacheManager
cache = CacheManager(redis_url=sys.argv[1], namespace="counters", signing_key=sys.argv[2].encode() or None,
                     serializer=sys.argv[3])
key = cache.key("hits", "page")
print(sum(1 for _ in range(int(sys.argv[4])) if cache.sync.incr(key) > 0) + 0 * cache.sync.decr(key, 0), flush=True)
cache.sync.close()
"""


async def test_incr_and_decr_count_from_zero(tier):
    async with tier.open(namespace="counters") as c:
        key = c.key("hits", "page")
        assert await c.incr(key) == 1
        assert await c.incr(key, 10) == 11
        assert await c.decr(key, 4) == 7
        assert await c.decr(c.key("hits", "other")) == -1
        assert await c.get(key) == 7
        assert c.sync.incr(key) == 8
        assert c.sync.decr(key, 8) == 0


async def test_an_increment_reaches_every_instance(tier):
    if not tier.redis:
        pytest.skip("one instance on the memory tier")
    async with tier.open(namespace="counters") as a, tier.open(namespace="counters") as b:
        ka, kb = a.key("hits", "page"), b.key("hits", "page")
        await a.set(ka, 40)
        assert await b.get(kb) == 40  # b holds it in memory now
        assert await a.incr(ka, 2) == 42
        assert await b.incr(kb) == 43
        from background import eventually

        async def b_sees_it() -> bool:
            return await b.get(kb) == 43 and await a.get(ka) == 43

        await eventually(b_sees_it)  # the increment's announcement dropped the old copies


async def test_a_value_that_is_not_an_integer_is_refused_and_kept(tier):
    async with tier.open(namespace="counters") as c:
        for value in ("7", 1.5, [1], True):
            key = c.key("names", repr(value))
            await c.set(key, value)
            with pytest.raises(TypeError, match="not an integer: incr changes nothing"):
                await c.incr(key)
            assert await c.get(key) == value
        big = c.key("hits", "big")
        await c.set(big, 2**53 - 1)
        with pytest.raises(TypeError, match="beyond 2\\*\\*53"):
            await c.incr(big)
        assert await c.get(big) == 2**53 - 1


async def test_bad_deltas_are_refused_before_anything_changes(tier):
    async with tier.open(namespace="counters") as c:
        key = c.key("hits", "page")
        for delta, error in (("1", TypeError), (1.0, TypeError), (True, TypeError), (2**60, ValueError)):
            with pytest.raises(error, match="delta"):
                await c.incr(key, delta)
        assert await c.get(key) is None


async def test_an_increment_keeps_the_entrys_lifetime_unless_a_ttl_is_given(tier):
    clock = ManualClock()
    async with tier.open(namespace="counters", default_policy=Policy(ttl=100, jitter=0), clock=clock) as c:
        key = c.key("hits", "page")
        await c.set(key, 1, ttl=10)
        clock.advance(6)
        assert await c.incr(key) == 2
        clock.advance(5)  # 11 s after the set: its 10 s are over, the increment did not renew them
        assert await c.get(key) is None
        assert await c.incr(key) == 1  # expired counts as absent: 0 + 1, with the policy's lifetime
        assert await c.incr(key, ttl=3) == 2
        clock.advance(4)
        assert await c.get(key) is None


def test_blocking_threads_increment_without_losing_one(tier):
    with tier.open_sync(namespace="counters") as c:
        key = c.key("hits", "threads")
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: c.sync.incr(key), range(400)))
        assert c.sync.get(key) == 400


@pytest.mark.parametrize("mode", ["script", "signed", "msgpack"])
def test_processes_increment_one_counter_without_losing_one(redis_url, mode):
    signing = "k" * 32 if mode == "signed" else ""
    serializer = "msgpack" if mode == "msgpack" else "json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", COUNTER_PROCESS, redis_url, signing, serializer, "100"],
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    assert [json.loads(out) for out in outputs] == [100] * 4
    from herdcache import CacheManager

    cache = CacheManager(redis_url=redis_url, namespace="counters", signing_key=signing.encode() or None,
                         serializer=serializer)
    try:
        assert cache.sync.get(cache.key("hits", "page")) == 400
    finally:
        cache.sync.close()
