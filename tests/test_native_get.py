"""cache.get(key) runs in the engine (_native.getter): it must behave as the coroutine
CacheManager.get does, for asyncio and for code that drives coroutines by hand."""

import asyncio
import gc
import sys
import threading
import weakref

import pytest

from herdcache import CacheManager, Key, ManualClock, Policy

POLICIES = {"c": Policy(ttl=10, stale=5, jitter=0), "l2only": Policy(ttl=10, stale=5, jitter=0, memory=False)}


def memory_cache(clock=None):
    return CacheManager(policies=POLICIES, clock=clock or ManualClock())


def test_get_is_native_and_a_coroutine_to_asyncio():
    cache = memory_cache()
    key = cache.key("c", 1)
    call = cache.get(key)
    assert type(call).__name__ == "GetCall"  # the native path, not CacheManager.get's frame
    assert asyncio.iscoroutine(call)
    assert asyncio.run(call) is None  # asyncio.run takes only coroutines
    cache.sync.set(key, {"rows": [1]})

    async def main():
        assert await asyncio.create_task(cache.get(key)) == {"rows": [1]}
        assert await asyncio.gather(cache.get(key), cache.get(key=key)) == [{"rows": [1]}] * 2
        assert await asyncio.wait_for(cache.get(key), 5) == {"rows": [1]}

    asyncio.run(main())


def test_nothing_happens_until_it_is_awaited():
    cache = memory_cache()
    key = cache.key("c", 1)
    call = cache.get(key)  # made before the value is stored, outside any loop
    cache.sync.set(key, "v")
    assert cache.stats()["hits"] == 0
    assert asyncio.run(call) == "v"
    assert cache.stats()["hits"] == 1


def test_counts_as_the_method_does():
    clock = ManualClock()
    cache = memory_cache(clock)
    key = cache.key("c", 1)

    async def main():
        assert await cache.get(key) is None
        await cache.set(key, "v")
        assert await cache.get(key) == "v"
        clock.advance(12)  # past ttl, inside stale
        assert await cache.get(key) == "v"

    asyncio.run(main())
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["stale_served"]) == (2, 1, 1)


def test_driven_by_hand_like_a_coroutine():
    cache = memory_cache()
    key = cache.key("c", 1)
    cache.sync.set(key, ["a", "list"])
    call = cache.get(key)
    with pytest.raises(StopIteration) as stop:
        call.send(None)
    assert stop.value.value == ["a", "list"]  # a sequence answer, returned whole (not as args)
    with pytest.raises(RuntimeError, match="reuse"):
        call.send(None)

    with pytest.raises(TypeError, match="non-None"):
        cache.get(key).send(1)

    call = cache.get(key)
    call.close()
    with pytest.raises(RuntimeError, match="reuse"):
        call.send(None)

    with pytest.raises(KeyError, match="thrown"):
        cache.get(key).throw(KeyError("thrown"))
    with pytest.raises(KeyError):
        cache.get(key).throw(KeyError)
    with pytest.raises(TypeError):
        cache.get(key).throw(42)

    with pytest.raises(StopIteration):  # the iterator protocol too (yield from, next())
        next(iter(cache.get(key).__await__()))


def test_anything_but_a_key_goes_to_the_method():
    cache = memory_cache()

    async def main():
        with pytest.raises(TypeError):
            await cache.get("courses:1")
        with pytest.raises(TypeError):
            await cache.get()
        with pytest.raises(TypeError):
            await cache.get(cache.key("c", 1), 2)
        with pytest.raises(TypeError):
            await cache.get(other=cache.key("c", 1))

    asyncio.run(main())


def test_closed_and_unstarted_managers():
    cache = memory_cache()
    key = cache.key("c", 1)
    asyncio.run(cache.close())
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(cache.get(key))

    fresh = memory_cache()
    key = fresh._engine.key("c", (1,), {})  # a Key made without starting the manager
    assert type(key) is Key and fresh._state == "new"
    assert asyncio.run(fresh.get(key)) is None  # starts it, as the method would
    assert fresh._state == "started"


def test_a_subclass_get_stays_in_charge():
    class Counting(CacheManager):
        calls = 0

        async def get(self, key):
            Counting.calls += 1
            return await super().get(key)

    cache = Counting(policies=POLICIES)
    asyncio.run(cache.get(cache.key("c", 1)))
    assert Counting.calls == 1


