"""Dependencies between entries: an entry loaded while its loader read other keys through
the cache (or with depends_on=) goes when any of them is invalidated, by any means,
transitively, in every instance; the inner entry's own expiry does not count."""

from __future__ import annotations

import pytest

from herdcache import CacheManager, ManualClock, Policy

from background import eventually, settled, subscribed


class Service:
    """config(org) <- departments(org) <- slots(org): slots are built from departments,
    which are built from the org's config, and nothing is tagged by hand."""

    def __init__(self, cache: CacheManager) -> None:
        self.loads: dict[str, int] = {"config": 0, "departments": 0, "slots": 0}
        self.version = 1

        @cache.cached("config")
        async def config(org: str) -> dict:
            self.loads["config"] += 1
            return {"org": org, "version": self.version}

        @cache.cached("departments", tags=lambda org: [f"org:{org}"])
        async def departments(org: str) -> list:
            self.loads["departments"] += 1
            return [f"{org}-d{(await config(org))['version']}"]

        @cache.cached("slots")
        async def slots(org: str) -> list:
            self.loads["slots"] += 1
            return [f"slot/{d}" for d in await departments(org)]

        self.config, self.departments, self.slots = config, departments, slots


async def invalidate_config_by_key(m, svc):
    return await m.delete(svc.config.key("o1"))


async def invalidate_config_by_prefix(m, svc):
    return await m.invalidate("config", "o1")


async def invalidate_config_resource(m, svc):
    return await m.invalidate("config")


async def invalidate_config_by_pattern(m, svc):
    return await m.invalidate_pattern("config:*")


async def invalidate_departments_tag(m, svc):
    return await m.invalidate_tags("org:o1")


INVALIDATIONS = [invalidate_config_by_key, invalidate_config_by_prefix, invalidate_config_resource,
                 invalidate_config_by_pattern]


@pytest.mark.parametrize("invalidate", INVALIDATIONS, ids=lambda f: f.__name__)
async def test_invalidating_what_an_entry_was_built_from_invalidates_it_transitively(tier, invalidate):
    async with tier.open(namespace="deps") as m:
        svc = Service(m)
        assert await svc.slots("o1") == ["slot/o1-d1"]
        assert await svc.slots("o1") == ["slot/o1-d1"]
        assert svc.loads == {"config": 1, "departments": 1, "slots": 1}
        svc.version = 2
        await invalidate(m, svc)
        assert await svc.slots("o1") == ["slot/o1-d2"]  # config -> departments -> slots, all reloaded
        assert svc.loads == {"config": 2, "departments": 2, "slots": 2}


async def test_a_tag_of_an_inner_entry_reaches_what_was_built_from_it(tier):
    async with tier.open(namespace="deps") as m:
        svc = Service(m)
        await svc.slots("o1")
        await invalidate_departments_tag(m, svc)
        await svc.slots("o1")
        assert svc.loads == {"config": 1, "departments": 2, "slots": 2}


async def test_an_inner_entry_already_in_memory_still_makes_a_dependency(tier):
    """The inner read is a memory hit (the native fast path) and its own dependencies come
    from its entry: slots depend on config through departments although both were cached."""
    async with tier.open(namespace="deps") as m:
        svc = Service(m)
        await svc.departments("o1")
        await svc.slots("o1")  # departments served from memory
        await m.delete(svc.config.key("o1"))
        await svc.slots("o1")
        assert svc.loads == {"config": 2, "departments": 2, "slots": 2}


async def test_unrelated_invalidations_leave_dependents_alone(tier):
    async with tier.open(namespace="deps") as m:
        svc = Service(m)
        await svc.slots("o1")
        await svc.slots("o2")
        await m.delete(svc.config.key("o2"))
        await m.invalidate("config", "o3")
        await m.invalidate_pattern("config:o9*")
        await svc.slots("o1")
        assert svc.loads["slots"] == 2  # o1 once, o2 once, o2 not read again


