// Counters and the latency histogram: bucket layout, percentiles on known distributions,
// the Prometheus series, and recording from several threads.
#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "herdcache/metrics.hpp"

using namespace herdcache;

namespace {
constexpr Nanos kMs = 1'000'000;
}  // namespace

TEST_CASE("metrics: counter names are snake_case") {
  CHECK(counter_name(Counter::Hits) == "hits");
  CHECK(counter_name(Counter::Misses) == "misses");
  CHECK(counter_name(Counter::StaleServed) == "stale_served");
  CHECK(counter_name(Counter::Loads) == "loads");
  CHECK(counter_name(Counter::LoadErrors) == "load_errors");
  CHECK(counter_name(Counter::Coalesced) == "coalesced");
  CHECK(counter_name(Counter::Errors) == "errors");
  CHECK(counter_name(Counter::MemoryHits) == "memory_hits");
  CHECK(counter_name(Counter::MemoryMisses) == "memory_misses");
  CHECK(counter_name(Counter::RedisHits) == "redis_hits");
  CHECK(counter_name(Counter::RedisMisses) == "redis_misses");
}

TEST_CASE("metrics: counters add and reset") {
  Counters counters;
  counters.add(Counter::Hits);
  counters.add(Counter::Hits, 4);
  counters.add(Counter::RedisMisses);
  CHECK(counters.get(Counter::Hits) == 5);
  CHECK(counters.get(Counter::RedisMisses) == 1);
  CHECK(counters.get(Counter::Misses) == 0);
  counters.reset();
  CHECK(counters.get(Counter::Hits) == 0);
}

TEST_CASE("metrics: histogram buckets are 1/8 of an octave from 1 us") {
  CHECK(Histogram::bucket_of(-5) == 0);
  CHECK(Histogram::bucket_of(0) == 0);
  CHECK(Histogram::bucket_of(999) == 0);
  CHECK(Histogram::bucket_of(1000) == 1);
  CHECK(Histogram::bucket_of(1124) == 1);
  CHECK(Histogram::bucket_of(1125) == 2);
  CHECK(Histogram::bucket_of(1999) == 8);
  CHECK(Histogram::bucket_of(2000) == 9);
  CHECK(Histogram::bucket_of(std::numeric_limits<Nanos>::max()) == Histogram::kBuckets - 1);
  CHECK(Histogram::upper_bound_ns(0) == 1000);
  CHECK(Histogram::upper_bound_ns(1) == 1125);
  CHECK(Histogram::upper_bound_ns(8) == 2000);
  CHECK(Histogram::upper_bound_ns(Histogram::kBuckets - 1) == (Nanos{1000} << 28));
  for (int b = 1; b < Histogram::kBuckets; ++b) {
    INFO(b);
    Nanos lower = Histogram::upper_bound_ns(b - 1);
    Nanos upper = Histogram::upper_bound_ns(b);
    REQUIRE(Histogram::bucket_of(lower) == b);
    REQUIRE(Histogram::bucket_of(upper - 1) == b);
    REQUIRE((upper - lower) * 8 <= lower);  // a bucket is at most 1/8 of its lower edge
  }
}

TEST_CASE("metrics: an empty histogram reports zeros") {
  Histogram h;
  CHECK(h.percentile_ms(0.5) == 0);
  Histogram::Snapshot snap = h.snapshot();
  CHECK(snap.count == 0);
  CHECK(snap.p99_ms == 0);
  CHECK(snap.cumulative.size() == Histogram::kBuckets);
  CHECK(snap.cumulative.back().second == 0);
}

