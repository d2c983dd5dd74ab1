"""rediss:// against a real redis-server with --tls-port and the fixtures' throwaway CA.

What a TLS failure must look like: a connection failure like any other (reads answer from
the memory tier, nothing raises) whose reason is in stats()["redis"]["last_error"]. The
contract suite runs over TLS as well (conftest's `tier` fixture, param "tls").
"""

import pytest

from herdcache import CacheManager, Policy

from background import eventually, subscribed

pytestmark = pytest.mark.redis

POLICIES = {"c": Policy(ttl=60, jitter=0), "l2only": Policy(ttl=60, jitter=0, memory=False)}


@pytest.fixture(scope="module")
def client_auth_server(redis_factory):
    """A server of its own that asks every TLS client for a certificate."""
    return redis_factory(tls=True, tls_auth_clients=True)


async def refused(url: str) -> str:
    """Opens a manager on `url`, checks that it keeps serving from memory although Redis
    is not reached, and returns why it is not (stats()["redis"]["last_error"])."""
    cache = CacheManager(redis_url=url, namespace="tls", policies=POLICIES)
    async with cache:
        await eventually(lambda: cache.stats()["redis"]["last_error"])
        key = cache.key("c", 1)
        assert await cache.get_or_load(key, lambda: "from db") == "from db"
        assert await cache.get(key) == "from db"  # the memory tier serves
        assert await cache.get(cache.key("l2only", 1)) is None  # a miss, not an exception
        redis = cache.stats()["redis"]
        assert redis["configured"] and not redis["connected"]
        assert redis["errors"] >= 1
        return redis["last_error"]


async def reaches(url: str, server) -> None:
    """A manager on `url` writes through to Redis, as the plain port shows."""
    cache = CacheManager(redis_url=url, namespace="tls", policies=POLICIES)
    async with cache:
        await subscribed(cache)
        await cache.set(cache.key("l2only", "k"), "over tls")
        assert await cache.get(cache.key("l2only", "k")) == "over tls"
        assert cache.stats()["redis"]["connected"]
    assert server.command("DBSIZE") >= 1


async def test_verified_against_the_test_ca(redis_server):
    await reaches(redis_server.tls_url(), redis_server)


async def test_a_wrong_ca_is_refused_and_says_why(redis_server, tls_files):
    why = await refused(redis_server.tls_url(ssl_ca_certs=tls_files.path("other-ca.crt")))
    assert "certificate verify failed" in why
    assert redis_server.command("DBSIZE") == 0


async def test_verification_is_on_by_default_against_the_system_cas(redis_server):
    why = await refused(redis_server.tls_url(ssl_ca_certs=None))
    assert "certificate verify failed" in why


async def test_cert_reqs_none_connects_without_a_ca(redis_server):
    await reaches(redis_server.tls_url(host="127.0.0.1", ssl_ca_certs=None, ssl_cert_reqs="none"), redis_server)


async def test_the_hostname_is_checked_unless_turned_off(redis_server):
    # The server's certificate names 'localhost' only.
    assert "IP address mismatch" in await refused(redis_server.tls_url(host="127.0.0.1"))
    await reaches(redis_server.tls_url(host="127.0.0.1", ssl_check_hostname="false"), redis_server)


async def test_client_certificates_for_tls_auth_clients(client_auth_server, tls_files):
    why = await refused(client_auth_server.tls_url())
    assert "the server asked for a client certificate and none is configured" in why
    await reaches(client_auth_server.tls_url(ssl_certfile=tls_files.path("client.crt"),
                                             ssl_keyfile=tls_files.path("client.key")), client_auth_server)


async def test_a_missing_ca_file_is_reported(redis_server):
    why = await refused(redis_server.tls_url(ssl_ca_certs="/nonexistent/ca.pem"))
    assert "ssl_ca_certs: cannot load '/nonexistent/ca.pem'" in why


async def test_ssl_parameters_need_rediss(redis_server, tls_files):
    cache = CacheManager(redis_url=f"{redis_server.url}?ssl_ca_certs={tls_files.ca}")
    with pytest.raises(ValueError, match=r"ssl_\* parameters need a rediss:// url"):
        await cache.start()
