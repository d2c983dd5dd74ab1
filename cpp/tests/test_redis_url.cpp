// Redis URL parsing: every accepted form, and errors that say what is wrong.
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "herdcache/errors.hpp"
#include "herdcache/redis_url.hpp"

using herdcache::parse_redis_url;
using herdcache::RedisUrl;
using Catch::Matchers::Contains;

TEST_CASE("redis_url: host only gets port 6379 and db 0", "[redis_url]") {
  const RedisUrl url = parse_redis_url("redis://cache.internal");
  CHECK(url.transport == RedisUrl::Transport::Tcp);
  CHECK(url.host == "cache.internal");
  CHECK(url.port == 6379);
  CHECK(url.db == 0);
  CHECK(url.username.empty());
  CHECK(url.password.empty());
  CHECK(url.describe() == "redis://cache.internal:6379/0");
  CHECK(parse_redis_url("redis://h/").db == 0);
}

TEST_CASE("redis_url: user, password, port and db", "[redis_url]") {
  const RedisUrl url = parse_redis_url("redis://app:s3cr%40t%3A%2F@10.0.0.5:6380/3");
  CHECK(url.host == "10.0.0.5");
  CHECK(url.port == 6380);
  CHECK(url.db == 3);
  CHECK(url.username == "app");
  CHECK(url.password == "s3cr@t:/");
  CHECK(url.describe() == "redis://10.0.0.5:6380/3");  // no credentials in logs

  const RedisUrl password_only = parse_redis_url("redis://:pw@localhost:7000");
  CHECK(password_only.username.empty());
  CHECK(password_only.password == "pw");
  CHECK(password_only.port == 7000);

  // '@' inside the password, unescaped: the last '@' ends the credentials.
  CHECK(parse_redis_url("redis://u:p@ss@h").password == "p@ss");
}

TEST_CASE("redis_url: IPv6 literals and query parameters", "[redis_url]") {
  const RedisUrl v6 = parse_redis_url("redis://[::1]:6390/1");
  CHECK(v6.host == "::1");
  CHECK(v6.port == 6390);
  CHECK(v6.db == 1);
  CHECK(v6.describe() == "redis://[::1]:6390/1");
  CHECK(parse_redis_url("redis://[fe80::1]").port == 6379);

  const RedisUrl query = parse_redis_url("redis://h?db=4&password=p%26w&username=u");
  CHECK(query.db == 4);
  CHECK(query.password == "p&w");
  CHECK(query.username == "u");
}

TEST_CASE("redis_url: rediss:// verifies the peer and its name by default", "[redis_url]") {
  const RedisUrl url = parse_redis_url("rediss://:pw@cache.example.com:6380/2");
  CHECK(url.tls);
  CHECK(url.host == "cache.example.com");
  CHECK(url.port == 6380);
  CHECK(url.db == 2);
  CHECK(url.tls_verify_peer);
  CHECK(url.tls_check_hostname);
  CHECK(url.tls_ca_file.empty());  // the system CA store
  CHECK(url.tls_cert_file.empty());
  CHECK(url.describe() == "rediss://cache.example.com:6380/2");
  CHECK(parse_redis_url("rediss://h").port == 6379);
  CHECK_FALSE(parse_redis_url("redis://h").tls);
  CHECK_FALSE(parse_redis_url("redis://h").tls_check_hostname);
}

