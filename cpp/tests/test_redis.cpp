// RedisClient against a real redis-server that each test starts on a free port.
// Waits are on notifications (callbacks, connection events) with deadlines; no sleeps.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "herdcache/redis.hpp"
#include "redis_server.hpp"

using herdcache::ConnectionEvent;
using herdcache::parse_redis_url;
using herdcache::RedisClient;
using herdcache::RedisErrorKind;
using herdcache::RedisOptions;
using herdcache::RedisResult;
using herdcache::Reply;
using herdcache::testing::free_port;
using herdcache::testing::Observed;
using herdcache::testing::RedisServer;
using herdcache::testing::TempDir;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Options that keep tests fast: short timeouts and backoff.
RedisOptions fast_options() {
  RedisOptions options;
  options.connect_timeout_ms = 1000;
  options.command_timeout_ms = 2000;
  options.backoff_initial_ms = 5;
  options.backoff_max_ms = 50;
  options.breaker_failures = 5;
  options.breaker_open_ms = 100;
  options.health_interval_ms = 100;
  return options;
}

// Connection events as they are reported, for tests to wait on.
struct Events {
  Observed<std::vector<ConnectionEvent>> log;

  RedisClient::EventCallback callback() {
    return [this](const ConnectionEvent& event) {
      log.update([&](auto& events) { events.push_back(event); });
    };
  }
  // Waits until `count` events have been reported in total and returns the last one.
  ConnectionEvent wait(std::size_t count, std::chrono::milliseconds timeout = 5s) {
    REQUIRE(log.wait_for([&](const auto& events) { return events.size() >= count; }, timeout));
    return log.get()[count - 1];
  }
};

std::string value_for(const std::string& key) { return "value-of-" + key + "-" + key; }

}  // namespace

TEST_CASE("redis: 10k pipelined SET/GET from 4 threads get their own replies", "[redis]") {
  RedisServer server;
  RedisClient client(parse_redis_url(server.url()), fast_options());

  constexpr int kThreads = 4;
  constexpr int kPerThread = 2500;  // x 2 commands: 20k requests
  struct Tally {
    int done = 0;
    int wrong = 0;
    std::string first_wrong;
  };
  Observed<Tally> tally;
  auto record = [&tally](bool right, const std::string& what) {
    tally.update([&](Tally& t) {
      ++t.done;
      if (!right && t.wrong++ == 0) t.first_wrong = what;
    });
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string key = "k:" + std::to_string(t) + ":" + std::to_string(i);
        client.submit({"SET", key, value_for(key)}, [record](RedisResult r) {
          record(r.ok() && r.reply() == Reply::status("OK"), r.debug_string());
        });
        client.submit({"GET", key}, [record, key](RedisResult r) {
          record(r.ok() && r.reply() == Reply::bulk(value_for(key)), key + " -> " + r.debug_string());
        });
      }
    });
  }
  for (auto& thread : threads) thread.join();
  REQUIRE(tally.wait_for([](const Tally& t) { return t.done == 2 * kThreads * kPerThread; }, 10s));
  const Tally result = tally.get();
  CHECK(result.wrong == 0);
  CHECK(result.first_wrong == "");
  CHECK(client.health().connected);
  CHECK(client.health().pending == 0);
  CHECK(client.execute({"DBSIZE"}).reply() == Reply::integer(kThreads * kPerThread));
}

TEST_CASE("redis: binary, empty and 8 MB values round-trip", "[redis]") {
  RedisServer server;
  RedisClient client(parse_redis_url(server.url()), fast_options());

  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  binary += "\r\n$5\r\n*1\r\n";  // RESP-looking bytes are data too
  std::string big(8u << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + (i >> 13));

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"binary", binary}, {"empty", ""}, {"big", big}, {std::string("k\0ey", 4), "nul key"}};
  for (const auto& [key, value] : cases) {
    CAPTURE(key);
    CHECK(client.execute({"SET", key, value}).reply() == Reply::status("OK"));
    const RedisResult got = client.execute({"GET", key});
    REQUIRE(got.ok());
    CHECK(got.reply().is_bulk());
    CHECK(got.reply().str().size() == value.size());
    CHECK(got.reply().str() == value);
  }
  CHECK(client.execute({"GET", "missing"}).reply().is_nil());
  CHECK(client.execute({"STRLEN", "big"}).reply() == Reply::integer(8 << 20));
}

