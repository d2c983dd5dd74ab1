// PgListener's pure pieces (options, DSN and channel validation, LISTEN quoting, poll
// timeouts) and its behaviour against an address where nothing listens: no server needed.
// The real-server behaviour (notifications, gaps after a kill) is tested from Python in
// tests/test_postgres.py.
#include <catch2/catch.hpp>

#include <memory>

#include "herdcache/completions.hpp"
#include "herdcache/errors.hpp"
#include "herdcache/pg_listener.hpp"

using herdcache::ConnectionEvent;
using herdcache::InvalidArgument;
using herdcache::Nanos;
using herdcache::PgListener;
using herdcache::PgListenerOptions;

namespace {
constexpr Nanos kMs = 1'000'000;
}

TEST_CASE("pg options: defaults are valid, each bad field is named", "[pg]") {
  PgListenerOptions ok;
  REQUIRE_NOTHROW(ok.validate());

  auto fails_on = [](PgListenerOptions o, const char* field) {
    try {
      o.validate();
      FAIL("no error for " << field);
    } catch (const InvalidArgument& e) {
      REQUIRE(std::string(e.what()).find(field) != std::string::npos);
    }
  };
  PgListenerOptions o;
  o.connect_timeout_ms = 0;
  fails_on(o, "connect_timeout_ms");
  o = {};
  o.health_interval_ms = -1;
  fails_on(o, "health_interval_ms");
  o = {};
  o.health_timeout_ms = 0;
  fails_on(o, "health_timeout_ms");
  o = {};
  o.backoff_initial_ms = 0;
  fails_on(o, "backoff_initial_ms");
  o = {};
  o.backoff_initial_ms = 100;
  o.backoff_max_ms = 99;
  fails_on(o, "backoff_max_ms");
}

TEST_CASE("pg conninfo: key/value strings and URIs parse, broken ones are InvalidArgument", "[pg]") {
  REQUIRE_NOTHROW(herdcache::validate_conninfo("host=127.0.0.1 port=5432 dbname=app"));
  REQUIRE_NOTHROW(herdcache::validate_conninfo("postgresql://u@127.0.0.1:5432/app?connect_timeout=2"));
  REQUIRE_NOTHROW(herdcache::validate_conninfo(""));  // all defaults: libpq accepts it
  REQUIRE_THROWS_AS(herdcache::validate_conninfo("host=x port"), InvalidArgument);
  REQUIRE_THROWS_AS(herdcache::validate_conninfo("nosuchoption=1"), InvalidArgument);
  REQUIRE_THROWS_AS(herdcache::validate_conninfo("postgresql://[::1"), InvalidArgument);
}

TEST_CASE("pg channel: 1..63 bytes, quoted as an identifier in LISTEN", "[pg]") {
  REQUIRE_NOTHROW(herdcache::validate_channel("herdcache_app"));
  REQUIRE_THROWS_AS(herdcache::validate_channel(""), InvalidArgument);
  REQUIRE_THROWS_AS(herdcache::validate_channel(std::string(64, 'a')), InvalidArgument);
  REQUIRE_THROWS_AS(herdcache::validate_channel(std::string("a\0b", 3)), InvalidArgument);
  REQUIRE(herdcache::listen_command("herdcache_app") == "LISTEN \"herdcache_app\"");
  REQUIRE(herdcache::listen_command("Mixed\"Case") == "LISTEN \"Mixed\"\"Case\"");
}

TEST_CASE("pg listener: bad arguments are refused before any thread starts", "[pg]") {
  auto noop = [](const std::string&, const std::string&) {};
  REQUIRE_THROWS_AS(PgListener("host=x port", {"c"}, {}, noop), InvalidArgument);
  REQUIRE_THROWS_AS(PgListener("host=127.0.0.1", {}, {}, noop), InvalidArgument);
  REQUIRE_THROWS_AS(PgListener("host=127.0.0.1", {""}, {}, noop), InvalidArgument);
  REQUIRE_THROWS_AS(PgListener("host=127.0.0.1", {"c"}, {}, {}), InvalidArgument);
  PgListenerOptions bad;
  bad.connect_timeout_ms = 0;
  REQUIRE_THROWS_AS(PgListener("host=127.0.0.1", {"c"}, bad, noop), InvalidArgument);
}

TEST_CASE("pg listener: an unreachable server is reported down, retried, and close() is prompt",
          "[pg]") {
  auto lost = std::make_shared<herdcache::OneShot<ConnectionEvent>>();
  PgListenerOptions options;
  options.connect_timeout_ms = 500;
  options.backoff_initial_ms = 10;
  options.backoff_max_ms = 20;
  // Port 1 on loopback: refused at once (nothing listens there).
  PgListener listener(
      "postgresql://postgres@127.0.0.1:1/none", {"herdcache_test"}, options,
      [](const std::string&, const std::string&) {},
      [lost](const ConnectionEvent& e) { lost->set(e); });
  auto event = lost->wait_for(5000 * kMs);
  REQUIRE(event.has_value());
  REQUIRE_FALSE(event->connected);
  REQUIRE(event->detail.find("PostgreSQL") != std::string::npos);
  REQUIRE_FALSE(listener.connected());
  listener.close();
  listener.close();  // idempotent
}
