"""redis+sentinel:// against a real topology: one master, one replica, three sentinels
(conftest's sentinel_topology, a fresh one per test).

What a failover must look like from the application: reads never raise (they degrade to
the memory tier or wait, bounded, for the new master), the engine follows the new master
(stats()["redis"]["sentinel"]), invalidations made while no master answered are replayed
on the new one (the journal), and the memory tier starts over once the invalidation
channel is back on the new master (the subscriber-loss rule).
"""

from __future__ import annotations

import asyncio

import pytest

from herdcache import CacheManager, Policy

from background import eventually, subscribed
from proxy import TcpProxy

pytestmark = pytest.mark.redis

POLICIES = {"c": Policy(ttl=60, jitter=0), "l2only": Policy(ttl=60, jitter=0, memory=False)}
SWITCH_TIMEOUT_S = 30.0  # a SIGKILLed master: down-after 500 ms, then election and promotion
FOLLOW_TIMEOUT_S = 10.0  # from the announced switch to the engine writing on the new master


def manager(url: str) -> CacheManager:
    return CacheManager(redis_url=url, namespace="sent", policies=POLICIES)


class Traffic:
    """Reads and writes from a background task while a failover runs; counts what raised."""

    def __init__(self, cache: CacheManager) -> None:
        self.cache = cache
        self.reads = self.writes = 0
        self.read_errors: list[str] = []
        self.write_errors: list[str] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            for resource in ("c", "l2only"):
                key = self.cache.key(resource, i % 20)
                try:
                    await self.cache.get(key)
                    await self.cache.get_or_load(self.cache.key(resource, "loaded", i % 7), lambda: "loaded")
                except Exception as e:  # counted and reported: the assertion is that there are none
                    self.read_errors.append(repr(e))
                self.reads += 2
                try:
                    await self.cache.set(key, i)
                except Exception as e:
                    self.write_errors.append(repr(e))
                self.writes += 1
            await asyncio.sleep(0.001)

    def __enter__(self) -> "Traffic":
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    async def stop(self) -> str:
        self._stop.set()
        assert self._task is not None
        await self._task
        return (f"{self.reads} reads, {len(self.read_errors)} read errors {self.read_errors[:3]}; "
                f"{self.writes} writes, {len(self.write_errors)} write errors {self.write_errors[:3]}")


async def in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def holds(server, fragment: str) -> bool:
    """Whether `server` has a key whose name contains `fragment` (SCAN: the names are encoded)."""
    return bool(server.command("SCAN", "0", "MATCH", f"*{fragment}*", "COUNT", "1000")[1])


async def follows(cache: CacheManager, topology, port: int) -> None:
    """Until the engine uses the master on `port` and a write through it lands there."""
    name = f"probe{port}x{id(cache)}"  # this manager's own: another's write proves nothing
    probe = cache.key("l2only", name)

    async def landed() -> bool:
        if cache.stats()["redis"]["sentinel"]["master"] != f"127.0.0.1:{port}":
            return False
        await cache.set(probe, port)
        return holds(topology.server_on(port), name)

    await eventually(landed, timeout=FOLLOW_TIMEOUT_S)


async def test_get_set_invalidate_and_leases_through_sentinel(sentinel_topology):
    url = sentinel_topology.url()
    async with manager(url) as a, manager(url) as b:
        await subscribed(a, b)
        key = a.key("c", 1)
        await a.set(key, "v1")
        assert await b.get(key) == "v1"  # through Redis: the master the sentinels name
        assert sentinel_topology.master.command("DBSIZE") >= 1
        assert await b.get(key) == "v1"  # now in b's memory tier
        received = b.stats()["redis"]["invalidations_received"]
        await a.delete(key)
        await eventually(lambda: b.stats()["redis"]["invalidations_received"] > received)
        assert await b.get(key) is None  # the broadcast reached b's memory tier

        calls = []

        async def load():
            calls.append(1)
            await asyncio.sleep(0.05)
            return "loaded"

        lease_key = a.key("l2only", "lease")
        results = await asyncio.gather(a.get_or_load(lease_key, load), b.get_or_load(lease_key, load))
        assert results == ["loaded", "loaded"]
        assert len(calls) == 1  # one lease across both instances

        sentinel = a.stats()["redis"]["sentinel"]
        assert sentinel["master"] == f"127.0.0.1:{sentinel_topology.service_port(sentinel_topology.master)}"
        assert sentinel["failovers"] == 0
        assert sentinel["listening_on"].startswith("redis://127.0.0.1:")
        assert a.stats()["redis"]["connected"]


