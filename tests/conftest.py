"""Shared pytest fixtures: real redis-server and PostgreSQL servers (see servers.py).

Redis
  redis_server   a running server with an empty dataset at the start of each test (one
                 server for the session: restarted if an earlier test stopped or killed
                 it, FLUSHALL'd). Has .url, .unix_url, .port, .command(), .stop(),
                 .kill(), .start() (same port), and TLS on .tls_port: .tls_url(...).
  redis_url      redis_server.url ("redis://127.0.0.1:PORT/0").
  redis_factory  call it for a server of your own, e.g. two servers in one test, or one
                 to break without disturbing the others. Stopped at the end of the session.
                 redis_factory(tls=True, tls_auth_clients=True): with TLS (tls_files'
                 certificates), asking clients for a certificate.
  tls_files      the session's throwaway CA and certificates (servers.TlsFiles).
Sentinel
  sentinel_topology  a master, a replica and three sentinels of this test's own
                 (servers.SentinelTopology): .url(), .server_on(port), .switch_watch(),
                 .master/.replica/.sentinels to stop or kill. Failover timings are short.
  sentinel_factory   sentinel_factory(sentinel_password="pw") for one with sentinel AUTH,
                 sentinel_factory(tls=True) for one reached through rediss+sentinel://.
Redis Cluster
  redis_cluster  the session's cluster (servers.ClusterTopology: 3 masters, 1 replica
                 each), every master FLUSHALL'd at the start of each test: .nodes,
                 .masters(), .replicas() (by ROLE, now), .url() (redis+cluster://, every
                 node a seed). No test may fail it over or kill a node: make one of your own.
Both tiers (the contract suite, see tiers.py)
  tier           a tiers.Tier, once per tier: "memory" (redis_url=None), "redis" (the
                 shared redis_server, marked `redis`), "tls" (the same server through
                 rediss://localhost, verified against tls_files' CA; marked `redis`) and
                 "sentinel" (a session topology's master through redis+sentinel://). tier.open(**kwargs) is an async
                 context manager giving a started manager whose memory tier is served;
                 tier.open_sync(**kwargs) the same through cache.sync; tier.manager(**kwargs)
                 an unstarted one. A test taking `tier` is one spec run against each.
PostgreSQL
  postgres_server  a running cluster (one for the session, restarted like redis_server):
                   .dsn(dbname="postgres"), .port, .stop(), .kill(), .start().
  postgres_dsn     the DSN of a new empty database, made for this test and dropped after.
  postgres_factory a cluster of your own.

Tests using these fixtures are marked `redis` / `postgres` automatically, so
`pytest -m "not redis and not postgres"` runs without servers. The fixtures skip only
when the server binaries are missing (scripts/setup.sh installs them).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from servers import (ClusterTopology, PostgresServer, RedisServer, SentinelTopology, TlsFiles,
                     find_postgres_bindir, find_redis_server)
from tiers import Tier

# A temporary directory of the run's own (its processes inherit it): memory-only managers
# find other processes of their namespace through lock files there (herdcache._workers),
# and another test run on the machine must not look like another worker of this one.
_RUN_TMP = tempfile.mkdtemp(prefix="herdcache-tests-")
os.chmod(_RUN_TMP, 0o1777)  # as /tmp: the PostgreSQL fixture's server runs as another user
os.environ["TMPDIR"] = _RUN_TMP
tempfile.tempdir = None  # gettempdir() reads TMPDIR again

REDIS_FIXTURES = {"redis_server", "redis_url", "redis_factory", "sentinel_factory", "sentinel_topology",
                  "redis_cluster"}
POSTGRES_FIXTURES = {"postgres_server", "postgres_dsn", "postgres_factory"}


def pytest_collection_modifyitems(items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & REDIS_FIXTURES:
            item.add_marker(pytest.mark.redis)
        if names & POSTGRES_FIXTURES:
            item.add_marker(pytest.mark.postgres)


# --- Redis -----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> TlsFiles:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found (Debian package openssl; scripts/setup.sh installs it)")
    return TlsFiles(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def redis_factory(tmp_path_factory, request):
    binary = _redis_binary()
    servers: list[RedisServer] = []

    def make(tls: bool = False, tls_auth_clients: bool = False) -> RedisServer:
        files = request.getfixturevalue("tls_files") if tls else None
        server = RedisServer(binary, tmp_path_factory.mktemp("redis"), tls=files, tls_auth_clients=tls_auth_clients)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()


def _redis_binary(name: str = "redis-server") -> str:
    binary = find_redis_server(name)
    if binary is None:
        pytest.skip(f"{name} not found (Debian package redis-server; scripts/setup.sh installs it)")
    return binary


@pytest.fixture(scope="session")
def _shared_redis(redis_factory) -> RedisServer:
    return redis_factory(tls=True)


@pytest.fixture
def redis_server(_shared_redis) -> RedisServer:
    _shared_redis.start()  # no-op when running
    _shared_redis.flushall()
    return _shared_redis


@pytest.fixture
def redis_url(redis_server) -> str:
    return redis_server.url


@pytest.fixture
def sentinel_factory(tmp_path_factory, request):
    """sentinel_factory(sentinel_password=None, tls=False): a started servers.SentinelTopology of this
    test's own (one master, one replica, three sentinels); killed at the end of the test."""
    binary = _redis_binary()
    made: list[SentinelTopology] = []

    def make(sentinel_password: str | None = None, tls: bool = False) -> SentinelTopology:
        files = request.getfixturevalue("tls_files") if tls else None
        topology = SentinelTopology(binary, tmp_path_factory.mktemp("sentinel"), sentinel_password, files)
        made.append(topology)
        topology.start()
        return topology

    yield make
    for topology in made:
        topology.stop()


