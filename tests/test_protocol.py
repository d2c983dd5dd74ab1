"""The read/write protocol under races and faults, driven step by step against a real
redis-server: no write lands after an invalidation that covers it, the memory tier is
not trusted without the invalidation channel, no caller waits for a write, signed
entries are bound to their key, internal keys cannot collide with user keys."""

from __future__ import annotations

import asyncio
import threading

import pytest

from herdcache import CacheManager, ManualClock, Policy

from background import eventually, settled, subscribed
from proxy import TcpProxy

pytestmark = pytest.mark.redis

SWR = Policy(ttl=0.3, stale=30, jitter=0)


class Gate:
    """A loader that stops until the test lets it go, returning what it is told."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.go = asyncio.Event()
        self.calls = 0
        self.value = None

    async def __call__(self):
        self.calls += 1
        self.entered.set()
        await asyncio.wait_for(self.go.wait(), 10)
        return self.value

    def release(self, value) -> None:
        self.value = value
        self.go.set()


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
async def pair(redis_url, clock):
    a = CacheManager(redis_url=redis_url, namespace="p", default_policy=SWR, clock=clock)
    b = CacheManager(redis_url=redis_url, namespace="p", default_policy=SWR, clock=clock)
    async with a, b:
        await subscribed(a, b)
        yield a, b


async def _stale_refresh_racing(pair, clock, invalidate):
    """a serves a stale copy and starts a refresh; b invalidates while it loads; the
    refresh's (old) result must be refused, in Redis and in a's memory."""
    a, b = pair
    key = a.key("rooms", "org-1")
    assert await a.get_or_load(key, lambda: "v1", tags=["org:1"]) == "v1"
    clock.advance(1.0)  # past ttl, inside stale
    gate = Gate()
    assert await a.get_or_load(key, gate, tags=["org:1"]) == "v1"  # stale, refresh started
    await asyncio.wait_for(gate.entered.wait(), 10)
    await invalidate(b)
    gate.release("old")
    await settled(a, b)
    calls = []

    def fresh_loader():
        calls.append(1)
        return "new"

    assert await b.get_or_load(b.key("rooms", "org-1"), fresh_loader, tags=["org:1"]) == "new"
    assert calls == [1], "b was served the refresh's result, written after the invalidation"
    assert await a.get(key) in (None, "new"), "a's memory kept the refused refresh"


@pytest.mark.parametrize("how", ["tag", "prefix", "resource", "pattern", "clear", "delete"])
async def test_a_refresh_does_not_write_after_an_invalidation(pair, clock, how):
    async def invalidate(b):
        if how == "tag":
            await b.invalidate_tags("org:1")
        elif how == "prefix":
            await b.invalidate("rooms", "org-1")
        elif how == "resource":
            await b.invalidate("rooms")
        elif how == "pattern":
            await b.invalidate_pattern("rooms:*")
        elif how == "clear":
            await b.clear()
        else:
            await b.delete(b.key("rooms", "org-1"))

    await _stale_refresh_racing(pair, clock, invalidate)


@pytest.mark.parametrize("bump", ["tag", "resource", "generation", "lease"])
async def test_a_refresh_is_refused_by_redis_when_the_broadcast_has_not_arrived(pair, clock, redis_server, bump):
    """The invalidation lands in Redis but its broadcast never reaches a (made by hand,
    as when a's subscriber lags): only the guard the refresh's write proves can refuse it."""
    a, b = pair
    key = a.key("rooms", "org-1")
    assert await a.get_or_load(key, lambda: "v1", tags=["org:1"]) == "v1"
    clock.advance(1.0)
    gate = Gate()
    assert await a.get_or_load(key, gate, tags=["org:1"]) == "v1"
    await asyncio.wait_for(gate.entered.wait(), 10)
    if bump == "tag":
        redis_server.command("INCR", "p#t:org:1")
    elif bump == "resource":
        redis_server.command("INCR", "p#p:rooms")
    elif bump == "generation":
        redis_server.command("INCR", "p#gen")
    else:
        redis_server.command("DEL", f"p#l:{key}")
    gate.release("old")
    await settled(a)
    assert a.stats()["redis"]["writes_refused"] == 1
    assert redis_server.command("HGET", str(key), "v") != b"old"


async def test_memory_only_refresh_and_load_do_not_store_after_an_invalidation(clock):
    async with CacheManager(namespace="p", default_policy=SWR, clock=clock) as m:
        key = m.key("rooms", "org-1")
        assert await m.get_or_load(key, lambda: "v1", tags=["org:1"]) == "v1"
        clock.advance(1.0)
        gate = Gate()
        assert await m.get_or_load(key, gate, tags=["org:1"]) == "v1"  # stale: refresh started
        await asyncio.wait_for(gate.entered.wait(), 10)
        await m.invalidate_tags("org:1")
        gate.release("old")
        await settled(m)
        assert await m.get(key) is None
        assert m.stats()["memory"]["fenced"] == 1

        # A miss's load, invalidated by prefix while it runs.
        gate = Gate()
        load = asyncio.ensure_future(m.get_or_load(key, gate, tags=["org:1"]))
        await asyncio.wait_for(gate.entered.wait(), 10)
        await m.invalidate("rooms", "org-1")
        gate.release("old")
        assert await load == "old"  # its callers get it...
        assert await m.get(key) is None  # ...but it is not kept
        assert m.stats()["memory"]["fenced"] == 2


@pytest.fixture
def proxy(redis_server):
    p = TcpProxy(redis_server.port)
    yield p
    p.close()


async def test_a_leader_does_not_wait_for_its_write_under_a_black_holed_redis(proxy, redis_server):
    """Redis stops answering after the lease read: the leader returns when its loader
    does; the write completes (here: after the network heals) in the background."""
    url = proxy.url + "?socket_timeout=60"  # no command can time out during the test
    async with CacheManager(redis_url=url, namespace="p", default_policy=Policy(ttl=60)) as m:
        key = m.key("rooms", "org-1")

        async def loader():
            proxy.blackhole()  # the read was answered; nothing after it will be, for now
            return "v1"

        leader = asyncio.ensure_future(m.get_or_load(key, loader))
        follower = asyncio.ensure_future(m.get_or_load(key, loader))
        # A deadline, not a speed: the write cannot be answered while the proxy holds it.
        assert await asyncio.wait_for(leader, 10) == "v1"
        assert await asyncio.wait_for(follower, 10) == "v1"
        assert [w for w in m._writes if not w.done()], "the write should still be unanswered"
        assert redis_server.command("HGET", str(key), "v") is None
        proxy.restore()
        await settled(m)
        assert redis_server.command("HGET", str(key), "v") is not None  # nothing lost
        assert m.stats()["errors"] == 0


@pytest.mark.parametrize("fault", ["cut", "blackhole"])
async def test_memory_is_not_served_while_the_invalidation_channel_is_lost(proxy, redis_url, fault):
    """Only a's subscriber connection fails; Redis keeps answering a's commands. From the
    moment a knows the channel is lost it reads Redis instead of its memory tier, and it
    starts over empty when the channel is back."""
    url = proxy.url + "?socket_timeout=0.3"  # a black-holed subscriber is found out in ~1.3 s
    policy = Policy(ttl=60, jitter=0)
    async with CacheManager(redis_url=url, namespace="s", default_policy=policy) as a, \
            CacheManager(redis_url=redis_url, namespace="s", default_policy=policy) as b:
        await subscribed(a, b)
        key = a.key("rooms", "org-1")
        assert await a.get_or_load(key, lambda: "v1", tags=["org:1"]) == "v1"
        await settled(a)
        assert a.stats()["memory_entries"] == 1

        proxy.refuse(b"SUBSCRIBE")  # its reconnects fail too
        if fault == "cut":
            assert proxy.cut(b"SUBSCRIBE") == 1
        else:
            assert proxy.blackhole(b"SUBSCRIBE") == 1
        await eventually(lambda: a.stats()["redis"]["memory_suspended"], timeout=10)
        assert a.stats()["redis"]["connected"]

        await b.set(b.key("rooms", "org-1"), "v2", tags=["org:1"])  # a cannot hear this one
        assert await a.get(key) == "v2"  # from Redis, not a's memory
        assert await a.get_or_load(key, lambda: "never", tags=["org:1"]) == "v2"
        loaded = []
        await b.invalidate_tags("org:1")
        assert await a.get_or_load(key, lambda: loaded.append(1) or "v3", tags=["org:1"]) == "v3"
        assert loaded == [1]
        health = a.stats()["redis"]
        assert health["memory_suspended"] and health["memory_suspensions"] == 1

        flushes = health["memory_flushes"]
        proxy.restore()
        await eventually(lambda: not a.stats()["redis"]["memory_suspended"], timeout=10)
        assert a.stats()["redis"]["memory_flushes"] == flushes + 1
        assert a.stats()["memory_entries"] == 0  # started over
        await settled(a)
        assert await a.get(key) == "v3"


async def test_a_follower_whose_lease_never_frees_loads_after_lock_timeout(redis_url, redis_server):
    """A lease held by someone who never fills it nor lets go (a hung process): the
    follower waits lock_timeout in all, once, then loads itself."""
    lock_timeout = 1.0
    async with CacheManager(redis_url=redis_url, namespace="f", lock_timeout=lock_timeout) as m:
        await subscribed(m)
        key = m.key("rooms", "org-1")
        redis_server.command("SET", f"f#l:{key}", "someone-else", "PX", "60000")
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await m.get_or_load(key, lambda: "loaded") == "loaded"
        waited = loop.time() - started
        stats = m.stats()["resources"]["rooms"]
        assert (stats["lease_waits"], stats["lease_timeouts"], stats["loads"]) == (1, 1, 1)
        # One lock_timeout, not one per read: before, 3 x lock_timeout.
        assert lock_timeout * 0.9 <= waited < 2 * lock_timeout


async def test_internal_keys_cannot_collide_with_user_keys(redis_url, redis_server):
    """Namespace "a#t" would write namespace "a"'s version key of a tag: its invalidation
    then failed with WRONGTYPE and was lost. Such names are refused up front."""
    for bad in ("a#t", "a{x}", "a*", "a b"):
        with pytest.raises(ValueError, match="key namespace must not contain"):
            CacheManager(redis_url=redis_url, namespace=bad)
    async with CacheManager(redis_url=redis_url, namespace="a") as m:
        with pytest.raises(ValueError, match="key resource must not contain '#'"):
            m.key("t#x", "y")
        with pytest.raises(ValueError, match="key resource must not contain"):
            await m.get_or_load(m.key("rooms:1"), lambda: 1)
        # Whatever the arguments and tags, a user entry is never an internal key.
        await m.set(m.key("t", "#t:x", p="#"), 1, tags=["x", "#t:x", "t:x"])
        assert await m.invalidate_tags("x", "#t:x", "t:x") >= 0
        for name in redis_server.command("SCAN", "0", "MATCH", "a*", "COUNT", "1000")[1]:
            kind = redis_server.command("TYPE", name)
            assert (name.startswith(b"a#") and kind == "string") or (name.startswith(b"a:") and kind == "hash"), name
        assert m.stats()["errors"] == 0


SIGNING_KEY = b"s" * 32
LONG = Policy(ttl=60, jitter=0, memory=False)  # every read goes to Redis


async def _tamper(redis_url, signing_key, tamper):
    """Stores {"admin": False} for rooms:1 tagged org:1, lets `tamper` edit Redis by hand,
    then returns what the manager reads for rooms:1 (from Redis) and its error count."""
    clock = ManualClock()
    async with CacheManager(redis_url=redis_url, namespace="g", default_policy=LONG, signing_key=signing_key,
                            clock=clock) as m:
        key = m.key("rooms", 1)
        await m.set(key, {"admin": False}, tags=["org:1"])
        assert await m.get(key) == {"admin": False}
        await tamper(m, key, clock)
        return await m.get(key), m.stats()["errors"]


def _copy_entry(redis_server, source, target):
    for field in (b"v", b"f", b"s", b"d", b"t", b"x"):
        redis_server.command("HSET", target, field, redis_server.command("HGET", source, field))


@pytest.mark.parametrize("attack", ["copied", "fresher", "tags", "dependencies", "payload"])
async def test_signed_entries_authenticate_everything_a_read_trusts(redis_url, redis_server, attack):
    async def tamper(m, key, clock):
        entry = str(key)
        if attack == "copied":  # a valid entry of another key, copied over this one
            other = m.key("rooms", 2)
            await m.set(other, {"admin": True}, tags=["org:1"])
            _copy_entry(redis_server, str(other), entry)
        elif attack == "fresher":
            clock.advance(120)  # past its ttl by the engine's clock: a miss...
            far = str(int(clock.time() * 1000) + 10**6)
            redis_server.command("HSET", entry, "f", far, "s", far)  # ...unless made fresh again
        elif attack == "tags":
            redis_server.command("HSET", entry, "t", b"")  # would survive invalidate_tags
            await m.invalidate_tags("org:1")
            redis_server.command("HSET", entry, "x", b"")
        elif attack == "dependencies":
            await m.invalidate_tags("org:1")  # the entry is out of date...
            redis_server.command("HSET", entry, "x", b"")  # ...unless its record is cleared
        else:
            v = redis_server.command("HGET", entry, "v")
            redis_server.command("HSET", entry, "v", v.replace(b"false", b"true "))

    # Without a signing key each edit serves the wrong value: the attack is real, and
    # signing is what stops it.
    value, _ = await _tamper(redis_url, None, tamper)
    assert value == ({"admin": True} if attack in ("copied", "payload") else {"admin": False})
    value, errors = await _tamper(redis_url, SIGNING_KEY, tamper)
    assert value is None
    assert errors >= 1


async def test_a_forged_pickle_entry_is_never_loaded(redis_url, redis_server):
    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('code ran on load')",))

    import pickle

    async with CacheManager(redis_url=redis_url, namespace="g", default_policy=LONG, serializer="pickle",
                            signing_key=SIGNING_KEY) as m:
        key = m.key("rooms", 3)
        await m.set(key, "fine")
        redis_server.command("HSET", str(key), "v", b"HC\x01" + b"\x00" * 32 + pickle.dumps(Evil()))
        assert await m.get(key) is None
        assert await m.get_or_load(key, lambda: "reloaded") == "reloaded"
        await settled(m)
        assert await m.get(key) == "reloaded"


async def test_signed_entries_work_on_every_write_path(redis_url):
    async with CacheManager(redis_url=redis_url, namespace="h", default_policy=LONG, signing_key=SIGNING_KEY) as a, \
            CacheManager(redis_url=redis_url, namespace="h", default_policy=LONG, signing_key=SIGNING_KEY) as b:
        key = a.key("counter", 1)
        assert await a.add(key, 1)
        assert not await b.add(b.key("counter", 1), 5)
        assert await b.compare_and_set(b.key("counter", 1), 1, 2)  # compared by value, not by MAC
        assert await a.get(key) == 2
        assert await a.get_or_load(a.key("rooms", 1), lambda: ["r"], tags=["org:1"]) == ["r"]
        await settled(a)
        assert await b.get(b.key("rooms", 1)) == ["r"]
        assert a.stats()["errors"] == b.stats()["errors"] == 0


@pytest.mark.parametrize("tier", ["memory", "redis"])
async def test_a_cancelled_leader_does_not_cancel_its_followers(redis_url, redis_server, tier):
    """The leader runs the load itself; cancelled mid-load while a follower waits, the load
    starts over for the follower (under the same lease), and only the leader is cancelled."""
    url = redis_url if tier == "redis" else None
    async with CacheManager(redis_url=url, namespace="c", default_policy=Policy(ttl=60)) as m:
        if url:
            await subscribed(m)
        key = m.key("rooms", 1)
        first, second = Gate(), Gate()
        loaders = iter([first, second])

        def loader():
            return next(loaders)()

        leader = asyncio.ensure_future(m.get_or_load(key, loader))
        await asyncio.wait_for(first.entered.wait(), 10)
        follower = asyncio.ensure_future(m.get_or_load(key, loader))
        await asyncio.sleep(0)  # the follower joins the flight
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        await asyncio.wait_for(second.entered.wait(), 10)  # the load started over
        second.release("v")
        assert await asyncio.wait_for(follower, 10) == "v"
        stats = m.stats()["resources"]["rooms"]
        assert (stats["loads"], stats["lease_waits"], stats["lease_timeouts"]) == (2, 0, 0)
        await settled(m)
        assert await m.get(key) == "v"


async def test_a_cancelled_lone_leader_gives_its_lease_back(redis_url, redis_server):
    async with CacheManager(redis_url=redis_url, namespace="c", default_policy=Policy(ttl=60)) as m:
        await subscribed(m)
        key = m.key("rooms", 2)
        gate = Gate()
        leader = asyncio.ensure_future(m.get_or_load(key, gate))
        await asyncio.wait_for(gate.entered.wait(), 10)
        assert redis_server.command("GET", f"c#l:{key}") is not None  # its lease
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        await settled(m)
        assert redis_server.command("GET", f"c#l:{key}") is None  # released: nobody waits lock_timeout
        assert not m._engine.in_flight(key)
        assert await m.get_or_load(key, lambda: "fresh") == "fresh"


async def test_a_loader_that_raises_cancelled_error_fails_its_flight_once():
    """Only a cancelled leader's load starts over, and only once: a loader that raises
    CancelledError itself reaches its followers, rather than starting over forever."""
    async with CacheManager(namespace="c") as m:
        key = m.key("rooms", 3)
        calls = []
        entered, go = asyncio.Event(), asyncio.Event()

        async def loader():
            calls.append(1)
            entered.set()
            await go.wait()
            raise asyncio.CancelledError()

        leader = asyncio.ensure_future(m.get_or_load(key, loader))
        await asyncio.wait_for(entered.wait(), 10)
        follower = asyncio.ensure_future(m.get_or_load(key, lambda: "never"))
        await asyncio.sleep(0)  # the follower joins the flight
        go.set()
        for outcome in await asyncio.wait_for(asyncio.gather(leader, follower, return_exceptions=True), 10):
            assert isinstance(outcome, asyncio.CancelledError)
        assert len(calls) == 2  # the first run, and the one start-over
        assert not m._engine.in_flight(key)


def test_a_blocking_leader_does_not_wait_for_its_write_either(proxy, redis_server):
    """The same for cache.sync (Django, threads): the write is sent without blocking, in
    order with the caller's later commands, and answered in the background."""
    m = CacheManager(redis_url=proxy.url + "?socket_timeout=60", namespace="p", default_policy=Policy(ttl=60))
    try:
        key = m.key("rooms", "sync")
        m.sync.start()

        def loader():
            proxy.blackhole()
            return "v1"

        done = []
        caller = threading.Thread(target=lambda: done.append(m.sync.get_or_load(key, loader)), daemon=True)
        caller.start()
        caller.join(10)  # a deadline, not a speed: the write cannot be answered meanwhile
        assert done == ["v1"]
        assert any(not w.done() for w in m._writes), "the write should still be unanswered"
        assert redis_server.command("HGET", str(key), "v") is None
        proxy.restore()
    finally:
        m.sync.close()  # waits for the pending write
    assert redis_server.command("HGET", str(key), "v") is not None  # nothing lost


async def test_an_early_refresh_does_not_write_after_an_invalidation(redis_url, clock):
    """XFetch's early refresh of a still-fresh copy, raced by another instance's tag
    invalidation: refused like any refresh."""
    eager = Policy(ttl=60, jitter=0, early_refresh=1e9)  # any load time makes every read refresh early
    a = CacheManager(redis_url=redis_url, namespace="x", default_policy=eager, clock=clock)
    b = CacheManager(redis_url=redis_url, namespace="x", default_policy=eager, clock=clock)
    async with a, b:
        await subscribed(a, b)
        key = a.key("rooms", "org-1")

        def first_load():
            clock.advance(0.05)  # a load that took 50 ms: XFetch's delta
            return "v1"

        assert await a.get_or_load(key, first_load, tags=["org:1"]) == "v1"
        await settled(a)
        gate = Gate()
        assert await a.get_or_load(key, gate, tags=["org:1"]) == "v1"  # fresh, served, refreshed early
        await asyncio.wait_for(gate.entered.wait(), 10)
        await b.invalidate_tags("org:1")
        gate.release("old")
        await settled(a, b)
        assert await b.get_or_load(b.key("rooms", "org-1"), lambda: "new", tags=["org:1"]) == "new"


async def test_a_warm_does_not_write_after_an_invalidation(pair):
    a, b = pair
    gate = Gate()

    @a.cached("rooms", tags=lambda org: [f"org:{org}"])
    async def rooms(org):
        return await gate()

    gate.release("v1")
    assert await rooms("1") == "v1"
    await settled(a)
    gate = Gate()
    warm = asyncio.ensure_future(a.warm("rooms", "1"))
    await asyncio.wait_for(gate.entered.wait(), 10)
    await b.invalidate_tags("org:1")
    gate.release("old")
    assert await warm == "old"  # the warm's caller gets what it loaded...
    await settled(a, b)
    assert await b.get_or_load(b.key("rooms", "1"), lambda: "new", tags=["org:1"]) == "new"  # ...not cached