async def failover_under_traffic(topology, make_it_happen, journaled: bool) -> None:
    """Runs traffic on two managers, triggers a failover with `make_it_happen(topology)`,
    and checks that reads never raised, both managers follow the new master, the journal
    replayed an invalidation made while no master answered, and the memory tier started
    over on the new master."""
    url = topology.url()
    old_port = topology.service_port(topology.master)
    async with manager(url) as a, manager(url) as b:
        await subscribed(a, b)
        kept = a.key("l2only", "kept")
        await a.set(kept, "before")
        assert topology.master.command("WAIT", "1", "2000") == 1  # on the replica too
        flushes_before = b.stats()["redis"]["memory_flushes"]
        watch = topology.switch_watch()
        try:
            with Traffic(a) as traffic_a, Traffic(b) as traffic_b:
                await in_thread(make_it_happen, topology)
                # While no master answers (or the old one is going): journaled, replayed later.
                await a.delete(kept)
                if journaled:  # the master is gone and no other is known yet
                    assert a.stats()["redis"]["journal_pending"] >= 1
                switch = await in_thread(watch.wait, SWITCH_TIMEOUT_S)
                new_port = int(switch.split()[4])
                assert new_port != old_port, switch
                await follows(a, topology, new_port)
                await follows(b, topology, new_port)
                report = f"a: {await traffic_a.stop()} / b: {await traffic_b.stop()}"
        finally:
            watch.close()
        assert not traffic_a.read_errors and not traffic_b.read_errors, report
        assert traffic_a.reads > 0 and traffic_b.reads > 0, report

        new_master = topology.server_on(new_port)
        await eventually(lambda: a.stats()["redis"]["journal_pending"] == 0, timeout=FOLLOW_TIMEOUT_S)
        assert await b.get(kept) is None, "the invalidation made during the failover was lost"
        assert new_master.command("EXISTS", str(kept)) == 0  # its dependency version stays, bumped
        for m in (a, b):
            redis = m.stats()["redis"]
            assert redis["sentinel"]["master"] == f"127.0.0.1:{new_port}"
            assert redis["sentinel"]["failovers"] == 1
            assert redis["connected"] and redis["subscriber_connected"], str(redis)
        # The subscriber moved to the new master: the memory tier started over.
        assert b.stats()["redis"]["memory_flushes"] > flushes_before
        print(f"failover survived: {report}")


async def test_sentinel_failover_command_under_traffic(sentinel_topology):
    def failover(topology):
        assert topology.sentinels[1].command("SENTINEL", "FAILOVER", "mymaster") == "OK"

    await failover_under_traffic(sentinel_topology, failover, journaled=False)


async def test_sigkilled_master_under_traffic(sentinel_topology):
    await failover_under_traffic(sentinel_topology, lambda topology: topology.master.kill(), journaled=True)


async def test_sentinel_failover_over_tls(sentinel_factory):
    """rediss+sentinel://: the sentinels and the master (the replica after the failover)
    reached over TLS, verified against the test CA."""
    topology = sentinel_factory(tls=True)
    assert topology.url().startswith("rediss+sentinel://")

    def failover(topology):
        assert topology.sentinels[0].command("SENTINEL", "FAILOVER", "mymaster") == "OK"

    await failover_under_traffic(topology, failover, journaled=False)


async def test_the_sentinel_listened_to_dies_and_the_next_failover_is_still_followed(sentinel_topology):
    topology = sentinel_topology
    async with manager(topology.url()) as cache:
        await subscribed(cache)

        def listening_on() -> str:
            return cache.stats()["redis"]["sentinel"]["listening_on"]

        dead = next(i for i, s in enumerate(topology.sentinels) if listening_on().endswith(f":{s.port}/0"))
        topology.sentinels[dead].kill()
        await eventually(lambda: listening_on() and not listening_on().endswith(f":{topology.sentinels[dead].port}/0"),
                         timeout=FOLLOW_TIMEOUT_S)
        alive = [i for i in range(3) if i != dead]
        watch = topology.switch_watch(alive[0])
        try:
            assert topology.sentinels[alive[1]].command("SENTINEL", "FAILOVER", "mymaster") == "OK"
            new_port = int((await in_thread(watch.wait, SWITCH_TIMEOUT_S)).split()[4])
        finally:
            watch.close()
        await follows(cache, topology, new_port)
        assert cache.stats()["redis"]["sentinel"]["failovers"] == 1