@pytest.mark.parametrize("explicit", [True, False], ids=["depends_on", "get_inside_the_loader"])
async def test_depends_on_and_a_plain_get_make_a_dependency(tier, explicit):
    async with tier.open(namespace="deps") as m:
        inner, outer = m.key("config", "o1"), m.key("report", "o1")
        await m.set(inner, {"v": 1})
        loads = []

        async def load_report():
            loads.append(None if explicit else await m.get(inner))
            return "report"

        depends_on = [inner] if explicit else []
        await m.get_or_load(outer, load_report, depends_on=depends_on)
        await m.get_or_load(outer, load_report, depends_on=depends_on)
        assert len(loads) == 1
        await m.delete(inner)
        assert await m.get(outer) is None
        with pytest.raises(TypeError):
            await m.get_or_load(outer, load_report, depends_on=["config:o1"])


async def test_the_inner_entry_expiring_does_not_invalidate_the_outer():
    clock = ManualClock()
    async with CacheManager(namespace="deps", clock=clock,
                            policies={"config": Policy(ttl=10, jitter=0), "slots": Policy(ttl=100, jitter=0)}) as m:
        svc = Service(m)
        await svc.slots("o1")
        clock.advance(50)  # config expired, slots still fresh
        await svc.slots("o1")
        assert svc.loads == {"config": 1, "departments": 1, "slots": 1}


async def test_sync_loaders_record_dependencies_too(tier):
    with tier.open_sync(namespace="deps") as m:
        loads = []

        @m.cached("config")
        def config(org: str) -> int:
            return 1

        @m.cached("slots")
        def slots(org: str) -> int:
            loads.append(org)
            return config(org) + 1

        assert slots("o1") == 2
        m.sync.invalidate("config", "o1")
        assert slots("o1") == 2
        assert loads == ["o1", "o1"]


@pytest.mark.parametrize("invalidate", INVALIDATIONS + [invalidate_departments_tag], ids=lambda f: f.__name__)
async def test_dependents_go_in_every_instance_and_from_redis(redis_url, invalidate):
    """a builds the entries; b holds slots in memory (read from Redis). An invalidation
    made on a reaches b's memory tier, and the copy in Redis is no longer served."""
    from tiers import Tier

    tier = Tier("redis", redis_url)
    async with tier.open(namespace="deps") as a, tier.open(namespace="deps") as b:
        sa, sb = Service(a), Service(b)
        await sa.slots("o1")
        await settled(a)  # its writes are in Redis
        assert await sb.slots("o1") == ["slot/o1-d1"]
        assert sb.loads["slots"] == 0  # read from Redis
        assert b._engine.peek(sb.slots.key("o1"))[0]
        await invalidate(a, sa)
        await eventually(lambda: not b._engine.peek(sb.slots.key("o1"))[0])
        await sb.slots("o1")  # Redis' copies are out of date too: b loads them again
        assert (sb.loads["slots"], sb.loads["departments"]) == (1, 1)


@pytest.mark.parametrize("inner_from", ["its own load", "redis"])
async def test_an_inner_entry_kept_out_of_memory_passes_on_its_tags(redis_url, inner_from):
    """departments has Policy(memory=False): its entry is never in memory, so what slots
    is built from it must come from the read itself (the Redis hit, or the load that wrote
    it). b invalidating the departments' tag then invalidates a's slots, in Redis too."""
    from tiers import Tier

    tier = Tier("redis", redis_url)
    policies = {"departments": Policy(ttl=60, memory=False)}
    async with tier.open(namespace="deps", policies=policies) as a, \
            tier.open(namespace="deps", policies=policies) as b:
        sa, sb = Service(a), Service(b)
        if inner_from == "redis":
            await sb.departments("o1")
            await settled(b)
        await sa.slots("o1")
        await settled(a)
        assert sa.loads["departments"] == (0 if inner_from == "redis" else 1)
        assert not a._engine.peek(sa.departments.key("o1"))[0]  # kept out of memory
        assert await sb.slots("o1") == ["slot/o1-d1"] and sb.loads["slots"] == 0  # b reads a's from Redis
        await b.invalidate_tags("org:o1")
        await eventually(lambda: not a._engine.peek(sa.slots.key("o1"))[0])
        await sb.slots("o1")
        assert sb.loads["slots"] == 1  # Redis' copy of slots was invalidated with the tag