TEST_CASE("redis_url: the ssl_* parameters, as redis-py spells them", "[redis_url]") {
  const RedisUrl url = parse_redis_url(
      "rediss://h?ssl_ca_certs=/etc/ca%20dir/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"
      "&ssl_cert_reqs=required&ssl_check_hostname=false");
  CHECK(url.tls_ca_file == "/etc/ca dir/ca.pem");
  CHECK(url.tls_cert_file == "/c.pem");
  CHECK(url.tls_key_file == "/k.pem");
  CHECK(url.tls_verify_peer);
  CHECK_FALSE(url.tls_check_hostname);

  // No verification: no name to check either.
  const RedisUrl none = parse_redis_url("rediss://h?ssl_cert_reqs=none");
  CHECK_FALSE(none.tls_verify_peer);
  CHECK_FALSE(none.tls_check_hostname);
  CHECK_FALSE(parse_redis_url("rediss://h?ssl_cert_reqs=none&ssl_check_hostname=false").tls_check_hostname);

  CHECK(parse_redis_url("rediss://h?ssl_check_hostname=True").tls_check_hostname);
  CHECK_FALSE(parse_redis_url("rediss://h?ssl_check_hostname=0").tls_check_hostname);
  // A client certificate whose file holds the key too.
  const RedisUrl combined = parse_redis_url("rediss://h?ssl_certfile=/both.pem");
  CHECK(combined.tls_cert_file == "/both.pem");
  CHECK(combined.tls_key_file.empty());
}

TEST_CASE("redis_url: unix sockets", "[redis_url]") {
  const RedisUrl url = parse_redis_url("unix:///var/run/redis/redis.sock?db=2");
  CHECK(url.transport == RedisUrl::Transport::Unix);
  CHECK(url.path == "/var/run/redis/redis.sock");
  CHECK(url.db == 2);
  CHECK(url.describe() == "unix:///var/run/redis/redis.sock?db=2");

  const RedisUrl plus = parse_redis_url("redis+unix:///tmp/r%20s.sock");
  CHECK(plus.transport == RedisUrl::Transport::Unix);
  CHECK(plus.path == "/tmp/r s.sock");
  CHECK(plus.db == 0);

  const RedisUrl creds = parse_redis_url("unix://u:p%40w@/tmp/r.sock?db=1");
  CHECK(creds.username == "u");
  CHECK(creds.password == "p@w");
  CHECK(creds.path == "/tmp/r.sock");
}

TEST_CASE("redis_url: bad urls name what is wrong", "[redis_url]") {
  auto fails_with = [](const char* text, const char* reason) {
    CAPTURE(text);
    try {
      parse_redis_url(text);
      FAIL("expected InvalidArgument");
    } catch (const herdcache::InvalidArgument& e) {
      CHECK_THAT(e.what(), Contains(reason));
    }
  };
  fails_with("", "expected redis://");
  fails_with("localhost:6379", "expected redis://");
  fails_with("http://h", "unknown scheme");
  fails_with("redis://h?ssl_ca_certs=/ca.pem", "ssl_* parameters need a rediss:// url");
  fails_with("unix:///r.sock?ssl_cert_reqs=none", "ssl_* parameters need a rediss:// url");
  fails_with("rediss://h?ssl_cert_reqs=optional", "ssl_cert_reqs must be required or none");
  fails_with("rediss://h?ssl_check_hostname=maybe", "ssl_check_hostname must be true or false");
  fails_with("rediss://h?ssl_cert_reqs=none&ssl_check_hostname=true", "needs ssl_cert_reqs=required");
  fails_with("rediss://h?ssl_keyfile=/k.pem", "ssl_keyfile needs ssl_certfile");
  fails_with("rediss://h?ssl_ca_certs=", "ssl_ca_certs needs a file path");
  fails_with("rediss://h?ssl_certfile=/c%00.pem", "ssl_certfile must not contain NUL");
  fails_with("rediss://h?ssl_version=tls1_3", "unknown query parameter");
  fails_with("redis://", "missing host");
  fails_with("redis://:6379", "missing host");
  fails_with("redis://h:0", "port must be 1..65535");
  fails_with("redis://h:65536", "port must be 1..65535");
  fails_with("redis://h:abc", "port must be 1..65535");
  fails_with("redis://h:", "empty port");
  fails_with("redis://[::1", "unterminated '['");
  fails_with("redis://h/x", "db must be a non-negative integer");
  fails_with("redis://h/-1", "db must be a non-negative integer");
  fails_with("redis://h/1?db=2", "db given twice");
  fails_with("redis://h?timeout=5", "unknown query parameter");
  fails_with("redis://h#frag", "fragments");
  fails_with("redis://user@h", "need a password");
  fails_with("redis://u:@h", "empty password");
  fails_with("redis://u:p%zz@h", "bad percent escape in password");
  fails_with("unix://", "missing socket path");
  fails_with("unix:///", "missing socket path");
  fails_with("unix://host/path", "unix urls have no host");
  fails_with(("unix:///" + std::string(200, 'p')).c_str(), "socket path longer than");
}

