"""cache.sync from threads: blocking API with the same behaviour; run on every tier (the
`tier` fixture: memory alone, and memory in front of Redis)."""

import threading
import time

import pytest

from herdcache import ManualClock, Policy


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def cache(tier, clock):
    with tier.open_sync(policies={"r": Policy(ttl=10, stale=5, jitter=0)}, clock=clock) as c:
        yield c


def test_sync_api(cache):
    s = cache.sync
    key = s.key("r", 1)
    assert s.get(key) is None
    s.set(key, [1], tags=["t"])
    assert s.get(key) == [1]
    assert s.get_or_load(key, lambda: [2]) == [1]
    assert s.invalidate_tags("t") == 1
    assert s.get_or_load(key, lambda: [2]) == [2]
    assert s.delete(key) is True
    s.set(key, 1)
    assert s.invalidate("r", 1) == 1
    s.set(key, 1)
    assert s.invalidate_pattern("r:*") == 1
    s.set(key, 1)
    assert s.clear() == 1
    assert s.stats()["memory_entries"] == 0


def test_threads_coalesce_into_one_load(cache):
    calls = 0
    gate = threading.Event()

    def loader():
        nonlocal calls
        calls += 1
        gate.wait(5)
        return "v"

    key = cache.key("r", "herd")
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.sync.get_or_load(key, loader))) for _ in range(32)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while cache.stats()["coalesced"] < 31 and time.monotonic() < deadline:
        time.sleep(0.001)
    gate.set()
    for t in threads:
        t.join(5)
    assert calls == 1 and results == ["v"] * 32


def test_async_loader_from_sync_api(cache):
    async def loader():
        return 7

    assert cache.sync.get_or_load(cache.key("r", "a"), loader) == 7


def test_sync_stale_refresh_runs_in_background(cache, clock):
    calls = 0
    gate = threading.Event()

    def loader():
        nonlocal calls
        calls += 1
        if calls > 1:
            gate.wait(5)
        return calls

    key = cache.key("r", "swr")
    assert cache.sync.get_or_load(key, loader) == 1
    clock.advance(11)
    assert cache.sync.get_or_load(key, loader) == 1  # stale, at once
    assert cache.sync.get_or_load(key, loader) == 1
    gate.set()
    deadline = time.monotonic() + 5
    while cache.sync.get(key) != 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert calls == 2 and cache.sync.get(key) == 2


def test_sync_close(cache):
    key = cache.key("r", 1)
    cache.sync.close()
    with pytest.raises(RuntimeError, match="closed"):
        cache.sync.get_or_load(key, lambda: 1)