def test_no_reference_is_leaked():
    cache = memory_cache()
    key = cache.key("c", 1)
    value = {"rows": list(range(5))}
    cache.sync.set(key, value)

    async def main(n):
        for _ in range(n):
            await cache.get(key)
            await cache.get(cache.key("c", 2))  # a miss

    asyncio.run(main(10))
    stored = cache.sync.get(key)
    gc.collect()
    before = sys.getrefcount(key), sys.getrefcount(stored)
    asyncio.run(main(1000))
    gc.collect()
    assert (sys.getrefcount(key), sys.getrefcount(stored)) == before


# --- against Redis --------------------------------------------------------------------

async def test_redis_reads_and_their_misses(redis_url):
    async with CacheManager(redis_url=redis_url, policies=POLICIES) as cache:
        key = cache.key("l2only", 1)
        assert await cache.get(key) is None
        await cache.set(key, [1, 2])
        assert await cache.get(key) == [1, 2]
        res = cache.stats()["resources"]["l2only"]
        assert res["redis"]["redis_hits"] == 1 and res["misses"] == 1 and res["hits"] == 1
        # Nothing a read holds outlives it: the key, its future, the bridge.
        bridge = cache._bridges[asyncio.get_running_loop()]
        gc.collect()
        before = sys.getrefcount(key), sys.getrefcount(bridge)
        await asyncio.gather(*(cache.get(key) for _ in range(300)))
        await asyncio.sleep(0)  # the finished tasks' callbacks let go of them
        gc.collect()
        assert (sys.getrefcount(key), sys.getrefcount(bridge)) == before
        assert bridge.pending == 0


async def test_signed_payloads_are_finished_in_python(redis_url):
    async with CacheManager(redis_url=redis_url, policies=POLICIES, signing_key=b"k" * 32) as cache:
        key = cache.key("l2only", 1)
        await cache.set(key, {"signed": True})
        assert await cache.get(key) == {"signed": True}


async def test_cancelled_while_reading_redis(redis_url):
    async with CacheManager(redis_url=redis_url, policies=POLICIES) as cache:
        key = cache.key("l2only", 1)
        await cache.set(key, "v")
        task = asyncio.create_task(cache.get(key))
        await asyncio.sleep(0)  # sent: the task now waits on the bridge's future
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await cache.get(key) == "v"  # its reply came and was dropped
        assert cache._bridges[asyncio.get_running_loop()].pending == 0


def test_one_manager_on_several_loops_and_threads(redis_url):
    cache = CacheManager(redis_url=redis_url, policies=POLICIES)
    key = cache.key("l2only", 1)
    cache.sync.set(key, "v")
    # One loop after another on this thread: each read finds its own loop's bridge.
    for _ in range(3):
        assert asyncio.run(cache.get(key)) == "v"
    # Loops running at once on two threads.
    results, errors = [], []

    def worker():
        async def main():
            return [await cache.get(key) for _ in range(200)]

        try:
            results.extend(asyncio.run(main()))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == ["v"] * 400
    cache.sync.close()


async def test_a_closed_manager_lets_go_of_its_bridge(redis_url):
    cache = CacheManager(redis_url=redis_url, policies=POLICIES)
    await cache.start()
    assert await cache.get(cache.key("l2only", 1)) is None  # a Redis read: the loop's bridge is made
    bridge = weakref.ref(cache._bridges[asyncio.get_running_loop()])
    await cache.close()
    gc.collect()
    assert bridge() is None  # its eventfd is closed with it


async def test_a_drain_reached_from_inside_a_drain_returns_at_once(redis_url):
    # The bridge decodes replies with the serializer's loads inside its drain(); user code
    # there (here a loads that drains again) must not re-enter the batch being resolved.
    import json

    bridges = []

    class Reentrant:
        name = "reentrant-json"

        @staticmethod
        def dumps(value):
            return json.dumps(value).encode()

        @staticmethod
        def loads(body):
            for bridge in bridges:
                bridge.drain()
            return json.loads(body)

    async with CacheManager(redis_url=redis_url, policies=POLICIES, serializer=Reentrant()) as cache:
        keys = [cache.key("l2only", i) for i in range(50)]
        values = [{"n": i, "rows": ["x" * 40] * 3} for i in range(50)]  # payloads on the heap
        for key, value in zip(keys, values):
            await cache.set(key, value)
        bridges.append(cache._bridges[asyncio.get_running_loop()])
        for _ in range(5):
            assert await asyncio.wait_for(asyncio.gather(*(cache.get(k) for k in keys)), 10) == values
