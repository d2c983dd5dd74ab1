// Policy validation and entry lifetimes, with time moved by a ManualClock.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "herdcache/clock.hpp"
#include "herdcache/errors.hpp"
#include "herdcache/policy.hpp"

using namespace herdcache;

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::nan("");
constexpr Nanos kSecond = kNanosPerSecond;
}  // namespace

TEST_CASE("policy: defaults and make()") {
  Policy defaults;
  CHECK_NOTHROW(defaults.validate());
  Policy p = Policy::make(60, 10, 0.25, 1.0, false);
  CHECK(p.ttl_s == 60);
  CHECK(p.stale_s == 10);
  CHECK(p.jitter == 0.25);
  CHECK(p.early_refresh == 1.0);
  CHECK_FALSE(p.memory);
  CHECK(Policy::make(300) == Policy{});
  CHECK_NOTHROW(Policy::make(0, 0, 0, 0));
  CHECK_NOTHROW(Policy::make(1, 0, 1));
}

TEST_CASE("policy: every field is validated and named in the error") {
  CHECK_THROWS_WITH(Policy::make(-1), "ttl must be a finite number >= 0, got -1");
  for (double bad : {-1.0, kNaN, kInf, -kInf}) {
    INFO(bad);
    CHECK_THROWS_AS(Policy::make(bad), InvalidArgument);
    CHECK_THROWS_WITH(Policy::make(bad), Catch::StartsWith("ttl must be"));
    CHECK_THROWS_WITH(Policy::make(1, bad), Catch::StartsWith("stale must be"));
    CHECK_THROWS_WITH(Policy::make(1, 0, bad), Catch::StartsWith("jitter must be"));
    CHECK_THROWS_WITH(Policy::make(1, 0, 0, bad), Catch::StartsWith("early_refresh must be"));
  }
  CHECK_THROWS_WITH(Policy::make(1, 0, 1.5), "jitter must be a finite number in [0, 1], got 1.5");
  Policy edited;
  edited.stale_s = kNaN;
  CHECK_THROWS_WITH(edited.validate(), "stale must be a finite number >= 0, got nan");
}

TEST_CASE("policy: lifetimes without jitter") {
  Policy p = Policy::make(10, 5, 0);
  Lifetime life = lifetime_for(p, 1000, -1, 0.7);
  CHECK(life.fresh_until == 1000 + 10 * kSecond);
  CHECK(life.stale_until == 1000 + 15 * kSecond);
  CHECK(p.fresh_ns(0.99) == 10 * kSecond);
  CHECK(p.stale_ns() == 5 * kSecond);
}

TEST_CASE("policy: jitter shortens the fresh lifetime by jitter * u") {
  Policy p = Policy::make(10, 5, 0.2);
  CHECK(p.fresh_ns(0) == 10 * kSecond);
  CHECK(p.fresh_ns(0.5) == 9 * kSecond);
  CHECK(p.fresh_ns(1) == 8 * kSecond);
  CHECK(p.fresh_ns(kNaN) == 10 * kSecond);  // out-of-range u is clamped
  CHECK(p.fresh_ns(7) == 8 * kSecond);
  Lifetime life = lifetime_for(p, 0, -1, 0.5);
  CHECK(life.fresh_until == 9 * kSecond);
  CHECK(life.stale_until == 14 * kSecond);  // stale time is not jittered
}

TEST_CASE("policy: an explicit ttl is exact and validated") {
  Policy p = Policy::make(10, 5, 0.5);
  Lifetime life = lifetime_for(p, 100, 3, 0.9);
  CHECK(life.fresh_until == 100 + 3 * kSecond);
  CHECK(life.stale_until == 100 + 8 * kSecond);
  Lifetime zero = lifetime_for(p, 100, 0, 0.9);
  CHECK(zero.fresh_until == 100);
  CHECK(freshness(zero, 100) == Freshness::Stale);
  for (double bad : {kNaN, kInf, -kInf}) {
    INFO(bad);
    CHECK_THROWS_AS(lifetime_for(p, 0, bad, 0), InvalidArgument);
    CHECK_THROWS_WITH(lifetime_for(p, 0, bad, 0), Catch::StartsWith("ttl must be"));
  }
}

TEST_CASE("policy: huge ttls saturate instead of overflowing") {
  Policy p = Policy::make(1e30, 1e30, 0);
  Lifetime life = lifetime_for(p, 5 * kSecond, -1, 0);
  CHECK(life.fresh_until == std::numeric_limits<Nanos>::max());
  CHECK(life.stale_until == std::numeric_limits<Nanos>::max());
  CHECK(freshness(life, std::numeric_limits<Nanos>::max() - 1) == Freshness::Fresh);
}

TEST_CASE("policy: an entry goes fresh -> stale -> expired as the clock moves") {
  ManualClock clock;
  Lifetime life = lifetime_for(Policy::make(10, 5, 0), clock.monotonic_ns(), -1, 0);
  CHECK(freshness(life, clock.monotonic_ns()) == Freshness::Fresh);
  clock.advance_seconds(9.999);
  CHECK(freshness(life, clock.monotonic_ns()) == Freshness::Fresh);
  clock.advance_seconds(0.001);
  CHECK(freshness(life, clock.monotonic_ns()) == Freshness::Stale);
  clock.advance_seconds(4.999);
  CHECK(freshness(life, clock.monotonic_ns()) == Freshness::Stale);
  clock.advance_seconds(0.001);
  CHECK(freshness(life, clock.monotonic_ns()) == Freshness::Expired);
}

TEST_CASE("policy: compress_min_bytes is a byte count, or never") {
  CHECK(Policy{}.compress_min_bytes == Policy::kNeverCompress);
  CHECK(Policy::make(1, 0, 0, 0, true, 0).compress_min_bytes == 0);
  CHECK(Policy::make(1, 0, 0, 0, true, 4096).compress_min_bytes == 4096);
  CHECK(Policy::make(1, 0, 0, 0, true, 4096) != Policy::make(1, 0, 0, 0, true));
  CHECK_THROWS_WITH(Policy::make(1, 0, 0, 0, true, -2), "compress_min_bytes must be an integer >= 0 or None, got -2");
}
