"""get_many / set_many / delete_many, async and blocking, on both tiers; on Redis across
two managers (the second one's memory tier starts empty, so its reads go to Redis)."""

from __future__ import annotations

import asyncio

import pytest

from herdcache import CacheManager, Policy, SerializationError

from background import eventually, subscribed
from proxy import TcpProxy


async def written(m) -> None:
    pending = [w for w in m._writes if not w.done()]
    if pending:
        await asyncio.wait(pending, timeout=5)


async def test_get_many_returns_values_in_order_with_none_for_misses(tier):
    async with tier.open(namespace="batch") as a:
        keys = [a.key("rooms", i) for i in range(5)]
        await a.set_many({keys[0]: "r0", keys[2]: {"n": 2}, keys[4]: [4]})
        assert await a.get_many(keys) == ["r0", None, {"n": 2}, None, [4]]
        assert await a.get_many([]) == []
        assert await a.get_many([keys[2], keys[2]]) == [{"n": 2}, {"n": 2}]
        if tier.redis:
            async with tier.open(namespace="batch") as b:
                bkeys = [b.key("rooms", i) for i in range(5)]
                assert await b.get_many(bkeys) == ["r0", None, {"n": 2}, None, [4]]
                redis = b.stats()["resources"]["rooms"]["redis"]
                assert (redis["redis_hits"], redis["redis_misses"]) == (3, 2)  # read from Redis, each once
                assert await b.get_many(bkeys[:1]) == ["r0"]  # filled into b's memory tier
                assert b.stats()["resources"]["rooms"]["redis"]["redis_hits"] == 3


async def test_set_many_tags_every_entry_and_invalidation_reaches_them(tier):
    async with tier.open(namespace="batch") as a:
        keys = [a.key("rooms", i) for i in range(3)]
        await a.set_many({k: i for i, k in enumerate(keys)}, tags=["org:1"])
        await a.invalidate_tags("org:1")
        assert await a.get_many(keys) == [None, None, None]
        await a.set_many({k: i for i, k in enumerate(keys)}, ttl=60, tags=["org:2"])
        if tier.redis:
            async with tier.open(namespace="batch") as b:
                assert await b.get_many([b.key("rooms", i) for i in range(3)]) == [0, 1, 2]
                await b.invalidate_tags("org:2")

            async def a_dropped_them() -> bool:  # b's broadcast reaches a's memory tier
                return await a.get_many(keys) == [None, None, None]

            await eventually(a_dropped_them)


async def test_a_set_many_with_a_value_that_cannot_be_encoded_stores_nothing(tier):
    async with tier.open(namespace="batch") as a:
        keys = [a.key("rooms", i) for i in range(3)]
        with pytest.raises(SerializationError, match="resource 'rooms'"):
            await a.set_many({keys[0]: "fine", keys[1]: {1, 2}, keys[2]: "fine"})
        assert await a.get_many(keys) == [None, None, None]


async def test_delete_many_counts_what_existed_in_every_instance(tier):
    async with tier.open(namespace="batch") as a:
        keys = [a.key("rooms", i) for i in range(4)]
        await a.set_many({keys[0]: 0, keys[1]: 1})
        if tier.redis:
            await written(a)
            async with tier.open(namespace="batch") as b:
                bkeys = [b.key("rooms", i) for i in range(4)]
                assert await b.get_many(bkeys) == [0, 1, None, None]  # b holds them in memory now
                assert await a.delete_many(keys) == 2  # counted by Redis: a's memory had them too

                async def b_dropped_them() -> bool:  # a's broadcast reaches b's memory tier
                    return await b.get_many(bkeys) == [None, None, None, None]

                await eventually(b_dropped_them)
        else:
            assert await a.delete_many(keys) == 2
        assert await a.delete_many(keys) == 0
        assert await a.get_many(keys) == [None] * 4


def test_the_blocking_batch_operations(tier):
    with tier.open_sync(namespace="batch_sync") as a:
        keys = [a.key("rooms", i) for i in range(3)]
        a.sync.set_many({keys[0]: "x", keys[2]: "z"}, tags=["t"])
        assert a.sync.get_many(keys) == ["x", None, "z"]
        if tier.redis:
            import concurrent.futures

            concurrent.futures.wait(list(a._writes), timeout=5)
            with tier.open_sync(namespace="batch_sync") as b:
                assert b.sync.get_many([b.key("rooms", i) for i in range(3)]) == ["x", None, "z"]
                assert b.stats()["resources"]["rooms"]["redis"]["redis_hits"] == 2
        assert a.sync.delete_many(keys) == 2
        assert a.sync.get_many(keys) == [None, None, None]


async def test_batch_arguments_are_checked_before_anything_changes(tier):
    async with tier.open(namespace="batch") as a:
        key = a.key("rooms", 1)
        await a.set(key, "kept")
        with pytest.raises(TypeError, match="keys must be an iterable of Key, got Key"):
            await a.get_many(key)
        with pytest.raises(TypeError, match="key must be a Key"):
            await a.delete_many([key, "rooms:1"])
        with pytest.raises(TypeError, match="items must be a mapping"):
            await a.set_many([(key, "x")])
        with pytest.raises(TypeError, match="key must be a Key"):
            await a.set_many({key: "changed", "raw": 1})
        with pytest.raises(ValueError, match="ttl"):
            await a.set_many({key: "changed"}, ttl=-1)
        assert await a.get(key) == "kept"


async def test_get_many_under_a_black_holed_redis_answers_from_memory_and_none(redis_server):
    """Redis stops answering commands: the batch's reads time out, the keys memory holds come from
    memory, the rest are None (a fault counted, nothing raised), and the next batch after
    the network heals reads Redis again."""
    p = TcpProxy(redis_server.port)
    try:
        url = p.url + "?socket_timeout=0.3"
        policies = {"rooms": Policy(ttl=60), "far": Policy(ttl=60, memory=False)}
        async with CacheManager(redis_url=url, namespace="bh", policies=policies) as m:
            near, far = m.key("rooms", 1), m.key("far", 1)
            await subscribed(m)  # memory is served once the invalidation channel is up
            await m.set_many({near: "n", far: "f"})
            await written(m)
            assert await m.get_many([near, far]) == ["n", "f"]
            # Only the command connection: with the subscriber black-holed too, memory
            # would rightly stop being served once its loss is found out, and the test
            # would race that.
            assert p.blackhole(unless=b"SUBSCRIBE") == 1
            # A deadline, not a speed: every read ends by its socket timeout.
            assert await asyncio.wait_for(m.get_many([near, far, m.key("far", 2)]), 10) == ["n", None, None]
            assert m.stats()["resources"]["far"]["errors"] >= 1
            p.restore()
            await eventually(lambda: m.stats()["redis"]["connected"], timeout=10)
            assert await asyncio.wait_for(m.get_many([far]), 10) == ["f"]
    finally:
        p.close()


async def test_a_cancelled_get_many_leaves_later_batches_whole(redis_server):
    async with CacheManager(redis_url=redis_server.url, namespace="cx",
                            default_policy=Policy(ttl=60, memory=False)) as m:
        keys = [m.key("rooms", i) for i in range(50)]
        await m.set_many({k: i for i, k in enumerate(keys)})
        await written(m)
        first = asyncio.ensure_future(m.get_many(keys))
        await asyncio.sleep(0)  # the reads are sent; their answer is not in yet
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await m.get_many(keys) == list(range(50))
        assert await m.get_many(keys[::-1]) == list(range(50))[::-1]