TEST_CASE("redis: an error reply is that request's answer and breaks nothing", "[redis]") {
  RedisServer server;
  RedisClient client(parse_redis_url(server.url()), fast_options());

  // Three requests in one pipelined batch: the middle one fails on the server.
  Observed<std::vector<RedisResult>> results;
  auto collect = [&results](RedisResult r) {
    results.update([&](auto& all) { all.push_back(std::move(r)); });
  };
  client.submit({"SET", "counter", "not a number"}, collect);
  client.submit({"INCR", "counter"}, collect);
  client.submit({"GET", "counter"}, collect);
  REQUIRE(results.wait_for([](const auto& all) { return all.size() == 3; }, 5s));
  const auto all = results.get();
  CHECK(all[0].reply() == Reply::status("OK"));
  REQUIRE(all[1].ok());  // an answer, not a fault
  CHECK(all[1].reply().is_error());
  CHECK_THAT(all[1].reply().str(), Catch::StartsWith("ERR value is not an integer"));
  CHECK(all[2].reply() == Reply::bulk("not a number"));

  CHECK(client.execute({"NOSUCHCOMMAND"}).reply().is_error());
  CHECK(client.execute({"PING"}).reply() == Reply::status("PONG"));
  const auto health = client.health();
  CHECK(health.errors == 0);
  CHECK(health.consecutive_failures == 0);
}

TEST_CASE("redis: AUTH and SELECT over a unix socket", "[redis]") {
  TempDir dir;
  const std::string socket = (dir.path() / "redis.sock").string();
  RedisServer server({"--requirepass", "s3cret", "--unixsocket", socket, "--unixsocketperm", "700",
                      "--user", "alice", "on", ">al:ce@pw", "~*", "&*", "+@all"});

  SECTION("password only, db 3") {
    RedisClient client(parse_redis_url("unix://:s3cret@" + socket + "?db=3"), fast_options());
    CHECK(client.execute({"SET", "where", "db3"}).reply() == Reply::status("OK"));
    CHECK(client.execute({"CLIENT", "INFO"}).reply().str().find("db=3") != std::string::npos);
    RedisClient db0(parse_redis_url("redis://:s3cret@127.0.0.1:" + std::to_string(server.port())),
                    fast_options());
    CHECK(db0.execute({"GET", "where"}).reply().is_nil());
  }
  SECTION("user and percent-encoded password") {
    RedisClient client(parse_redis_url("unix://alice:al%3Ace%40pw@" + socket), fast_options());
    CHECK(client.execute({"ACL", "WHOAMI"}).reply() == Reply::bulk("alice"));
  }
  SECTION("a wrong password is reported, not retried silently") {
    Events events;
    RedisClient client(parse_redis_url("unix://:wrong@" + socket), fast_options(),
                       events.callback());
    const ConnectionEvent down = events.wait(1);
    CHECK_FALSE(down.connected);
    CHECK_THAT(down.detail, Catch::Contains("handshake refused") && Catch::Contains("WRONGPASS"));
    const RedisResult r = client.execute({"PING"});
    REQUIRE_FALSE(r.ok());
    CHECK((r.error_kind() == RedisErrorKind::Disconnected ||
           r.error_kind() == RedisErrorKind::CircuitOpen));
    CHECK_FALSE(client.health().connected);
  }
}

