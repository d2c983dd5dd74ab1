// Sentinel's pure half: what the sentinels' and ROLE's replies say, a +switch-master
// message, the order sentinels are asked in; the sentinel URL forms; and the resolver
// against a real redis-server and sentinel (failovers under traffic: tests/test_sentinel.py).
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <string>

#include "herdcache/errors.hpp"
#include "herdcache/redis_url.hpp"
#include "herdcache/resp.hpp"
#include "herdcache/sentinel.hpp"
#include "redis_server.hpp"
#include "reply_bytes.hpp"

using namespace herdcache;
using Catch::Matchers::Contains;

namespace {

Reply parse(std::string_view bytes) { return parse_reply(bytes); }

}  // namespace

TEST_CASE("sentinel: get-master-addr-by-name's reply is an address, nil is no master", "[sentinel]") {
  const auto address = parse_master_address(parse("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n"));
  REQUIRE(address);
  CHECK(address->host == "127.0.0.1");
  CHECK(address->port == 6380);
  CHECK(address->str() == "127.0.0.1:6380");
  CHECK(MasterAddress{"::1", 7000}.str() == "[::1]:7000");

  CHECK_FALSE(parse_master_address(parse("*-1\r\n")));  // RESP2: the service is unknown
  CHECK_FALSE(parse_master_address(parse("$-1\r\n")));

  CHECK_THROWS_WITH(parse_master_address(parse("-NOAUTH Authentication required.\r\n")),
                    Contains("NOAUTH"));
  CHECK_THROWS_WITH(parse_master_address(parse("*2\r\n$1\r\nh\r\n$5\r\n70000\r\n")), Contains("not a port"));
  CHECK_THROWS_WITH(parse_master_address(parse("*1\r\n$1\r\nh\r\n")), Contains("not a master address"));
  CHECK_THROWS_AS(parse_master_address(parse("+OK\r\n")), ProtocolError);
}

TEST_CASE("sentinel: ROLE says master or not", "[sentinel]") {
  CHECK(is_master_role(parse("*3\r\n$6\r\nmaster\r\n:3129\r\n*0\r\n")));
  CHECK_FALSE(is_master_role(parse("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6380\r\n$9\r\nconnected\r\n:3129\r\n")));
  CHECK_FALSE(is_master_role(parse("*2\r\n$8\r\nsentinel\r\n*0\r\n")));
  CHECK_FALSE(is_master_role(parse("-ERR unknown command 'ROLE'\r\n")));
}

TEST_CASE("sentinel: +switch-master names the new master of one service", "[sentinel]") {
  const auto moved = parse_switch_master("mymaster 127.0.0.1 6379 127.0.0.1 6380", "mymaster");
  REQUIRE(moved);
  CHECK(*moved == MasterAddress{"127.0.0.1", 6380});
  CHECK_FALSE(parse_switch_master("other 127.0.0.1 6379 127.0.0.1 6380", "mymaster"));
  CHECK_FALSE(parse_switch_master("mymaster 127.0.0.1 6379 127.0.0.1", "mymaster"));
  CHECK_FALSE(parse_switch_master("mymaster 127.0.0.1 6379 127.0.0.1 port", "mymaster"));
  CHECK_FALSE(parse_switch_master("", "mymaster"));
}

TEST_CASE("sentinel: the sentinel that answered is asked first next time", "[sentinel]") {
  SentinelOrder order(3);
  CHECK((order.at(0) == 0 && order.at(1) == 1 && order.at(2) == 2));
  order.answered(2);
  CHECK((order.at(0) == 2 && order.at(1) == 0 && order.at(2) == 1));
  order.answered(1);
  CHECK((order.at(0) == 1 && order.at(1) == 2 && order.at(2) == 0));
  order.answered(1);  // already first: unchanged
  CHECK((order.at(0) == 1 && order.at(1) == 2 && order.at(2) == 0));
}

TEST_CASE("sentinel: after a round, the verified master, none, or the one before", "[sentinel]") {
  const MasterAddress old{"10.0.0.1", 6379}, promoted{"10.0.0.2", 6379};
  CHECK(master_after_round(promoted, true, old) == promoted);
  // A sentinel named an address that failed ROLE (the old master, going down): none.
  CHECK(master_after_round(std::nullopt, true, old) == std::nullopt);
  // No sentinel answered: nothing says the master changed, keep using it.
  CHECK(master_after_round(std::nullopt, false, old) == old);
  CHECK(master_after_round(std::nullopt, false, std::nullopt) == std::nullopt);
}