// Found by fuzz_redis_url: "redis://cache.internal\0.evil" named one host and connected
// to another (the resolver stops at the NUL), and %00 did the same to a socket path.
TEST_CASE("redis_url: a host with a NUL, a space or a control byte is refused, so is a NUL in a path",
          "[redis_url]") {
  using namespace std::string_literals;
  for (const std::string& text : {"redis://cache.internal\0.evil:6379"s, "redis://a b"s, "redis://h\tx/0"s,
                                  "redis://[::1\n]:6379"s, "redis://\x7f"s}) {
    CAPTURE(text);
    CHECK_THROWS_WITH(parse_redis_url(text), Contains("host must not contain spaces or control characters"));
  }
  CHECK_THROWS_WITH(parse_redis_url("unix:///tmp/redis.sock%00.x"), Contains("socket path must not contain NUL"));
}

TEST_CASE("redis_url: errors never echo a password", "[redis_url]") {
  try {
    parse_redis_url("redis://u:hunter2%zz@h");
    FAIL("expected InvalidArgument");
  } catch (const herdcache::InvalidArgument& e) {
    CHECK_THAT(e.what(), !Contains("hunter2"));
  }
}

TEST_CASE("redis_url: socket_timeout and socket_connect_timeout in seconds", "[redis_url]") {
  const RedisUrl url = parse_redis_url("redis://h/0?socket_timeout=2.5&socket_connect_timeout=0.25");
  CHECK(url.command_timeout_ms == 2500);
  CHECK(url.connect_timeout_ms == 250);
  CHECK(parse_redis_url("redis://h").command_timeout_ms == 0);  // not given: the options decide
  CHECK(parse_redis_url("redis://h?socket_timeout=0.0001").command_timeout_ms == 1);
  for (const char* bad : {"redis://h?socket_timeout=", "redis://h?socket_timeout=0", "redis://h?socket_timeout=-1",
                          "redis://h?socket_timeout=1s", "redis://h?socket_connect_timeout=1e9"}) {
    CHECK_THROWS_WITH(parse_redis_url(bad), Catch::Contains("timeout must be seconds"));
  }
}

TEST_CASE("redis_url: redis+cluster:// carries its seeds, port 6379 by default", "[redis_url]") {
  const RedisUrl url = parse_redis_url("redis+cluster://app:s3cr%40t@10.0.0.1:7000,node-b,[::1]:7002/0"
                                       "?socket_timeout=0.5");
  CHECK(url.topology() == RedisUrl::Topology::Cluster);
  CHECK(url.uses_cluster());
  CHECK_FALSE(url.uses_sentinel());
  CHECK_FALSE(url.tls);
  REQUIRE(url.cluster_seeds.size() == 3);
  CHECK(url.cluster_seeds[0] == herdcache::MasterAddress{"10.0.0.1", 7000});
  CHECK(url.cluster_seeds[1] == herdcache::MasterAddress{"node-b", 6379});
  CHECK(url.cluster_seeds[2] == herdcache::MasterAddress{"::1", 7002});
  CHECK(url.username == "app");
  CHECK(url.password == "s3cr@t");
  CHECK(url.db == 0);
  CHECK(url.command_timeout_ms == 500);
  CHECK(url.describe() == "redis+cluster://10.0.0.1:7000,node-b:6379,[::1]:7002/0");  // no credentials

  const RedisUrl one = parse_redis_url("redis+cluster://h");
  CHECK(one.cluster_seeds == std::vector<herdcache::MasterAddress>{{"h", 6379}});
  CHECK(parse_redis_url("redis+cluster://h:7000/?db=0").db == 0);
  // Aimed at one node (as the cluster tier will for each master), it is a plain URL.
  const RedisUrl node = url.at("10.0.0.9", 7005);
  CHECK(node.topology() == RedisUrl::Topology::Single);
  CHECK(node.password == "s3cr@t");
  CHECK(node.describe() == "redis://10.0.0.9:7005/0");
}