TEST_CASE("redis: server killed mid-traffic, then restarted on the same port", "[redis]") {
  RedisServer server;
  Events events;
  RedisClient client(parse_redis_url(server.url()), fast_options(), events.callback());
  REQUIRE(events.wait(1).connected);
  REQUIRE(client.execute({"SET", "k", "v"}).ok());

  // Traffic from another thread while the server dies: every request must be answered.
  struct Counts {
    int submitted = 0;
    int answered = 0;
    int ok = 0;
    int disconnected = 0;
    int other = 0;
  };
  Observed<Counts> counts;
  std::atomic<bool> stop{false};
  std::thread traffic([&] {
    while (!stop.load()) {
      counts.update([](Counts& c) { ++c.submitted; });
      client.submit({"GET", "k"}, [&counts](RedisResult r) {
        counts.update([&](Counts& c) {
          ++c.answered;
          if (r.ok()) {
            ++c.ok;
          } else if (r.error_kind() == RedisErrorKind::Disconnected ||
                     r.error_kind() == RedisErrorKind::CircuitOpen) {
            ++c.disconnected;
          } else {
            ++c.other;
          }
        });
      });
      // Keep at most ~1000 outstanding: this test is about answers, not max_pending.
      counts.wait_for([](const Counts& c) { return c.submitted - c.answered < 1000; }, 5s);
    }
  });
  REQUIRE(counts.wait_for([](const Counts& c) { return c.ok >= 1000; }, 5s));
  const auto killed_at = Clock::now();
  server.kill(SIGKILL);
  const ConnectionEvent lost = events.wait(2);
  CHECK_FALSE(lost.connected);
  CHECK(Clock::now() - killed_at < 1s);  // noticed at once (EOF), not at a timeout
  REQUIRE(counts.wait_for([](const Counts& c) { return c.disconnected >= 100; }, 5s));
  stop = true;
  traffic.join();
  // No hang: everything submitted is answered, within the command timeout at most.
  REQUIRE(counts.wait_for([](const Counts& c) { return c.answered == c.submitted; }, 3s));
  CHECK(counts.get().other == 0);
  CHECK_FALSE(client.health().connected);
  const RedisResult down = client.execute({"GET", "k"});
  REQUIRE_FALSE(down.ok());

  server.start();  // same port, empty data set
  const ConnectionEvent back = events.wait(3, 5s);
  CHECK(back.connected);
  CHECK(back.after_loss);
  CHECK(client.execute({"SET", "k", "again"}).reply() == Reply::status("OK"));
  CHECK(client.execute({"GET", "k"}).reply() == Reply::bulk("again"));
  const auto health = client.health();
  CHECK(health.connected);
  CHECK(health.reconnects == 1);
  CHECK(health.circuit == "closed");
  CHECK(health.errors > 0);
}

TEST_CASE("redis: a command timeout answers Timeout and later replies stay aligned",
          "[redis]") {
  RedisServer server;
  RedisOptions options = fast_options();
  options.command_timeout_ms = 150;
  options.health_interval_ms = 0;
  RedisClient client(parse_redis_url(server.url()), options);
  REQUIRE(client.execute({"SET", "k", "v"}).ok());

  const auto start = Clock::now();
  const RedisResult slow = client.execute({"DEBUG", "SLEEP", "0.25"});
  const auto waited = Clock::now() - start;
  REQUIRE_FALSE(slow.ok());
  CHECK(slow.error_kind() == RedisErrorKind::Timeout);
  CHECK(waited >= 140ms);
  CHECK(waited < 240ms);  // the deadline, not the server's 250 ms

  // Sent on the same connection after the timeout, answered after the late "+OK" of the
  // DEBUG SLEEP: that reply must be dropped, not handed to this GET.
  const RedisResult next = client.execute({"GET", "k"});
  CHECK(next.debug_string() == Reply::bulk("v").debug_string());
  CHECK(client.health().timeouts == 1);
  CHECK(client.health().reconnects == 0);  // the server answered: no reset
}

TEST_CASE("redis: a connection that stops answering is reset", "[redis]") {
  RedisServer server;
  Events events;
  RedisOptions options = fast_options();
  options.command_timeout_ms = 100;
  options.health_interval_ms = 0;
  RedisClient client(parse_redis_url(server.url()), options, events.callback());
  REQUIRE(events.wait(1).connected);

  // Silent for 500 ms: after the 100 ms timeout plus 100 ms without a byte, the client
  // gives up on the connection, then reconnects once the server answers again.
  CHECK(client.execute({"DEBUG", "SLEEP", "0.5"}).error_kind() == RedisErrorKind::Timeout);
  const ConnectionEvent lost = events.wait(2, 2s);
  CHECK_FALSE(lost.connected);
  CHECK_THAT(lost.detail, Catch::Contains("no reply"));
  CHECK(events.wait(3, 3s).connected);
  CHECK(client.execute({"PING"}).reply() == Reply::status("PONG"));
}