async def test_a_plain_get_of_an_entry_kept_out_of_memory_passes_on_its_tags(redis_url):
    """The inner entry (Policy(memory=False)) is read with get() inside a's loader, from
    Redis: its tags come from that read. b invalidating its tag invalidates a's report."""
    from tiers import Tier

    tier = Tier("redis", redis_url)
    policies = {"config": Policy(ttl=60, memory=False)}
    async with tier.open(namespace="deps", policies=policies) as a, \
            tier.open(namespace="deps", policies=policies) as b:
        await subscribed(a, b)
        inner, outer = a.key("config", "o1"), a.key("report", "o1")
        # a's own set: another's would announce itself to a, and fence a's load if it came late
        await a.set(inner, {"v": 1}, tags=["org:o1"])

        async def load_report():
            return (await a.get(inner))["v"]

        assert await a.get_or_load(outer, load_report) == 1
        await settled(a)
        assert not a._engine.peek(inner)[0]  # kept out of memory
        assert a._engine.peek(outer)[0]
        await b.invalidate_tags("org:o1")
        await eventually(lambda: not a._engine.peek(outer)[0])
        assert await b.get(outer) is None  # Redis' copy went with the tag too


async def test_a_caller_that_waited_for_its_own_instances_flight_passes_on_what_it_was_built_from(redis_url):
    """departments (kept out of memory) is loaded by one caller; slots' loader, in the same
    instance, joins that flight instead of loading. What departments was built from
    (config) reaches slots through the flight: deleting config invalidates slots."""
    import asyncio

    from tiers import Tier

    tier = Tier("redis", redis_url)
    policies = {"departments": Policy(ttl=60, memory=False)}
    async with tier.open(namespace="deps", policies=policies) as a, \
            tier.open(namespace="deps", policies=policies) as b:
        await subscribed(a, b)
        entered, go = asyncio.Event(), asyncio.Event()

        @a.cached("config")
        async def config(org: str) -> int:
            return 1

        @a.cached("departments")
        async def departments(org: str) -> int:
            value = await config(org)
            entered.set()
            await go.wait()
            return value

        @a.cached("slots")
        async def slots(org: str) -> int:
            return await departments(org) + 1

        leader = asyncio.ensure_future(departments("o1"))
        await asyncio.wait_for(entered.wait(), 10)
        follower = asyncio.ensure_future(slots("o1"))
        await eventually(lambda: a.stats()["coalesced"] >= 1)  # slots' read joined the flight
        go.set()
        assert (await leader, await follower) == (1, 2)
        await settled(a)
        assert a._engine.peek(slots.key("o1"))[0]
        await b.delete(config.key("o1"))
        await eventually(lambda: not a._engine.peek(slots.key("o1"))[0])
        assert await b.get(slots.key("o1")) is None


async def test_get_many_inside_a_loader_makes_each_key_a_dependency(tier):
    async with tier.open(namespace="deps") as m:
        k1, k2, outer = m.key("config", "o1"), m.key("config", "o2"), m.key("report", "all")
        await m.set_many({k1: 1, k2: 2})
        loads = []

        async def load_report():
            loads.append(None)
            return sum(await m.get_many([k1, k2]))

        assert await m.get_or_load(outer, load_report) == 3
        assert await m.get_or_load(outer, load_report) == 3
        await m.delete(k2)
        await m.set(k2, 5)
        assert await m.get_or_load(outer, load_report) == 6
        assert len(loads) == 2
