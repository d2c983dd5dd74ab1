"""Stampedes across processes: leases, fills, revoked writes, the bulkhead, XFetch."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from herdcache import CacheManager, ManualClock, Policy

from background import settled

WORKER = str(Path(__file__).with_name("stampede_worker.py"))


def spawn(redis_url, key, tasks, **options):
    return subprocess.Popen(
        [sys.executable, WORKER, redis_url, "get_or_load", key, str(tasks), json.dumps(options)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )


def result_of(proc, timeout=60):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_four_processes_on_a_cold_key_load_once(redis_server):
    start_at = time.time() + 1.5  # every process past its start-up before the herd arrives
    procs = [spawn(redis_server.url, "cold", 250, start_at=start_at, load_seconds=0.3) for _ in range(4)]
    results = [result_of(p) for p in procs]
    assert int(redis_server.command("GET", "loads:cold")) == 1
    values = [v for r in results for v in r["values"]]
    assert len(values) == 1000 and all(v == {"key": "cold", "load": 1} for v in values)
    assert sum(r["stats"]["loads"] for r in results) == 1
    assert sum(r["stats"]["lease_waits"] for r in results) >= 3  # the other processes waited
    assert sum(r["stats"]["lease_timeouts"] for r in results) == 0


def test_leader_killed_mid_load_followers_take_over(redis_server):
    leader = spawn(redis_server.url, "dies", 1, load_seconds=30, lock_timeout=1.5, announce=True)
    deadline = time.monotonic() + 20
    while redis_server.command("GET", "loading:dies") is None:
        assert time.monotonic() < deadline and leader.poll() is None, "the leader never started loading"
        time.sleep(0.01)
    followers = [spawn(redis_server.url, "dies", 50, load_seconds=0.1, lock_timeout=1.5) for _ in range(2)]
    time.sleep(0.3)  # the followers are waiting on the lease
    leader.send_signal(signal.SIGKILL)
    leader.communicate()
    results = [result_of(p) for p in followers]
    assert int(redis_server.command("GET", "loads:dies")) == 2  # the dead one, then one more
    values = [v for r in results for v in r["values"]]
    assert all(v == {"key": "dies", "load": 2} for v in values)
    assert max(w for r in results for w in r["waits"]) < 1.5 * 3 + 5  # nobody hung


def test_two_processes_serve_stale_and_one_refreshes(redis_server):
    async def seed():
        async with CacheManager(redis_url=redis_server.url, namespace="st",
                                policies={"r": Policy(ttl=10, stale=100, jitter=0)}) as cache:
            await cache.set(cache.key("r", "stale"), {"key": "stale", "load": 0})

    asyncio.run(seed())
    redis_server.command("SET", "loads:stale", "0")
    start_at = time.time() + 1.5
    procs = [spawn(redis_server.url, "stale", 20, ttl=10, stale=100, advance=11, load_seconds=0.5,
                   start_at=start_at, wait_refresh=True) for _ in range(2)]
    results = [result_of(p) for p in procs]
    for r in results:
        # every caller got the stale value (load 0), none the refreshed one: nobody waited for it
        assert all(v == {"key": "stale", "load": 0} for v in r["values"])
        assert r["stats"]["stale_served"] >= 1
    assert int(redis_server.command("GET", "loads:stale")) == 1  # one refresh, across both


@pytest.mark.parametrize("how", ["delete", "prefix", "tags", "pattern", "clear"])
async def test_invalidation_during_a_slow_load_refuses_its_write(redis_url, how):
    policies = {"r": Policy(ttl=60, jitter=0, memory=False)}
    async with CacheManager(redis_url=redis_url, policies=policies) as a, \
            CacheManager(redis_url=redis_url, policies=policies) as b:
        key = a.key("r", "o1", 1)
        loading, release = asyncio.Event(), asyncio.Event()
        db = {"version": "old"}

        async def slow_loader():
            value = db["version"]  # read before the change...
            loading.set()
            await release.wait()
            return value  # ...returned after it

        load = asyncio.ensure_future(a.get_or_load(key, slow_loader, tags=["org:1"]))
        await loading.wait()
        db["version"] = "new"
        if how == "delete":
            await b.delete(b.key("r", "o1", 1))
        elif how == "prefix":
            await b.invalidate("r", "o1")
        elif how == "tags":
            await b.invalidate_tags("org:1")
        elif how == "pattern":
            await b.invalidate_pattern("r:o1:*")
        else:
            await b.clear()
        release.set()
        assert await load == "old"  # its callers get what it loaded...
        await settled(a)
        # ...but it is not cached: refused by a's own fence if b's broadcast reached it
        # first, else by the Redis guard.
        assert a.stats()["memory"]["fenced"] + a.stats()["redis"]["writes_refused"] == 1
        assert await b.get(b.key("r", "o1", 1)) is None
        assert await b.get_or_load(b.key("r", "o1", 1), slow_loader_new(db), tags=["org:1"]) == "new"


def slow_loader_new(db):
    async def loader():
        return db["version"]
    return loader


async def test_bulkhead_bounds_concurrent_loaders(redis_url):
    running = peak = 0

    async def loader():
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return 1

    async with CacheManager(redis_url=redis_url, max_concurrent_loads=4) as cache:
        await asyncio.gather(*(cache.get_or_load(cache.key("r", i), loader) for i in range(100)))
        assert peak == 4
        assert cache.stats()["loads"] == 100


async def test_bulkhead_on_the_memory_tier_and_threads():
    import threading

    running = peak = 0
    lock = threading.Lock()

    def loader():
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return 1

    cache = CacheManager(max_concurrent_loads=3)
    threads = [threading.Thread(target=lambda i=i: cache.sync.get_or_load(cache.key("r", i), loader)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak == 3


async def test_early_refresh_xfetch():
    clock = ManualClock()
    async with CacheManager(policies={"x": Policy(ttl=100, early_refresh=1.0, jitter=0),
                                      "plain": Policy(ttl=100, jitter=0)}, clock=clock) as cache:
        calls = {"x": 0, "plain": 0}

        @cache.cached("x")
        async def x():
            calls["x"] += 1
            if calls["x"] == 1:
                clock.advance(2)  # the first load "took" 2 s: XFetch's delta
            return calls["x"]

        @cache.cached("plain")
        async def plain():
            calls["plain"] += 1
            return calls["plain"]

        await x()
        await plain()
        for _ in range(50):  # far from expiry, a 2 s load is not refreshed early
            await x()
        assert calls["x"] == 1
        clock.advance(98)  # 2 s before expiry: each read refreshes with probability 1/e
        for _ in range(50):
            assert await x() >= 1
            assert await plain() == 1
            while cache.stats()["background_tasks"]:
                await asyncio.sleep(0)
        assert calls["x"] >= 2
        assert calls["plain"] == 1


async def test_slow_loads_are_logged(caplog):
    clock = ManualClock()

    def loader():
        clock.advance(3)
        return 1

    async with CacheManager(clock=clock, slow_load_threshold=2.0) as cache:
        with caplog.at_level("WARNING", logger="herdcache"):
            await cache.get_or_load(cache.key("r", 1), loader)
            await cache.get_or_load(cache.key("r", 2), lambda: 2)
    assert caplog.text.count("slow load") == 1
    assert "r:1 took 3.000 s" in caplog.text


# --- the Lua scripts' edge cases, through the engine's shared-tier calls -----------------

from herdcache._native import LEASE_GRANTED as GRANTED, LEASE_HELD as HELD  # noqa: E402
from herdcache._native import STATUS_DONE as DONE, STATUS_HIT as HIT, STATUS_MISS as MISS  # noqa: E402
from herdcache._native import STATUS_REFUSED as REFUSED  # noqa: E402


def read(cache, key, token, lease_s=10.0, before=None):
    engine = cache._engine
    return engine.l2_read(key, [], token, lease_s, engine.wall_ns() if before is None else before, None)


def write(cache, key, value, guard):
    engine = cache._engine
    now = engine.wall_ns()
    return engine.l2_write(key, cache._codec.encode(value), now + 60 * 10**9, now + 60 * 10**9, 0.0, [], guard, False, None)


def test_script_missing_key_grants_one_lease(redis_url):
    cache = CacheManager(redis_url=redis_url)
    try:
        cache.sync.start()
        key = cache.key("r", "m")
        first = read(cache, key, "t1")
        assert (first.status, first.lease) == (MISS, GRANTED)
        second = read(cache, key, "t2")
        assert (second.status, second.lease) == (MISS, HELD)
        assert write(cache, key, "v", second.guard("t2")).status == REFUSED  # not its lease
        assert write(cache, key, "v", first.guard("t1")).status == DONE
        hit = read(cache, key, "t3")
        assert hit.status == HIT and hit.lease == 0  # fresh: no lease taken
    finally:
        cache.sync.close()


def test_script_expired_lease_passes_to_the_next_reader(redis_url, redis_server):
    cache = CacheManager(redis_url=redis_url)
    try:
        cache.sync.start()
        key = cache.key("r", "e")
        first = read(cache, key, "t1", lease_s=0.05)
        assert first.lease == GRANTED
        redis_server.command("PEXPIRE", f"app#l:{key}", "1")  # the holder died; its lease runs out
        deadline = time.monotonic() + 2
        while redis_server.command("EXISTS", f"app#l:{key}") and time.monotonic() < deadline:
            time.sleep(0.005)
        second = read(cache, key, "t2")
        assert second.lease == GRANTED
        assert write(cache, key, "late", first.guard("t1")).status == REFUSED  # the dead one's write
        assert write(cache, key, "v", second.guard("t2")).status == DONE
    finally:
        cache.sync.close()


def test_script_revoked_lease_refuses_the_write(redis_url):
    cache = CacheManager(redis_url=redis_url)
    try:
        cache.sync.start()
        key = cache.key("r", "rv")
        first = read(cache, key, "t1")
        cache.sync.delete(key)  # revokes the lease
        assert write(cache, key, "v", first.guard("t1")).status == REFUSED
        again = read(cache, key, "t2")
        cache.sync.invalidate_pattern("r:*")  # bumps the generation
        assert write(cache, key, "v", again.guard("t2")).status == REFUSED
        third = read(cache, key, "t3")
        assert write(cache, key, "v", third.guard("t3")).status == DONE
    finally:
        cache.sync.close()


def test_script_stale_entry_grants_a_refresh_lease_once(redis_url):
    cache = CacheManager(redis_url=redis_url)
    try:
        cache.sync.start()
        key = cache.key("r", "s")
        engine = cache._engine
        now = engine.wall_ns()
        engine.l2_write(key, cache._codec.encode("v"), now - 1, now + 60 * 10**9, 0.0, [], None, False, None)
        a = read(cache, key, "ta")
        b = read(cache, key, "tb")
        assert (a.status, a.lease) == (HIT, GRANTED)
        assert (b.status, b.lease) == (HIT, 0)
    finally:
        cache.sync.close()


async def test_a_lease_read_in_a_herd_is_answered_before_the_herd_runs(redis_url):
    # A flight leader's lease read made while many callbacks are ready (the first steps of
    # the callers that came with it) waits for its reply, so the load can start at once
    # instead of after all of them. Without a herd it is awaited like any other read.
    async with CacheManager(redis_url=redis_url) as cache:
        engine, loop = cache._engine, asyncio.get_running_loop()
        await cache.get_or_load(cache.key("r", "warm"), lambda: 1)  # connected, scripts loaded
        bridge = cache._bridge()

        def lease_read(name):
            return engine.l2_read(cache.key("r", name), [], "token-" + name, 10.0, engine.wall_ns(), bridge)

        quiet = lease_read("quiet")
        assert not quiet.done()  # no herd: sent at once, answered through the loop
        assert (await quiet).lease == GRANTED

        for attempt in range(5):  # a reply slower than the 2 ms bound is awaited instead
            ran = []
            for i in range(100):
                loop.call_soon(ran.append, i)
            read = lease_read(f"herd-{attempt}")
            answered_first = read.done() and not ran
            await asyncio.sleep(0)  # the herd runs
            assert len(ran) == 100 and (await read).lease == GRANTED
            if answered_first:
                break
        assert answered_first


async def test_without_herds_a_lease_read_is_batched_and_not_waited_for(redis_url):
    # 100 tasks missing distinct keys also leave many callbacks ready; stalling the loop
    # for each of their lease reads ran one task at a time. After 64 flights in a row
    # without followers, a lease read goes out with the iteration's batch, unwaited.
    async with CacheManager(redis_url=redis_url) as cache:
        engine, loop = cache._engine, asyncio.get_running_loop()
        for i in range(70):  # flights that nobody followed
            await cache.get_or_load(cache.key("r", f"alone-{i}"), lambda: 1)
        bridge = cache._bridge()
        ran = []
        for i in range(100):
            loop.call_soon(ran.append, i)
        read = engine.l2_read(cache.key("r", "quiet"), [], "token-quiet", 10.0, engine.wall_ns(), bridge)
        assert not read.done() and not ran  # neither sent at once nor waited for
        assert (await read).lease == GRANTED
        assert len(ran) == 100