TEST_CASE("redis: the circuit opens after failures, fast-fails, and closes after a probe",
          "[redis]") {
  const int port = free_port();  // nothing listens here yet
  Events events;
  RedisOptions options = fast_options();
  options.breaker_failures = 3;
  options.breaker_open_ms = 150;
  options.backoff_initial_ms = 1;
  options.backoff_max_ms = 5;
  RedisClient client(parse_redis_url("redis://127.0.0.1:" + std::to_string(port)), options,
                     events.callback());
  CHECK_FALSE(events.wait(1).connected);  // reported once, not once per attempt

  // Refused connects open the circuit within a few backoff delays (at most ~10 ms).
  RedisResult r = client.execute({"PING"});
  const auto deadline = Clock::now() + 2s;
  while (!(!r.ok() && r.error_kind() == RedisErrorKind::CircuitOpen) && Clock::now() < deadline) {
    REQUIRE_FALSE(r.ok());
    CHECK(r.error_kind() == RedisErrorKind::Disconnected);  // never queued, never hangs
    std::this_thread::yield();
    r = client.execute({"PING"});
  }
  REQUIRE(r.error_kind() == RedisErrorKind::CircuitOpen);
  CHECK(client.health().circuit == "open");
  CHECK(client.health().consecutive_failures >= 3);

  const auto before = Clock::now();
  for (int i = 0; i < 1000; ++i) {
    CHECK(client.execute({"PING"}).error_kind() == RedisErrorKind::CircuitOpen);
  }
  CHECK(Clock::now() - before < 500ms);  // fast failure: no I/O at all
  CHECK(client.health().rejected >= 1000);
  CHECK(events.log.get().size() == 1);

  RedisServer server({}, port);  // the next probe finds it
  const ConnectionEvent back = events.wait(2, 3s);
  CHECK(back.connected);
  CHECK(back.after_loss);
  CHECK(client.health().circuit == "closed");
  CHECK(client.execute({"PING"}).reply() == Reply::status("PONG"));
}

TEST_CASE("redis: max_pending bounds the queue and close fails what is pending", "[redis]") {
  RedisServer server;
  RedisOptions options = fast_options();
  options.max_pending = 2;
  auto client = std::make_unique<RedisClient>(parse_redis_url(server.url()), options);
  REQUIRE(client->execute({"PING"}).ok());

  Observed<std::vector<RedisResult>> results;
  auto collect = [&results](RedisResult r) {
    results.update([&](auto& all) { all.push_back(std::move(r)); });
  };
  client->submit({"DEBUG", "SLEEP", "0.3"}, collect);
  client->submit({"GET", "k"}, collect);
  client->submit({"GET", "k"}, collect);  // third: refused inline
  {
    const auto all = results.get();
    REQUIRE(all.size() == 1);
    CHECK(all[0].error_kind() == RedisErrorKind::Overloaded);
  }
  CHECK(client->health().rejected == 1);
  CHECK(client->health().pending == 2);

  const auto start = Clock::now();
  client->close();  // does not wait for the server's 300 ms
  CHECK(Clock::now() - start < 250ms);
  const auto all = results.get();
  REQUIRE(all.size() == 3);
  CHECK(all[1].error_kind() == RedisErrorKind::Disconnected);
  CHECK(all[2].error_kind() == RedisErrorKind::Disconnected);
  CHECK(client->execute({"PING"}).error_message() == "client closed");
  client->close();  // idempotent
  client.reset();
}

TEST_CASE("redis: health reports PING latency and options are validated", "[redis]") {
  RedisServer server;
  Events events;
  RedisClient client(parse_redis_url(server.url()), fast_options(), events.callback());
  const ConnectionEvent up = events.wait(1);
  CHECK(up.connected);
  CHECK_FALSE(up.after_loss);
  CHECK(up.detail == server.url() + "/0");
  const auto health = client.health();
  CHECK(health.connected);
  CHECK(health.latency_ms >= 0);
  CHECK(health.latency_ms < 1000);
  CHECK(health.circuit == "closed");
  CHECK(health.last_error.empty());

  auto bad = [](auto change) {
    RedisOptions options;
    change(options);
    return options;
  };
  const auto url = parse_redis_url(server.url());
  CHECK_THROWS_WITH(RedisClient(url, bad([](auto& o) { o.command_timeout_ms = 0; })),
                    Catch::Contains("command_timeout_ms"));
  CHECK_THROWS_WITH(RedisClient(url, bad([](auto& o) { o.connect_timeout_ms = -5; })),
                    Catch::Contains("connect_timeout_ms"));
  CHECK_THROWS_WITH(RedisClient(url, bad([](auto& o) { o.backoff_max_ms = 1; })),
                    Catch::Contains("backoff_max_ms"));
  CHECK_THROWS_WITH(RedisClient(url, bad([](auto& o) { o.breaker_failures = 0; })),
                    Catch::Contains("breaker_failures"));
  CHECK_THROWS_WITH(RedisClient(url, bad([](auto& o) { o.max_pending = 0; })),
                    Catch::Contains("max_pending"));
  CHECK_THROWS_WITH(RedisClient(url, bad([](auto& o) { o.health_interval_ms = -1; })),
                    Catch::Contains("health_interval_ms"));
  CHECK_THROWS_AS(client.submit({}, [](RedisResult) {}), herdcache::InvalidArgument);
}