TEST_CASE("sentinel: READONLY error replies, also from inside a script", "[sentinel]") {
  CHECK(is_readonly_error(Reply::error("READONLY You can't write against a read only replica.")));
  CHECK(is_readonly_error(
      Reply::error("ERR Error running script (call to f_x): @user_script:1: -READONLY You can't write")));
  CHECK_FALSE(is_readonly_error(Reply::error("ERR wrong number of arguments")));
  CHECK_FALSE(is_readonly_error(Reply::bulk("READONLY ")));
}

TEST_CASE("redis_url: redis+sentinel:// lists sentinels, a service and a db", "[redis_url][sentinel]") {
  const RedisUrl url = parse_redis_url(
      "redis+sentinel://app:pw@s1:26380,10.0.0.2,[::1]:26381/mymaster/2?sentinel_password=sp%40ss");
  REQUIRE(url.uses_sentinel());
  REQUIRE(url.sentinels.size() == 3);
  CHECK((url.sentinels[0].host == "s1" && url.sentinels[0].port == 26380));
  CHECK((url.sentinels[1].host == "10.0.0.2" && url.sentinels[1].port == 26379));
  CHECK((url.sentinels[2].host == "::1" && url.sentinels[2].port == 26381));
  CHECK(url.sentinel_service == "mymaster");
  CHECK(url.db == 2);
  CHECK(url.username == "app");  // the master's credentials
  CHECK(url.password == "pw");
  CHECK(url.sentinel_password == "sp@ss");
  CHECK_FALSE(url.tls);
  CHECK(url.describe() == "redis+sentinel://s1:26380,10.0.0.2:26379,[::1]:26381/mymaster/2");

  const RedisUrl master = url.at("10.0.0.9", 6390);
  CHECK_FALSE(master.uses_sentinel());
  CHECK((master.host == "10.0.0.9" && master.port == 6390 && master.db == 2 && master.password == "pw"));
  CHECK(master.sentinel_password.empty());
  CHECK(master.describe() == "redis://10.0.0.9:6390/2");

  CHECK(parse_redis_url("redis+sentinel://h:1/svc").db == 0);
  const RedisUrl named = parse_redis_url("redis+sentinel://h/svc?sentinel_username=u&sentinel_password=p");
  CHECK((named.sentinel_username == "u" && named.sentinel_password == "p"));
}

TEST_CASE("redis_url: rediss+sentinel:// takes the ssl_* parameters", "[redis_url][sentinel]") {
  const RedisUrl url = parse_redis_url("rediss+sentinel://h:26379/svc?ssl_ca_certs=/ca.pem&ssl_check_hostname=false");
  CHECK(url.tls);
  CHECK(url.tls_ca_file == "/ca.pem");
  CHECK_FALSE(url.tls_check_hostname);
  CHECK(url.describe() == "rediss+sentinel://h:26379/svc/0");
  CHECK(url.at("m", 6379).tls);
}

TEST_CASE("redis_url: bad sentinel urls name what is wrong", "[redis_url][sentinel]") {
  CHECK_THROWS_WITH(parse_redis_url("redis+sentinel://h:26379"), Contains("needs a service name"));
  CHECK_THROWS_WITH(parse_redis_url("redis+sentinel://h:26379/"), Contains("needs a service name"));
  CHECK_THROWS_WITH(parse_redis_url("redis+sentinel://h:1,,h:2/svc"), Contains("empty sentinel address"));
  CHECK_THROWS_WITH(parse_redis_url("redis+sentinel://h:1,/svc"), Contains("empty sentinel address"));
  CHECK_THROWS_WITH(parse_redis_url("redis+sentinel:///svc"), Contains("needs at least one sentinel"));
  CHECK_THROWS_WITH(parse_redis_url("redis+sentinel://h:0/svc"), Contains("port must be 1..65535"));
  CHECK_THROWS_WITH(parse_redis_url("redis+sentinel://h:1/svc/x"), Contains("db must be"));
  CHECK_THROWS_WITH(parse_redis_url("redis+sentinel://h:1/svc/"), Contains("empty db"));
  CHECK_THROWS_WITH(parse_redis_url("redis+sentinel://h:1/s%20v"), Contains("service name must not contain"));
  CHECK_THROWS_WITH(parse_redis_url("redis://h/0?sentinel_password=x"), Contains("need a redis+sentinel:// url"));
  CHECK_THROWS_WITH(parse_redis_url("redis+sentinel://h/svc?sentinel_username=u"),
                    Contains("sentinel_username needs sentinel_password"));
  CHECK_THROWS_WITH(parse_redis_url("redis+sentinel://h/svc?ssl_ca_certs=/x"), Contains("need a rediss:// url"));
  CHECK_THROWS_WITH(parse_redis_url("redis+sentinel://h/svc?nope=1"), Contains("unknown query parameter"));
  CHECK_THROWS_WITH(parse_redis_url("redis+sentinel://h/svc?sentinel_password=%zz"), Contains("<redacted>"));
  CHECK_THROWS_WITH(parse_redis_url("sentinel://h/svc"), Contains("unknown scheme"));
}

