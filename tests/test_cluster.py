"""The Redis Cluster fixture (conftest.redis_cluster): six nodes that know each other,
three masters with a replica each, every slot served, keys spread over every master.
redis-py's own cluster client is the witness here; herdcache's cluster tier is tested on
the same fixture. Until it exists, a cluster URL is refused when the manager starts."""

import asyncio
import logging

import pytest
from redis.cluster import ClusterNode, RedisCluster

from herdcache import CacheManager, Policy

KEYS = 200
FAILING_AFTER = 3  # WriteHealth::kFailingAfter: writes in a row answered with an error


def test_every_node_knows_all_six_on_their_ports_and_bus_ports(redis_cluster):
    expected = {f"127.0.0.1:{n.port}@{n.port + 10000}" for n in redis_cluster.nodes}
    for node in redis_cluster.nodes:
        info = node.cluster_info()
        assert info["cluster_state"] == "ok"
        assert info["cluster_slots_assigned"] == "16384"
        assert info["cluster_known_nodes"] == "6"
        lines = node.command("CLUSTER", "NODES").decode().splitlines()
        assert {line.split()[1] for line in lines} == expected


def test_three_masters_each_with_a_replica_of_its_own(redis_cluster):
    masters, replicas = redis_cluster.masters(), redis_cluster.replicas()
    assert len(masters) == 3 and len(replicas) == 3
    followed = {int(r.command("ROLE")[2]) for r in replicas}  # ROLE of a replica: slave, host, port, ...
    assert followed == {m.port for m in masters}


def cluster_client(node) -> RedisCluster:
    return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", node.port)], decode_responses=True)


def test_keys_written_through_redis_py_spread_over_every_master(redis_cluster):
    client = cluster_client(redis_cluster.nodes[-1])  # any node will do, a replica too
    try:
        for i in range(KEYS):
            client.set(f"k:{i}", str(i))
        assert [client.get(f"k:{i}") for i in range(KEYS)] == [str(i) for i in range(KEYS)]
    finally:
        client.close()
    per_master = [m.command("DBSIZE") for m in redis_cluster.masters()]
    assert sum(per_master) == KEYS
    assert all(count > 0 for count in per_master), per_master


def test_each_test_starts_with_an_empty_cluster(redis_cluster):
    # Runs twice (aliased below): the second run must not see the first run's key.
    assert [m.command("DBSIZE") for m in redis_cluster.masters()] == [0, 0, 0]
    client = cluster_client(redis_cluster.nodes[0])
    try:
        client.set("left-behind", "x")
    finally:
        client.close()


test_each_test_starts_with_an_empty_cluster_again = test_each_test_starts_with_an_empty_cluster


NOT_AVAILABLE = "Redis Cluster URLs are recognised, but the cluster tier is not available in this version"


def test_a_cluster_url_is_refused_at_start_and_nothing_reaches_the_cluster(redis_cluster):
    cache = CacheManager(redis_url=redis_cluster.url())
    with pytest.raises(ValueError, match=NOT_AVAILABLE):
        asyncio.run(cache.start())
    # Nothing half-works: a later call starts again and is refused the same way, and no
    # write of herdcache's landed on any master.
    with pytest.raises(ValueError, match=NOT_AVAILABLE):
        cache.sync.set(cache.key("rooms", 1), "x")
    assert [m.command("DBSIZE") for m in redis_cluster.masters()] == [0, 0, 0]


def test_a_tls_cluster_url_is_refused_too_naming_it_without_its_password():
    cache = CacheManager(redis_url="rediss+cluster://:hunter2@127.0.0.1:7000,127.0.0.1:7001/0")
    with pytest.raises(ValueError, match=NOT_AVAILABLE) as refused:
        asyncio.run(cache.start())
    assert "rediss+cluster://127.0.0.1:7000,127.0.0.1:7001/0" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_bad_cluster_urls_say_what_is_wrong():
    for url, message in [("redis+cluster://127.0.0.1:7000/2", "a Redis Cluster has only db 0, not db 2"),
                         ("redis+cluster://127.0.0.1:7000,,127.0.0.1:7001", "empty cluster seed address"),
                         ("redis+cluster://127.0.0.1:99999", "port must be 1..65535"),
                         ("redis+cluster://", "needs at least one cluster seed")]:
        cache = CacheManager(redis_url=url)
        with pytest.raises(ValueError, match=message):
            asyncio.run(cache.start())


def test_a_plain_url_to_a_cluster_node_fails_writes_visibly_and_names_the_cluster_url(redis_cluster, caplog):
    """redis:// to one master: its scripts touch keys of several slots (CROSSSLOT), so
    nothing is shared. Reads do not raise, the state is in stats, and the one warning says
    which url a cluster needs."""
    caplog.set_level(logging.WARNING, logger="herdcache")
    master = redis_cluster.masters()[0]

    async def run() -> dict:
        async with CacheManager(redis_url=f"redis://127.0.0.1:{master.port}", namespace="plain",
                                policies={"r": Policy(ttl=600, memory=False)}) as cache:
            for i in range(FAILING_AFTER):
                await cache.set(cache.key("r", f"k{i}"), {"i": i})
            assert await cache.get(cache.key("r", "k0")) is None  # a miss, not an exception
            return cache.stats()["redis"]

    redis = asyncio.run(run())
    assert redis["writes_failing"] is True and redis["error_replies"]["CROSSSLOT"] >= FAILING_AFTER
    warnings = [r.getMessage() for r in caplog.records if "redis writes failing" in r.getMessage()]
    assert len(warnings) == 1 and "the url for a cluster is redis+cluster://" in warnings[0]
