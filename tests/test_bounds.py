"""Every wait on a request path ends: a load waits for a bulkhead slot (max_concurrent_loads)
lock_timeout at most, and a blocking caller waits for the load of its key that another
caller leads 2 x lock_timeout at most, whether it blocks or awaits; then LoadTimeout (a TimeoutError and a
CacheError), and nothing is left held. The loaders here block until the test lets them
go, so each wait runs out however slow the machine is."""

from __future__ import annotations

import asyncio
import threading

import pytest

from background import eventually
from herdcache import CacheError, CacheManager, LoadTimeout

BOUND = 0.2  # lock_timeout of these managers, in seconds


def test_load_timeout_is_a_timeout_and_a_cache_error():
    assert issubclass(LoadTimeout, TimeoutError) and issubclass(LoadTimeout, CacheError)


async def test_an_async_load_waits_for_a_slot_lock_timeout_at_most():
    async with CacheManager(namespace="b", max_concurrent_loads=1, lock_timeout=BOUND) as cache:
        started, release = asyncio.Event(), asyncio.Event()

        async def slow():
            started.set()
            await release.wait()
            return "slow"

        holder = asyncio.create_task(cache.get_or_load(cache.key("r", 1), slow))
        await started.wait()
        loaded = []
        with pytest.raises(LoadTimeout, match="max_concurrent_loads=1"):
            await cache.get_or_load(cache.key("r", 2), lambda: loaded.append(1) or "never")
        assert loaded == []  # it never got a slot
        release.set()
        assert await holder == "slow"
        assert await cache.get_or_load(cache.key("r", 2), lambda: "now") == "now"  # the slot came back
        assert cache._bulkhead._free == 1


def test_a_blocking_load_waits_for_a_slot_lock_timeout_at_most():
    cache = CacheManager(namespace="b", max_concurrent_loads=1, lock_timeout=BOUND)
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(60)
        return "slow"

    results = []
    holder = threading.Thread(target=lambda: results.append(cache.sync.get_or_load(cache.key("r", 1), slow)))
    holder.start()
    try:
        assert started.wait(60)
        with pytest.raises(LoadTimeout, match="lock_timeout"):
            cache.sync.get_or_load(cache.key("r", 2), lambda: "never")
    finally:
        release.set()
        holder.join(60)
    assert results == ["slow"]
    assert cache.sync.get_or_load(cache.key("r", 2), lambda: "now") == "now"
    assert cache._bulkhead._free == 1
    cache.sync.close()


def test_a_blocking_follower_waits_for_its_flight_two_lock_timeouts_at_most():
    cache = CacheManager(namespace="f", lock_timeout=BOUND)
    key = cache.key("r", 1)
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(60)
        return "led"

    results = []
    leader = threading.Thread(target=lambda: results.append(cache.sync.get_or_load(key, slow)))
    leader.start()
    try:
        assert started.wait(60)
        loaded = []
        with pytest.raises(LoadTimeout, match=r"another caller leads .*\(2 x lock_timeout\)"):
            cache.sync.get_or_load(key, lambda: loaded.append(1) or "mine")
        assert loaded == []  # a follower: it did not load the key itself
    finally:
        release.set()
        leader.join(60)
    assert results == ["led"]  # the flight went on, and its value was kept
    assert cache.sync.get(key) == "led"
    cache.sync.close()


def test_a_blocking_follower_gets_a_loaders_own_timeout_error_as_it_is():
    cache = CacheManager(namespace="f", lock_timeout=30)
    key = cache.key("r", 1)
    started, release = threading.Event(), threading.Event()

    def failing():
        started.set()
        release.wait(60)
        raise TimeoutError("the database timed out")

    errors = []

    def lead():
        try:
            cache.sync.get_or_load(key, failing)
        except TimeoutError as exc:
            errors.append(exc)

    def follow():
        try:
            cache.sync.get_or_load(key, lambda: "never")
        except TimeoutError as exc:
            errors.append(exc)

    leader = threading.Thread(target=lead)
    leader.start()
    assert started.wait(60)
    follower = threading.Thread(target=follow)
    follower.start()
    asyncio.run(eventually(lambda: cache.stats()["coalesced"] == 1))  # it has joined the flight
    release.set()
    leader.join(60)
    follower.join(60)
    assert [type(e) for e in errors] == [TimeoutError, TimeoutError]
    assert all(str(e) == "the database timed out" for e in errors)
    cache.sync.close()


async def _leading(cache: CacheManager, key) -> tuple[asyncio.Task, asyncio.Event]:
    """A task leading the load of `key`, its loader running until the event is set."""
    started, release = asyncio.Event(), asyncio.Event()

    async def slow():
        started.set()
        await release.wait()
        return "led"

    leader = asyncio.create_task(cache.get_or_load(key, slow))
    await started.wait()
    return leader, release


async def test_an_awaiting_follower_waits_for_its_flight_two_lock_timeouts_at_most():
    async with CacheManager(namespace="f", lock_timeout=BOUND) as cache:
        key = cache.key("r", 1)
        leader, release = await _leading(cache, key)
        loaded = []
        with pytest.raises(LoadTimeout, match=r"another caller leads .*after 0\.4 s \(2 x lock_timeout\)"):
            # (wait_for: a wait without the bound fails the test instead of hanging it)
            await asyncio.wait_for(cache.get_or_load(key, lambda: loaded.append(1) or "mine"), 30)
        assert loaded == []  # a follower: it did not load the key itself
        assert cache.stats()["coalesced"] == 1
        release.set()
        assert await leader == "led"  # the flight went on, and its value was kept
        assert await cache.get(key) == "led"


async def test_an_awaiting_follower_on_another_loop_waits_two_lock_timeouts_at_most():
    """The leader's flight runs on a loop in another thread; the follower's wait still ends."""
    cache = CacheManager(namespace="f", lock_timeout=BOUND)
    key = cache.key("r", 1)
    started, release = threading.Event(), threading.Event()

    async def slow():
        started.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 60)
        return "led"

    results = []
    leader = threading.Thread(target=lambda: results.append(asyncio.run(cache.get_or_load(key, slow))))
    leader.start()
    try:
        assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 60)
        with pytest.raises(LoadTimeout, match=r"another caller leads"):
            await asyncio.wait_for(cache.get_or_load(key, lambda: "mine"), 30)
    finally:
        release.set()
        await asyncio.get_running_loop().run_in_executor(None, leader.join, 60)
    assert results == ["led"]
    assert await cache.get(key) == "led"
    await cache.close()


async def test_a_follower_that_is_answered_in_time_gets_the_value_and_leaves_no_timer():
    async with CacheManager(namespace="f", lock_timeout=30) as cache:
        key = cache.key("r", 1)
        leader, release = await _leading(cache, key)
        follower = asyncio.create_task(cache.get_or_load(key, lambda: "mine"))
        await eventually(lambda: cache.stats()["coalesced"] == 1)
        loop = asyncio.get_running_loop()
        assert len(loop._scheduled) >= 1  # the follower's deadline
        release.set()
        assert await follower == "led" and await leader == "led"
        assert not [h for h in loop._scheduled if not h.cancelled() and h.when() > loop.time() + 20]