// ---------------------------------------------------------------------------------------
// Against a scripted fake server: faults a real server will not produce on demand.

using herdcache::RespParser;
using herdcache::testing::FakeServer;

TEST_CASE("redis: a connection cut in the middle of a pipelined batch", "[redis]") {
  FakeServer fake([](int fd, int connection) {
    RespParser parser;
    if (FakeServer::read_commands(fd, parser, 1).size() != 1) return;  // handshake PING
    FakeServer::write_all(fd, "+PONG\r\n");
    if (connection == 0) {
      // Three GETs in one batch: answer the first, half of the second, then hang up.
      if (FakeServer::read_commands(fd, parser, 3).size() != 3) return;
      FakeServer::write_all(fd, "$5\r\nfirst\r\n$6\r\nsec");
      return;
    }
    for (;;) {  // later connections behave
      const auto commands = FakeServer::read_commands(fd, parser, 1);
      if (commands.empty()) return;
      FakeServer::write_all(fd, "$2\r\nok\r\n");
    }
  });
  Events events;
  RedisOptions options = fast_options();
  options.health_interval_ms = 0;
  RedisClient client(parse_redis_url(fake.url()), options, events.callback());
  REQUIRE(events.wait(1).connected);

  Observed<std::vector<RedisResult>> results;
  auto collect = [&results](RedisResult r) {
    results.update([&](auto& all) { all.push_back(std::move(r)); });
  };
  for (int i = 0; i < 3; ++i) client.submit({"GET", "k" + std::to_string(i)}, collect);
  REQUIRE(results.wait_for([](const auto& all) { return all.size() == 3; }, 5s));
  const auto all = results.get();
  CHECK(all[0].reply() == Reply::bulk("first"));
  CHECK(all[1].error_kind() == RedisErrorKind::Disconnected);  // half a reply is no reply
  CHECK(all[2].error_kind() == RedisErrorKind::Disconnected);
  CHECK_THAT(all[1].error_message(), Catch::Contains("closed by the server"));

  CHECK(events.wait(3).connected);  // lost, then back on the second connection
  CHECK(client.execute({"GET", "k"}).reply() == Reply::bulk("ok"));
}

TEST_CASE("redis: bytes that are not RESP reset the connection with Protocol", "[redis]") {
  const bool unsolicited = GENERATE(false, true);
  FakeServer fake([unsolicited](int fd, int connection) {
    RespParser parser;
    if (FakeServer::read_commands(fd, parser, 1).size() != 1) return;
    FakeServer::write_all(fd, "+PONG\r\n");
    if (connection > 0) {  // afterwards: a good server
      while (!FakeServer::read_commands(fd, parser, 1).empty()) FakeServer::write_all(fd, "+OK\r\n");
      return;
    }
    if (unsolicited) {
      FakeServer::write_all(fd, ":1\r\n");  // a reply nobody asked for
      FakeServer::read_commands(fd, parser, 1);
      return;
    }
    FakeServer::read_commands(fd, parser, 1);
    FakeServer::write_all(fd, "%garbage\r\n");
    FakeServer::read_commands(fd, parser, 1);  // until the client hangs up
  });
  Events events;
  RedisOptions options = fast_options();
  options.health_interval_ms = 0;
  RedisClient client(parse_redis_url(fake.url()), options, events.callback());
  REQUIRE(events.wait(1).connected);

  if (unsolicited) {
    const ConnectionEvent lost = events.wait(2);
    CHECK_FALSE(lost.connected);
    CHECK_THAT(lost.detail, Catch::Contains("no request outstanding"));
  } else {
    const RedisResult r = client.execute({"GET", "k"});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error_kind() == RedisErrorKind::Protocol);
    CHECK_THAT(r.error_message(), Catch::Contains("Protocol error"));
  }
  CHECK(events.wait(3).connected);
  CHECK(client.execute({"SET", "k", "v"}).reply() == Reply::status("OK"));
}
