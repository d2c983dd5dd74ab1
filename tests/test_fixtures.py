"""The server fixtures themselves: real servers that answer, restart on the same port,
and start each test clean. The integration tests of herdcache rely on all of this."""

import socket

import pytest


def raw_ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        return sock.recv(64)


@pytest.mark.redis
def test_redis_server_answers_ping_on_its_port(redis_server):
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert raw_ping(redis_server.port) == b"+PONG\r\n"


@pytest.mark.redis
def test_redis_url_works_with_redis_py_over_tcp_and_unix_socket(redis_url, redis_server):
    import redis

    for client in (redis.Redis.from_url(redis_url), redis.Redis.from_url(redis_server.unix_url)):
        with client:
            assert client.ping()
            client.set("k", b"v")
            assert client.get("k") == b"v"


@pytest.mark.redis
def test_redis_server_starts_each_test_empty(redis_server):
    # Runs twice (aliased below): the second run must not see the first run's key.
    assert redis_server.command("DBSIZE") == 0
    redis_server.command("SET", "left-behind", "x")


test_redis_server_starts_each_test_empty_again = test_redis_server_starts_each_test_empty


@pytest.mark.redis
def test_redis_kill_and_restart_on_the_same_port(redis_server):
    port = redis_server.port
    redis_server.kill()
    with pytest.raises(ConnectionRefusedError):
        raw_ping(port)
    redis_server.start()
    assert redis_server.port == port
    assert raw_ping(port) == b"+PONG\r\n"
    redis_server.stop()
    assert not redis_server.running
    redis_server.start()
    assert raw_ping(port) == b"+PONG\r\n"


@pytest.mark.redis
def test_redis_factory_gives_separate_servers(redis_factory, redis_server):
    other = redis_factory()
    assert other.port != redis_server.port
    other.command("SET", "only-here", "1")
    assert redis_server.command("EXISTS", "only-here") == 0
    other.stop()


@pytest.mark.postgres
def test_postgres_accepts_a_connection_to_a_fresh_database(postgres_dsn):
    import psycopg

    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SELECT current_database()").fetchone()[0] == postgres_dsn.rsplit("/", 1)[1]
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert tables == (0,)


@pytest.mark.postgres
def test_postgres_listen_notify_round_trip(postgres_dsn):
    import psycopg

    with psycopg.connect(postgres_dsn, autocommit=True) as listener, \
            psycopg.connect(postgres_dsn, autocommit=True) as sender:
        listener.execute("LISTEN herdcache_test")
        sender.execute("SELECT pg_notify('herdcache_test', 'hello')")
        received = [n.payload for n in listener.notifies(timeout=10, stop_after=1)]
    assert received == ["hello"]


@pytest.mark.postgres
def test_postgres_kill_and_restart_on_the_same_port(postgres_server):
    import psycopg

    port = postgres_server.port
    postgres_server.kill()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(postgres_server.dsn(), connect_timeout=2).close()
    postgres_server.start()  # crash recovery, then ready
    assert postgres_server.port == port
    with psycopg.connect(postgres_server.dsn()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
