"""The stale-set race of dependencies: an entry whose loader read another key must not be
stored as current when that key is invalidated between the read and the entry's write.

Each test drives the race step by step: the outer loader reads the inner key, then waits
on an event while another manager invalidates the inner key, then finishes. Manager a
(the one loading) reaches Redis through a proxy that holds its invalidation channel
meanwhile, so a hears of the invalidation only after its write: nothing but the write's
guard can keep the outer entry out. Afterwards neither manager serves the outer entry:
the next read reloads it from the new inner value."""

from __future__ import annotations

import asyncio

import pytest

from herdcache import CacheManager, ManualClock, Policy
from herdcache._native import KEY_VERSION_KEEP_MS

from background import eventually, settled, subscribed
from proxy import TcpProxy

DEADLINE_S = 10  # a bound on each wait, not a speed


@pytest.fixture
def proxy(redis_server):
    p = TcpProxy(redis_server.port)
    yield p
    p.close()


class Paused:
    """A loader body that reads through `read`, then waits until released."""

    def __init__(self, read) -> None:
        self.read = read
        self.has_read = asyncio.Event()
        self.go = asyncio.Event()

    async def __call__(self):
        value = await self.read()
        await self.pause()
        return value

    async def pause(self) -> None:
        self.has_read.set()
        await self.go.wait()


async def run_paused(load, paused: Paused, while_paused):
    """Starts `load`, waits for its inner read, runs `while_paused`, lets it finish."""
    task = asyncio.ensure_future(load)
    await asyncio.wait_for(paused.has_read.wait(), DEADLINE_S)
    await while_paused()
    paused.go.set()
    return await asyncio.wait_for(task, DEADLINE_S)


async def delete_inner(b, inner):
    await b.delete(inner)


async def invalidate_inner_tag(b, inner):
    await b.invalidate_tags("org:o1")


async def invalidate_inner_prefix(b, inner):
    await b.invalidate("config", "o1")


INVALIDATIONS = [delete_inner, invalidate_inner_tag, invalidate_inner_prefix]


async def two_managers(proxy, redis_url):
    policy = Policy(ttl=600, jitter=0)
    # a's channel is held by the proxy in the tests: no timeout may find that out meanwhile
    a = CacheManager(redis_url=proxy.url + "?socket_timeout=60", namespace="race", default_policy=policy)
    b = CacheManager(redis_url=redis_url, namespace="race", default_policy=policy)
    await a.start()
    await b.start()
    await subscribed(a, b)
    return a, b


async def hear_late(proxy, a, b, inner, invalidate):
    """b invalidates `inner` and stores its new value while a's channel is held."""
    assert proxy.blackhole(b"SUBSCRIBE") == 1
    await invalidate(b, inner)
    await b.set(inner, {"v": 2}, tags=["org:o1"])


async def after_the_race(proxy, a, b, inner, outer, rebuild):
    """a hears b's invalidations; then neither serves the outer entry built from v1."""
    await settled(a, b)
    proxy.restore()
    await eventually(lambda: not a._engine.peek(inner)[0], timeout=DEADLINE_S)
    assert await b.get(outer) is None
    assert await b.get_or_load(outer, rebuild(b)) == 2
    assert await a.get_or_load(outer, rebuild(a)) == 2


def rebuild_from(inner):
    def rebuild(m):
        async def load():
            return (await m.get(inner))["v"]
        return load
    return rebuild