async def test_a_black_holed_sentinel_is_left_for_another(sentinel_topology):
    """A sentinel that stops answering (a partition: no reset, no EOF) is found out by the
    subscription's PING, and the +switch-master subscription moves to the next sentinel."""
    topology = sentinel_topology
    proxy = TcpProxy(topology.sentinels[0].port)
    try:
        hosts = ",".join([f"127.0.0.1:{proxy.port}", *(f"127.0.0.1:{s.port}" for s in topology.sentinels[1:])])
        async with manager(f"redis+sentinel://{hosts}/mymaster/0") as cache:
            await subscribed(cache)

            def listening_on() -> str:
                return cache.stats()["redis"]["sentinel"]["listening_on"]

            assert listening_on() == f"redis://127.0.0.1:{proxy.port}/0"  # the URL's first
            assert proxy.blackhole(b"+switch-master") == 1
            await eventually(lambda: listening_on() not in ("", f"redis://127.0.0.1:{proxy.port}/0"),
                             timeout=FOLLOW_TIMEOUT_S)
            assert cache.stats()["redis"]["connected"]  # the master was never in question
    finally:
        proxy.close()


async def test_sentinel_auth(sentinel_factory):
    topology = sentinel_factory(sentinel_password="s3ntinel")
    async with manager(topology.url()) as cache:
        await subscribed(cache)
        await cache.set(cache.key("l2only", 1), "through authenticated sentinels")
        assert await cache.get(cache.key("l2only", 1)) == "through authenticated sentinels"

    wrong = topology.url(sentinel_password="wrong")
    async with manager(wrong) as cache:
        await eventually(lambda: cache.stats()["redis"]["sentinel"]["last_error"])
        assert await cache.get(cache.key("l2only", 1)) is None  # a miss, not an exception
        redis = cache.stats()["redis"]
        assert not redis["connected"]
        assert redis["sentinel"]["master"] is None
        assert "WRONGPASS" in redis["sentinel"]["last_error"] or "invalid" in redis["sentinel"]["last_error"]


async def test_a_readonly_reply_asks_the_sentinels_again(sentinel_topology):
    topology = sentinel_topology
    master, replica = topology.master, topology.replica
    async with manager(topology.url()) as cache:
        await subscribed(cache)
        await cache.set(cache.key("l2only", 1), "on the master")
        rounds = cache.stats()["redis"]["sentinel"]["rounds"]
        # Swap the roles behind the sentinels' back: the connection to `master` stays up,
        # but it is a replica now and refuses writes with READONLY.
        replica.command("REPLICAOF", "NO", "ONE")
        master.command("REPLICAOF", "127.0.0.1", str(replica.port))
        await cache.set(cache.key("l2only", 2), "refused")  # READONLY: no exception
        await eventually(lambda: "not a master" in cache.stats()["redis"]["sentinel"]["last_error"])
        redis = cache.stats()["redis"]
        assert redis["sentinel"]["rounds"] > rounds
        assert redis["sentinel"]["master"] is None
        assert await cache.get(cache.key("l2only", 1)) in (None, "on the master")  # no exception
        # Put the roles back: the resolver, retrying, verifies the master again.
        master.command("REPLICAOF", "NO", "ONE")
        replica.command("REPLICAOF", "127.0.0.1", str(master.port))
        await follows(cache, topology, topology.service_port(master))


def test_bad_sentinel_urls_say_what_is_wrong():
    for url, message in [("redis+sentinel://127.0.0.1:26379", "needs a service name"),
                         ("redis+sentinel://127.0.0.1:26379,/mymaster", "empty sentinel address"),
                         ("redis://127.0.0.1/0?sentinel_password=x", "need a redis\\+sentinel:// url")]:
        cache = CacheManager(redis_url=url)
        with pytest.raises(ValueError, match=message):
            asyncio.run(cache.start())