TEST_CASE("redis_url: rediss+cluster:// takes the ssl_* parameters", "[redis_url]") {
  const RedisUrl url =
      parse_redis_url("rediss+cluster://:pw@a:7000,b:7001?ssl_ca_certs=/ca.pem&ssl_check_hostname=false");
  CHECK(url.topology() == RedisUrl::Topology::Cluster);
  CHECK(url.tls);
  CHECK(url.tls_ca_file == "/ca.pem");
  CHECK(url.tls_verify_peer);
  CHECK_FALSE(url.tls_check_hostname);
  CHECK(url.cluster_seeds.size() == 2);
  CHECK(url.describe() == "rediss+cluster://a:7000,b:7001/0");
  CHECK(parse_redis_url("rediss+cluster://a").tls_check_hostname);
}

TEST_CASE("redis_url: the other forms are not clusters", "[redis_url]") {
  CHECK(parse_redis_url("redis://h").topology() == RedisUrl::Topology::Single);
  CHECK(parse_redis_url("unix:///r.sock").topology() == RedisUrl::Topology::Single);
  CHECK(parse_redis_url("redis+sentinel://s:26379/mymaster").topology() == RedisUrl::Topology::Sentinel);
  CHECK(parse_redis_url("redis://h").cluster_seeds.empty());
}

TEST_CASE("redis_url: bad cluster urls name what is wrong", "[redis_url]") {
  for (const auto& [text, reason] : std::vector<std::pair<std::string, std::string>>{
           {"redis+cluster://", "needs at least one cluster seed"},
           {"redis+cluster://:pw@/0", "needs at least one cluster seed"},
           {"redis+cluster://?socket_timeout=1", "needs at least one cluster seed"},
           {"redis+cluster://a:7000,,b:7001", "empty cluster seed address in the host list"},
           {"redis+cluster://a:7000,", "empty cluster seed address in the host list"},
           {"redis+cluster://,a:7000", "empty cluster seed address in the host list"},
           {"redis+cluster://a:7000,b:0", "port must be 1..65535: '0'"},
           {"redis+cluster://a:7000,b:x", "port must be 1..65535: 'x'"},
           {"redis+cluster://a:", "empty port"},
           {"redis+cluster://a:7000,:7001", "missing host"},
           {"redis+cluster://a:7000/3", "a Redis Cluster has only db 0, not db 3"},
           {"redis+cluster://a:7000?db=1", "a Redis Cluster has only db 0, not db 1"},
           {"redis+cluster://a/x", "db must be a non-negative integer"},
           {"redis+cluster://a?ssl_ca_certs=/ca.pem", "ssl_* parameters need a rediss:// url"},
           {"redis+cluster://a?sentinel_password=x", "sentinel_* parameters need a redis+sentinel:// url"},
           {"redis+cluster://a?readonly=1", "unknown query parameter"},
           {"redis+clusters://a", "unknown scheme"},
       }) {
    CAPTURE(text);
    CHECK_THROWS_AS(parse_redis_url(text), herdcache::InvalidArgument);
    CHECK_THROWS_WITH(parse_redis_url(text), Contains(reason));
  }
}