@pytest.mark.parametrize("invalidate", INVALIDATIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("inner_read", ["get", "get_or_load"])
async def test_an_invalidation_between_the_inner_read_and_the_outer_write_refuses_the_write(
        proxy, redis_url, invalidate, inner_read):
    a, b = await two_managers(proxy, redis_url)
    try:
        inner, outer = a.key("config", "o1"), a.key("report", "o1")
        await a.set(inner, {"v": 1}, tags=["org:o1"])

        async def read_inner():
            if inner_read == "get":
                return (await a.get(inner))["v"]
            return (await a.get_or_load(inner, lambda: {"v": 0}, tags=["org:o1"]))["v"]

        paused = Paused(read_inner)
        built = await run_paused(a.get_or_load(outer, paused), paused,
                                 lambda: hear_late(proxy, a, b, inner, invalidate))
        assert built == 1  # its caller gets what it built...
        await settled(a)
        assert a.stats()["redis"]["writes_refused"] == 1  # ...but Redis refused to keep it
        await after_the_race(proxy, a, b, inner, outer, rebuild_from(inner))
    finally:
        await a.close()
        await b.close()


async def test_an_inner_key_loaded_inside_the_loader_is_fenced_as_well(proxy, redis_url):
    """The inner key is not cached anywhere: the outer loader's read loads it."""
    a, b = await two_managers(proxy, redis_url)
    try:
        inner, outer = a.key("config", "o1"), a.key("report", "o1")

        async def read_inner():
            return (await a.get_or_load(inner, lambda: {"v": 1}, tags=["org:o1"]))["v"]

        paused = Paused(read_inner)
        assert await run_paused(a.get_or_load(outer, paused), paused,
                                lambda: hear_late(proxy, a, b, inner, delete_inner)) == 1
        await after_the_race(proxy, a, b, inner, outer, rebuild_from(inner))
    finally:
        await a.close()
        await b.close()


async def test_an_invalidation_reaches_through_an_entry_built_from_it_during_the_race(proxy, redis_url):
    """slots <- departments <- config: slots' loader reads departments (whose loader reads
    config); config is deleted while slots' loader still runs. Neither departments nor
    slots built from the old config is served afterwards."""
    a, b = await two_managers(proxy, redis_url)
    try:
        version = {"config": 1}

        def service(m, paused=None):
            @m.cached("config")
            async def config(org: str) -> dict:
                return {"v": version["config"]}

            @m.cached("departments")
            async def departments(org: str) -> dict:
                return {"v": (await config(org))["v"]}

            @m.cached("slots")
            async def slots(org: str) -> int:
                v = (await departments(org))["v"]
                if paused is not None:
                    await paused.pause()
                return v

            return config, slots

        paused = Paused(None)
        config_a, slots_a = service(a, paused)
        config_b, slots_b = service(b)

        async def delete_config():
            assert proxy.blackhole(b"SUBSCRIBE") == 1
            version["config"] = 2
            await b.delete(config_b.key("o1"))

        assert await run_paused(slots_a("o1"), paused, delete_config) == 1
        await settled(a, b)
        proxy.restore()
        await eventually(lambda: not a._engine.peek(config_a.key("o1"))[0], timeout=DEADLINE_S)
        assert await slots_b("o1") == 2
        assert await slots_a("o1") == 2  # paused.go is set: a's loader runs through
    finally:
        await a.close()
        await b.close()


async def _v(read):
    return (await read)["v"]  # what the loaders here build from the inner value


@pytest.mark.parametrize("invalidate", ["delete", "tag", "prefix"])
async def test_the_memory_tier_alone_refuses_an_entry_built_before_an_invalidation(invalidate):
    async with CacheManager(namespace="race", default_policy=Policy(ttl=600, jitter=0)) as m:
        inner, outer = m.key("config", "o1"), m.key("report", "o1")
        await m.set(inner, {"v": 1}, tags=["org:o1"])
        paused = Paused(lambda: _v(m.get(inner)))

        async def invalidate_inner():
            if invalidate == "delete":
                await m.delete(inner)
            elif invalidate == "tag":
                await m.invalidate_tags("org:o1")
            else:
                await m.invalidate("config", "o1")
            await m.set(inner, {"v": 2}, tags=["org:o1"])

        assert await run_paused(m.get_or_load(outer, paused), paused, invalidate_inner) == 1
        assert await m.get(outer) is None
        assert await m.get_or_load(outer, rebuild_from(inner)(m)) == 2


async def test_a_delete_bumps_the_keys_dependency_version_even_with_nothing_built_from_it(redis_server):
    """A load in flight may have read the key without anything built from it in Redis yet:
    the delete must still move the version its write will check. The version key then
    lives for a bounded time (RedisTier::kKeyVersionKeepMs, 10 minutes), not forever."""
    async with CacheManager(redis_url=redis_server.url, namespace="race") as m:
        key = m.key("config", "o1")
        version_key = f"race#t:#k:{key}"
        await m.set(key, 1)
        await m.delete(key)
        await m.delete(key)  # deleting an absent key counts too: a load may have seen it absent
        assert redis_server.command("GET", version_key) in (b"2", "2")
        assert 0 < redis_server.command("PTTL", version_key) <= KEY_VERSION_KEEP_MS


async def test_a_load_built_from_other_entries_that_ran_past_the_versions_keep_is_not_written(redis_server):
    """A delete's version of the inner key lives KEY_VERSION_KEEP_MS: a load that read the
    key and ran for half of that may be past a delete nothing can show any more, so its
    value serves its caller and this instance's memory but is not written to Redis; one
    that ran less is written. The clock is the manager's own (injected)."""
    clock = ManualClock()
    async with CacheManager(redis_url=redis_server.url, namespace="keep", clock=clock,
                            default_policy=Policy(ttl=3600, jitter=0)) as m:
        inner = m.key("config", "o1")
        await m.set(inner, {"v": 1})

        def built_after(seconds: float):
            async def loader():
                value = (await m.get(inner))["v"]
                clock.advance(seconds)
                return value
            return loader

        short, long = m.key("slots", "short"), m.key("slots", "long")
        assert await m.get_or_load(short, built_after(1)) == 1
        assert await m.get_or_load(long, built_after(KEY_VERSION_KEEP_MS / 2000 + 1)) == 1
        await settled(m)
        assert redis_server.command("EXISTS", str(short)) == 1
        assert redis_server.command("EXISTS", str(long)) == 0  # not written: nothing proves it current
        assert m._engine.peek(long)[0]  # this instance keeps it: its own fence saw every invalidation
        assert redis_server.command("EXISTS", f"keep#l:{long}") == 0  # and its lease was given back
