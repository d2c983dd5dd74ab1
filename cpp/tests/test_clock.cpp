// Clocks: one contract run against every implementation, then each one's own behaviour.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <memory>

#include "herdcache/clock.hpp"
#include "herdcache/errors.hpp"

using namespace herdcache;

namespace {

constexpr Nanos k2023 = Nanos{1'672'531'200} * kNanosPerSecond;  // 2023-01-01 UTC

// What every Clock promises: monotonic time never goes back; wall time is Unix time.
void check_clock_contract(const Clock& clock) {
  Nanos previous = clock.monotonic_ns();
  for (int i = 0; i < 1000; ++i) {
    Nanos now = clock.monotonic_ns();
    REQUIRE(now >= previous);
    previous = now;
  }
  CHECK(clock.wall_ns() > k2023);
}

}  // namespace

TEST_CASE("clock: every clock keeps the contract") {
  SECTION("SystemClock") { check_clock_contract(SystemClock{}); }
  SECTION("ManualClock") { check_clock_contract(ManualClock{}); }
  SECTION("system_clock()") { check_clock_contract(*system_clock()); }
}

TEST_CASE("clock: system_clock() is one shared instance") {
  CHECK(system_clock() == system_clock());
  CHECK(system_clock()->monotonic_ns() > 0);
}

TEST_CASE("clock: ManualClock moves only when told, both readings together") {
  ManualClock clock(100, 5000);
  CHECK(clock.monotonic_ns() == 100);
  CHECK(clock.wall_ns() == 5000);
  clock.advance(50);
  CHECK(clock.monotonic_ns() == 150);
  CHECK(clock.wall_ns() == 5050);
  clock.advance_seconds(1.5);
  CHECK(clock.monotonic_ns() == 150 + 1'500'000'000);
  CHECK(clock.wall_ns() == 5050 + 1'500'000'000);
  clock.advance(-10);  // ignored: time never goes back
  CHECK(clock.monotonic_ns() == 150 + 1'500'000'000);
  clock.advance_seconds(0);
  CHECK(clock.monotonic_ns() == 150 + 1'500'000'000);
}

TEST_CASE("clock: advance_seconds refuses negative and non-finite values") {
  ManualClock clock;
  Nanos before = clock.monotonic_ns();
  for (double bad : {-1.0, std::nan(""), std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity()}) {
    INFO(bad);
    CHECK_THROWS_AS(clock.advance_seconds(bad), InvalidArgument);
  }
  CHECK(clock.monotonic_ns() == before);
}

TEST_CASE("clock: seconds_to_nanos rounds and saturates") {
  constexpr Nanos kMax = std::numeric_limits<Nanos>::max();
  constexpr Nanos kMin = std::numeric_limits<Nanos>::min();
  CHECK(seconds_to_nanos(1.5) == 1'500'000'000);
  CHECK(seconds_to_nanos(0.1) == 100'000'000);
  CHECK(seconds_to_nanos(1e-9) == 1);
  CHECK(seconds_to_nanos(-2) == -2'000'000'000);
  CHECK(seconds_to_nanos(0) == 0);
  CHECK(seconds_to_nanos(std::numeric_limits<double>::infinity()) == kMax);
  CHECK(seconds_to_nanos(1e300) == kMax);
  CHECK(seconds_to_nanos(9.3e9) == kMax);  // just past 2^63 ns
  CHECK(seconds_to_nanos(-std::numeric_limits<double>::infinity()) == kMin);
  CHECK(seconds_to_nanos(std::nan("")) == 0);
}
