"""Warming: invalidate(..., rewarm=True) / invalidate_tags(..., rewarm=True) reload what
they removed; schedule_warm re-runs a loader once per period across instances (driven by
a ManualClock and handle.tick(), never by sleeping)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest

from herdcache import CacheManager, ManualClock
from herdcache.manager import UnknownResource

from background import eventually, settled, subscribed


def courses_of(cache: CacheManager, loads: list):
    @cache.cached("courses", tags=lambda org, semester=1: [f"org:{org}"])
    async def courses(org: str, semester: int = 1) -> list:
        loads.append((org, semester))
        return [f"{org}/{semester}/v{len(loads)}"]

    return courses


async def test_rewarm_reloads_what_the_invalidation_removed_and_nothing_else(tier):
    async with tier.open(namespace="warm") as m:
        loads: list = []
        courses = courses_of(m, loads)
        for org, semester in [("o1", 1), ("o1", 2), ("o2", 1)]:
            await courses(org, semester)
        loads.clear()
        await m.invalidate("courses", "o1", rewarm=True)
        assert sorted(loads) == [("o1", 1), ("o1", 2)]
        assert all(m._engine.peek(courses.key("o1", s))[0] for s in (1, 2))  # the cache is never empty
        await courses("o1", 1), await courses("o1", 2), await courses("o2", 1)
        assert len(loads) == 2  # served, no more loads
        assert m.stats()["warming"]["rewarmed"] == 2


async def test_invalidate_tags_rewarm_and_the_sync_facade(tier):
    with tier.open_sync(namespace="warm") as m:
        loads = []

        @m.cached("rooms", tags=lambda org: [f"org:{org}"])
        def rooms(org: str) -> list:
            loads.append(org)
            return [org, len(loads)]

        rooms("o1"), rooms("o2")
        m.sync.invalidate_tags("org:o1", rewarm=True)
        assert loads == ["o1", "o2", "o1"]
        assert rooms("o1") == ["o1", 3]
        m.sync.invalidate("rooms", "o2", rewarm=True)
        assert rooms("o2") == ["o2", 4] and len(loads) == 4


async def test_rewarm_of_a_named_key_loads_it_even_if_it_was_not_held(tier):
    async with tier.open(namespace="warm") as m:
        loads: list = []
        courses = courses_of(m, loads)
        await m.invalidate("courses", "o1", 2, rewarm=True)
        assert loads == [("o1", 2)]
        await m.invalidate("courses", rewarm=True)  # a prefix names no key; nothing was held
        assert loads == [("o1", 2), ("o1", 2)]  # the one held entry, reloaded


def config_with_outage(cache: CacheManager, outage: SimpleNamespace):
    """A `config` resource (a coroutine loader) that raises while `outage.down` is set."""
    @cache.cached("config")
    async def config(org: str) -> dict:
        if outage.down:
            raise ConnectionError("database down")
        return {"org": org}
    return config


async def test_a_failing_reload_raises_after_the_invalidation_and_is_counted(tier):
    async with tier.open(namespace="warm") as m:
        outage = SimpleNamespace(down=False)
        config = config_with_outage(m, outage)
        await config("o1")
        outage.down = True
        with pytest.raises(ConnectionError):
            await m.invalidate("config", rewarm=True)
        assert not m._engine.peek(config.key("o1"))[0]  # invalidated all the same
        assert m.stats()["warming"]["failures"] == 1


async def test_rewarm_across_instances_loads_once(redis_url):
    """b holds the entry too; a's rewarm drops it there and loads it once: b reads the
    reloaded value from Redis instead of loading."""
    async with CacheManager(redis_url=redis_url, namespace="warm") as a, \
            CacheManager(redis_url=redis_url, namespace="warm") as b:
        await subscribed(a, b)
        loads_a: list = []
        loads_b: list = []
        ca, cb = courses_of(a, loads_a), courses_of(b, loads_b)
        await ca("o1")
        await settled(a)
        first = await cb("o1")
        assert loads_b == []
        await a.invalidate("courses", "o1", rewarm=True)
        await settled(a)
        await eventually(lambda: not b._engine.peek(cb.key("o1"))[0])
        again = await cb("o1")
        assert again != first and len(loads_a) == 2 and loads_b == []


def every_hour(cache: CacheManager, loads: list):
    @cache.cached("config")
    async def config(org: str) -> dict:
        loads.append(org)
        return {"org": org, "n": len(loads)}

    return config


async def test_schedule_warm_runs_once_per_period_until_cancelled():
    clock = ManualClock()
    async with CacheManager(namespace="warm", clock=clock) as m:
        loads: list = []
        every_hour(m, loads)
        handle = m.schedule_warm("config", "o1", every=3600)
        assert await handle.tick() == "warmed"
        assert await handle.tick() == "not due"
        clock.advance(1800)
        assert await handle.tick() in ("not due", "warmed")  # a period boundary may fall in between
        clock.advance(3600)
        assert await handle.tick() == "warmed"
        warming = m.stats()["warming"]
        assert warming["runs"] == len(loads) and warming["scheduled"] == 1
        handle.cancel()
        clock.advance(3600)
        assert await handle.tick() == "not due"
        assert m.stats()["warming"]["scheduled"] == 0


async def test_schedule_warm_counts_failures_and_close_stops_it():
    clock = ManualClock()
    m = CacheManager(namespace="warm", clock=clock)

    @m.cached("config")
    async def config(org: str) -> dict:
        raise ConnectionError("database down")

    handle = m.schedule_warm("config", "o1", every=60)
    assert await handle.tick() == "failed"
    assert m.stats()["warming"]["failures"] == 1
    await m.close()
    assert handle._task is not None and handle._task.done()
    clock.advance(60)
    assert await handle.tick() == "not due"


async def test_schedule_warm_refuses_bad_arguments():
    async with CacheManager(namespace="warm") as m:
        every_hour(m, [])
        for bad in (0, -1, float("inf"), float("nan"), "60", True):
            with pytest.raises(ValueError, match="every"):
                m.schedule_warm("config", "o1", every=bad)
        with pytest.raises(UnknownResource):
            m.schedule_warm("rooms", "o1", every=60)
        assert m.stats()["warming"]["scheduled"] == 0


def test_schedule_warm_needs_an_event_loop():
    m = CacheManager(namespace="warm")
    every_hour(m, [])
    with pytest.raises(RuntimeError, match="event loop"):
        m.schedule_warm("config", "o1", every=60)
    m.sync.close()


async def test_two_instances_warm_once_per_period_between_them(redis_url):
    clock = ManualClock()  # shared: both agree on the periods, as synchronized wall clocks do
    async with CacheManager(redis_url=redis_url, namespace="warm", clock=clock) as a, \
            CacheManager(redis_url=redis_url, namespace="warm", clock=clock) as b:
        await subscribed(a, b)
        loads: list = []
        every_hour(a, loads), every_hour(b, loads)
        ha = a.schedule_warm("config", "o1", every=3600)
        hb = b.schedule_warm("config", "o1", every=3600)
        for _ in range(3):
            outcomes = await asyncio.gather(ha.tick(), hb.tick())
            assert sorted(outcomes) == ["skipped", "warmed"]
            clock.advance(3600)
        assert len(loads) == 3
        runs = a.stats()["warming"]["runs"] + b.stats()["warming"]["runs"]
        skipped = a.stats()["warming"]["skipped"] + b.stats()["warming"]["skipped"]
        assert (runs, skipped) == (3, 3)


async def test_a_blocking_close_from_another_thread_stops_scheduled_warms():
    m = CacheManager(namespace="warm")
    every_hour(m, [])
    handle = m.schedule_warm("config", "o1", every=3600)
    await asyncio.to_thread(m.sync.close)
    assert handle._task is not None
    await asyncio.wait([handle._task], timeout=5)
    assert handle._task.cancelled()
    assert await handle.tick() == "not due"


# --- cache.sync.schedule_warm: the same attempts, run by a thread, for code without a loop ---


def sync_every_hour(cache: CacheManager, loads: list):
    @cache.cached("config")
    def config(org: str) -> dict:
        loads.append(org)
        return {"org": org, "n": len(loads)}

    return config


def test_sync_schedule_warm_runs_once_per_period_until_cancelled(tier):
    clock = ManualClock()
    with tier.open_sync(namespace="warm", clock=clock) as m:
        loads: list = []
        config = sync_every_hour(m, loads)
        handle = m.sync.schedule_warm("config", "o1", every=3600)
        assert handle.tick() == "warmed"
        assert handle.tick() == "not due"
        assert m._engine.peek(config.key("o1"))[0]
        clock.advance(3600)
        assert handle.tick() == "warmed"
        assert config("o1") == {"org": "o1", "n": 2} and len(loads) == 2  # served the warmed value
        warming = m.stats()["warming"]
        assert (warming["runs"], warming["scheduled"]) == (2, 1)
        handle.cancel()
        clock.advance(3600)
        assert handle.tick() == "not due"
        assert m.stats()["warming"]["scheduled"] == 0 and len(loads) == 2


def test_sync_schedule_warm_runs_by_itself_and_close_ends_its_thread():
    """The thread's first wake (within ~1.1 periods of real time) warms the period no
    attempt has handled; close() cancels the handle and waits for the thread."""
    warmed = threading.Event()
    m = CacheManager(namespace="warm", clock=ManualClock())

    @m.cached("config")
    def config(org: str) -> dict:
        warmed.set()
        return {"org": org}

    handle = m.sync.schedule_warm("config", "o1", every=0.2)
    assert warmed.wait(10), "the scheduled warm's thread never ran it"
    m.sync.close()
    assert handle.cancelled and not handle._thread.is_alive()
    warming = m._warming.stats()  # (the closed manager's stats(): its counts, final once the thread ended)
    assert warming["scheduled"] == 0 and warming["runs"] == 1


def test_sync_schedule_warm_of_a_coroutine_loader_counts_failures():
    clock = ManualClock()
    m = CacheManager(namespace="warm", clock=clock)
    outage = SimpleNamespace(down=True)
    config = config_with_outage(m, outage)
    handle = m.sync.schedule_warm("config", "o1", every=3600)
    assert handle.tick() == "failed"
    outage.down = False
    clock.advance(3600)
    assert handle.tick() == "warmed"  # the coroutine ran on a loop of its own
    assert m._engine.peek(config.key("o1"))[0]
    assert (m.stats()["warming"]["failures"], m.stats()["warming"]["runs"]) == (1, 1)
    m.sync.close()


def test_sync_schedule_warm_refuses_bad_arguments():
    m = CacheManager(namespace="warm")
    sync_every_hour(m, [])
    for bad in (0, -1, float("inf"), "60", True):
        with pytest.raises(ValueError, match="every"):
            m.sync.schedule_warm("config", "o1", every=bad)
    with pytest.raises(UnknownResource):
        m.sync.schedule_warm("rooms", "o1", every=60)
    assert m.stats()["warming"]["scheduled"] == 0
    m.sync.close()


def test_two_instances_sync_warm_once_per_period_between_them(redis_url):
    clock = ManualClock()
    a = CacheManager(redis_url=redis_url, namespace="warm", clock=clock)
    b = CacheManager(redis_url=redis_url, namespace="warm", clock=clock)
    try:
        loads: list = []
        sync_every_hour(a, loads), sync_every_hour(b, loads)
        ha = a.sync.schedule_warm("config", "o1", every=3600)
        hb = b.sync.schedule_warm("config", "o1", every=3600)
        for first, second in [(ha, hb), (hb, ha), (ha, hb)]:
            assert (first.tick(), second.tick()) == ("warmed", "skipped")
            clock.advance(3600)
        assert len(loads) == 3
        runs = a.stats()["warming"]["runs"] + b.stats()["warming"]["runs"]
        skipped = a.stats()["warming"]["skipped"] + b.stats()["warming"]["skipped"]
        assert (runs, skipped) == (3, 3) and a.stats()["warming"]["runs"] == 2
    finally:
        a.sync.close(), b.sync.close()