namespace {

using herdcache::testing::Observed;
using herdcache::testing::RedisServer;
using herdcache::testing::TempDir;
using namespace std::chrono_literals;

std::string sentinel_config(const TempDir& dir, int master_port) {
  const std::string path = (dir.path() / "sentinel.conf").string();
  std::ofstream(path) << fmt::format("sentinel monitor mymaster 127.0.0.1 {} 1\n", master_port);
  return path;
}

// Until `pred(resolver)` holds, woken by the resolver's change notices (and checked first:
// the first round may have ended before the watch began).
template <class P>
bool wait_for(SentinelResolver& resolver, P pred) {
  Observed<int> changes;
  const auto id = resolver.watch([&] { changes.update([](int& n) { ++n; }); });
  const bool held = changes.wait_for([&](int) { return pred(resolver); }, 10s);
  resolver.unwatch(id);
  return held;
}

}  // namespace

TEST_CASE("sentinel: a resolver finds the master past a dead sentinel, and refuses a replica",
          "[sentinel][redis]") {
  RedisServer master;
  TempDir dir;
  RedisServer sentinel = RedisServer::sentinel(sentinel_config(dir, master.port()));
  RedisOptions options;
  options.connect_timeout_ms = 500;
  const int dead = herdcache::testing::free_port();
  SentinelResolver resolver(parse_redis_url(fmt::format("redis+sentinel://127.0.0.1:{},127.0.0.1:{}/mymaster",
                                                        dead, sentinel.port())),
                            options);
  REQUIRE(wait_for(resolver, [](SentinelResolver& r) { return r.master().has_value(); }));
  CHECK(resolver.master()->port == master.port());
  CHECK(resolver.master()->describe() == fmt::format("redis://127.0.0.1:{}/0", master.port()));
  CHECK(resolver.settled());
  CHECK(resolver.stats().failovers == 0);
  REQUIRE(wait_for(resolver, [&](SentinelResolver& r) { return !r.stats().listening_on.empty(); }));
  CHECK(resolver.stats().listening_on == fmt::format("redis://127.0.0.1:{}/0", sentinel.port()));

  // The sentinel still names it, but it answers ROLE as a replica now: no master.
  RedisServer other;
  RedisClient admin(parse_redis_url(master.url()), RedisOptions{});
  REQUIRE(admin.execute({"REPLICAOF", "127.0.0.1", std::to_string(other.port())}).ok());
  resolver.suspect();
  REQUIRE(wait_for(resolver, [](SentinelResolver& r) { return !r.master(); }));
  CHECK_THAT(resolver.stats().last_error, Contains("not a master (ROLE says slave)"));

  // A master again: a later round (suspect-driven or the backoff's) verifies it.
  REQUIRE(admin.execute({"REPLICAOF", "NO", "ONE"}).ok());
  resolver.suspect();
  REQUIRE(wait_for(resolver, [](SentinelResolver& r) { return r.master().has_value(); }));
  CHECK(resolver.stats().failovers == 0);  // the same master: not a failover
  CHECK(resolver.stats().last_error.empty());
}

TEST_CASE("sentinel: a service no sentinel monitors is no master, and says so", "[sentinel][redis]") {
  RedisServer master;
  TempDir dir;
  RedisServer sentinel = RedisServer::sentinel(sentinel_config(dir, master.port()));
  SentinelResolver resolver(parse_redis_url(fmt::format("redis+sentinel://127.0.0.1:{}/nope", sentinel.port())),
                            RedisOptions{});
  REQUIRE(wait_for(resolver, [](SentinelResolver& r) { return r.settled(); }));
  CHECK_FALSE(resolver.master());
  CHECK_THAT(resolver.stats().last_error, Contains("does not monitor 'nope'"));

  // A client on it waits for no master: its requests fail, they do not hang.
  RedisClient client(parse_redis_url(fmt::format("redis+sentinel://127.0.0.1:{}/nope", sentinel.port())),
                     RedisOptions{});
  const RedisResult result = client.execute({"PING"});
  REQUIRE_FALSE(result.ok());
  CHECK_THAT(result.error_message(), Contains("no master for 'nope'") || Contains("not connected"));
}
