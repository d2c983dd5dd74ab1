"""The Redis Cluster fixture (conftest.redis_cluster): six nodes that know each other,
three masters with a replica each, every slot served, keys spread over every master.
redis-py's own cluster client is the witness here; herdcache's cluster tier is tested on
the same fixture."""

from redis.cluster import ClusterNode, RedisCluster

KEYS = 200


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