TEST_CASE("metrics: percentiles of 1..1000 ms are within 12.5%") {
  Histogram h;
  for (Nanos ms = 1; ms <= 1000; ++ms) h.record(ms * kMs);
  Histogram::Snapshot snap = h.snapshot();
  CHECK(snap.count == 1000);
  CHECK(snap.sum_ms == Approx(500500));
  CHECK(snap.max_ms == 1000);
  // Bucket upper bounds: never below the true value, at most 1/8 above it.
  CHECK(snap.p50_ms >= 500);
  CHECK(snap.p50_ms <= 500 * 1.125);
  CHECK(snap.p95_ms >= 950);
  CHECK(snap.p95_ms <= 950 * 1.125);
  CHECK(snap.p99_ms >= 990);
  CHECK(snap.p99_ms <= 1000);  // capped at the max
  CHECK(h.percentile_ms(0.5) == snap.p50_ms);
  CHECK(h.percentile_ms(1.0) == 1000);
  CHECK(h.percentile_ms(0) <= 1.125);
}

TEST_CASE("metrics: percentiles never exceed the largest value") {
  Histogram h;
  h.record(3 * kMs);
  CHECK(h.percentile_ms(0.5) == 3);
  h.record(500);  // 0.5 us, below the first bucket
  CHECK(h.percentile_ms(0.5) == Approx(0.001));  // bucket 0's bound: 1 us
  Histogram slow;
  slow.record(Nanos{1000} * kNanosPerSecond);  // beyond the last bucket
  CHECK(slow.percentile_ms(0.99) == Approx(1e6));  // the overflow bucket reports the max
}

TEST_CASE("metrics: skewed distribution: 99 fast, 1 slow") {
  Histogram h;
  for (int i = 0; i < 99; ++i) h.record(2 * kMs);
  h.record(800 * kMs);
  Histogram::Snapshot snap = h.snapshot();
  CHECK(snap.p50_ms >= 2);
  CHECK(snap.p50_ms <= 2 * 1.125);
  CHECK(snap.p99_ms <= 2 * 1.125);  // the 99th value is still fast
  CHECK(h.percentile_ms(1.0) == 800);
}

TEST_CASE("metrics: the cumulative series covers every bucket, ascending") {
  Histogram h;
  h.record(500);           // bucket 0
  h.record(1500);          // bucket 5
  h.record(3 * kMs);
  h.record(Nanos{1000} * kNanosPerSecond);  // overflow: the last bucket
  Histogram::Snapshot snap = h.snapshot();
  REQUIRE(snap.cumulative.size() == Histogram::kBuckets);
  CHECK(snap.cumulative.front() == std::pair<double, std::uint64_t>{1e-6, 1});
  for (std::size_t i = 1; i < snap.cumulative.size(); ++i) {
    REQUIRE(snap.cumulative[i].first > snap.cumulative[i - 1].first);
    REQUIRE(snap.cumulative[i].second >= snap.cumulative[i - 1].second);
  }
  CHECK(snap.cumulative[5].second == 2);
  CHECK(snap.cumulative.back().second == snap.count);
  CHECK(snap.cumulative.back().first == Approx(268.435456));
}

TEST_CASE("metrics: reset empties the histogram") {
  Histogram h;
  h.record(5 * kMs);
  h.reset();
  Histogram::Snapshot snap = h.snapshot();
  CHECK(snap.count == 0);
  CHECK(snap.max_ms == 0);
  CHECK(snap.sum_ms == 0);
}

TEST_CASE("metrics: two threads recording lose nothing") {
  Histogram h;
  Counters counters;
  constexpr int kPerThread = 100'000;
  auto work = [&](Nanos value) {
    for (int i = 0; i < kPerThread; ++i) {
      h.record(value + i);
      counters.add(Counter::Hits);
    }
  };
  std::thread a(work, 10 * kMs);
  std::thread b(work, 20 * kMs);
  a.join();
  b.join();
  Histogram::Snapshot snap = h.snapshot();
  CHECK(snap.count == 2 * kPerThread);
  CHECK(counters.get(Counter::Hits) == 2 * kPerThread);
  CHECK(snap.max_ms == Approx((20 * kMs + kPerThread - 1) / 1e6));
  CHECK(snap.p50_ms >= 10);
  CHECK(snap.p50_ms <= 10.1 * 1.125);
  CHECK(snap.p99_ms >= 20);
}