@pytest.fixture
def sentinel_topology(sentinel_factory) -> SentinelTopology:
    return sentinel_factory()


# --- Redis Cluster ---------------------------------------------------------------------

@pytest.fixture(scope="session")
def _shared_cluster(tmp_path_factory):
    """Six nodes are slow to make (the time redis-cli takes to join them): one per session."""
    cluster = ClusterTopology(_redis_binary(), _redis_binary("redis-cli"), tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster(_shared_cluster) -> ClusterTopology:
    _shared_cluster.flushall()
    return _shared_cluster


# --- Both tiers ----------------------------------------------------------------------

@pytest.fixture(scope="session")
def _shared_sentinel(tmp_path_factory):
    """The contract suite's topology: no test fails it over (those make their own)."""
    binary = _redis_binary()
    topology = SentinelTopology(binary, tmp_path_factory.mktemp("sentinel"))
    topology.start()
    yield topology
    topology.stop()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("tls", marks=pytest.mark.redis),
                        pytest.param("sentinel", marks=pytest.mark.redis)])
def tier(request) -> Tier:
    if request.param == "memory":
        return Tier("memory")
    if request.param == "tls":
        return Tier("tls", request.getfixturevalue("redis_server").tls_url())
    if request.param == "sentinel":
        topology = request.getfixturevalue("_shared_sentinel")
        topology.master.flushall()  # replicated: the replica is empty too
        return Tier("sentinel", topology.url())
    return Tier("redis", request.getfixturevalue("redis_url"))


# --- PostgreSQL ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_factory():
    bindir = find_postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian package postgresql; "
                    "scripts/setup.sh installs it)")
    servers: list[PostgresServer] = []

    def make() -> PostgresServer:
        # Not under pytest's tmp_path: its root is private to our user, and when we are
        # root the server runs as the postgres user, which must reach its directory.
        server = PostgresServer(bindir, Path(tempfile.mkdtemp(prefix="herdcache-pg-")))
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def _shared_postgres(postgres_factory) -> PostgresServer:
    return postgres_factory()


@pytest.fixture
def postgres_server(_shared_postgres) -> PostgresServer:
    _shared_postgres.start()  # no-op when running
    return _shared_postgres


_database_numbers = itertools.count(1)


@pytest.fixture
def postgres_dsn(postgres_server):
    import psycopg  # dev extra; imported here so tests without PostgreSQL do not need it

    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.dsn(name)
    postgres_server.start()  # the test may have stopped or killed it
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def pytest_unconfigure(config):
    shutil.rmtree(_RUN_TMP, ignore_errors=True)
