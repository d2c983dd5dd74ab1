// Circuit breaker transitions and backoff bounds, with a ManualClock: no sleeps.
#include <catch2/catch.hpp>

#include <memory>

#include "herdcache/breaker.hpp"
#include "herdcache/errors.hpp"

using herdcache::Backoff;
using herdcache::BreakerOptions;
using herdcache::CircuitBreaker;
using herdcache::ManualClock;
using State = herdcache::CircuitBreaker::State;

namespace {
constexpr herdcache::Nanos kMs = 1'000'000;
}

TEST_CASE("breaker: opens after N consecutive failures, a success resets the count",
          "[breaker]") {
  auto clock = std::make_shared<ManualClock>();
  CircuitBreaker breaker(BreakerOptions{.failures_to_open = 3, .open_ms = 100}, clock);
  CHECK(breaker.state() == State::Closed);
  CHECK(breaker.allow());

  breaker.record_failure();
  breaker.record_failure();
  breaker.record_success();  // not consecutive any more
  CHECK(breaker.consecutive_failures() == 0);
  breaker.record_failure();
  breaker.record_failure();
  CHECK(breaker.state() == State::Closed);
  CHECK(breaker.allow());
  breaker.record_failure();
  CHECK(breaker.state() == State::Open);
  CHECK(breaker.consecutive_failures() == 3);
  CHECK_FALSE(breaker.allow());
  CHECK(std::string(to_string(breaker.state())) == "open");
}

TEST_CASE("breaker: open fast-fails until open_ms, then exactly one probe", "[breaker]") {
  auto clock = std::make_shared<ManualClock>();
  CircuitBreaker breaker(BreakerOptions{.failures_to_open = 1, .open_ms = 100}, clock);
  breaker.record_failure();
  REQUIRE(breaker.state() == State::Open);
  CHECK(breaker.probe_at_ns() == clock->monotonic_ns() + 100 * kMs);

  clock->advance(99 * kMs);
  CHECK_FALSE(breaker.allow());
  breaker.record_failure();  // open: ignored, does not push the probe back
  clock->advance(1 * kMs);
  CHECK(breaker.allow());  // the probe
  CHECK(breaker.state() == State::HalfOpen);
  CHECK(std::string(to_string(breaker.state())) == "half_open");
  CHECK_FALSE(breaker.allow());  // only one
  CHECK_FALSE(breaker.allow());
}

TEST_CASE("breaker: probe_now lets an open circuit's probe out at once, and nothing else", "[breaker]") {
  auto clock = std::make_shared<ManualClock>();
  CircuitBreaker breaker(BreakerOptions{.failures_to_open = 1, .open_ms = 100}, clock);
  breaker.probe_now();  // closed: nothing to do
  CHECK(breaker.state() == State::Closed);
  breaker.record_failure();
  REQUIRE(breaker.state() == State::Open);
  clock->advance(10 * kMs);
  CHECK_FALSE(breaker.allow());
  breaker.probe_now();  // the server it opened against was replaced
  CHECK(breaker.probe_at_ns() <= clock->monotonic_ns());
  CHECK(breaker.allow());
  CHECK(breaker.state() == State::HalfOpen);
  breaker.probe_now();  // half-open: the probe is out already
  CHECK_FALSE(breaker.allow());
}

TEST_CASE("breaker: probe success closes, probe failure re-opens for open_ms", "[breaker]") {
  auto clock = std::make_shared<ManualClock>();
  CircuitBreaker breaker(BreakerOptions{.failures_to_open = 2, .open_ms = 50}, clock);
  breaker.record_failure();
  breaker.record_failure();
  clock->advance(50 * kMs);
  REQUIRE(breaker.allow());

  SECTION("success") {
    breaker.record_success();
    CHECK(breaker.state() == State::Closed);
    CHECK(breaker.consecutive_failures() == 0);
    CHECK(breaker.allow());
    breaker.record_failure();  // needs N fresh failures again
    CHECK(breaker.state() == State::Closed);
  }
  SECTION("failure") {
    clock->advance(10 * kMs);
    breaker.record_failure();
    CHECK(breaker.state() == State::Open);
    CHECK_FALSE(breaker.allow());
    clock->advance(49 * kMs);
    CHECK_FALSE(breaker.allow());
    clock->advance(1 * kMs);
    CHECK(breaker.allow());
  }
}

TEST_CASE("breaker: options are validated, naming the field", "[breaker]") {
  auto clock = std::make_shared<ManualClock>();
  CHECK_THROWS_WITH(CircuitBreaker(BreakerOptions{.failures_to_open = 0}, clock),
                    Catch::Contains("failures_to_open"));
  CHECK_THROWS_WITH(CircuitBreaker(BreakerOptions{.open_ms = 0}, clock),
                    Catch::Contains("open_ms"));
  CHECK_THROWS_WITH(Backoff(0, 10, 1), Catch::Contains("backoff_initial_ms"));
  CHECK_THROWS_WITH(Backoff(10, 5, 1), Catch::Contains("backoff_max_ms"));
}

TEST_CASE("breaker: backoff ceilings double up to the max, delays stay within them",
          "[breaker]") {
  Backoff backoff(10, 1000, 42);
  CHECK(backoff.ceiling_ns(0) == 10 * kMs);
  CHECK(backoff.ceiling_ns(1) == 20 * kMs);
  CHECK(backoff.ceiling_ns(6) == 640 * kMs);
  CHECK(backoff.ceiling_ns(7) == 1000 * kMs);
  CHECK(backoff.ceiling_ns(1000) == 1000 * kMs);  // no overflow

  for (int round = 0; round < 2; ++round) {
    for (int attempt = 0; attempt < 100; ++attempt) {
      const auto delay = backoff.next_delay_ns();
      CHECK(delay >= 0);
      CHECK(delay <= backoff.ceiling_ns(attempt));
    }
    backoff.reset();
    CHECK(backoff.attempts() == 0);
  }
}

TEST_CASE("breaker: backoff jitter spreads delays over the whole range", "[breaker]") {
  // Full jitter: with the ceiling at its max, delays cover [0, max] rather than clustering.
  Backoff backoff(100, 100, 7);
  herdcache::Nanos low = INT64_MAX, high = 0;
  for (int i = 0; i < 1000; ++i) {
    const auto delay = backoff.next_delay_ns();
    low = std::min(low, delay);
    high = std::max(high, delay);
  }
  CHECK(low < 10 * kMs);
  CHECK(high > 90 * kMs);

  Backoff a(10, 1000, 1), b(10, 1000, 2), a2(10, 1000, 1);
  bool differs = false;
  for (int i = 0; i < 10; ++i) {
    const auto x = a.next_delay_ns();
    differs = differs || x != b.next_delay_ns();
    CHECK(x == a2.next_delay_ns());  // deterministic per seed
  }
  CHECK(differs);
}
