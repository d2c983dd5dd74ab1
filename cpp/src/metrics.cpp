// Counters and the log-linear latency histogram.
//
// Bucket layout: bucket 0 holds values below 1 us. Octave o (0 <= o < kOctaves) covers
// [1 us * 2^o, 1 us * 2^(o+1)) and is split into kSubBuckets equal-width buckets, numbered
// 1 + o * kSubBuckets + sub. Values at or above the top (~268 s) land in the last bucket.
#include "herdcache/metrics.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace herdcache {
namespace {

constexpr Nanos kBaseNs = 1000;  // 1 us: the lower edge of octave 0

using BucketCounts = std::array<std::uint64_t, Histogram::kBuckets>;

using AtomicCounts = std::array<std::atomic<std::uint64_t>, Histogram::kBuckets>;

// Reads every bucket once; returns their sum.
std::uint64_t load_counts(const AtomicCounts& buckets, BucketCounts& counts) noexcept {
  std::uint64_t total = 0;
  for (int b = 0; b < Histogram::kBuckets; ++b) {
    counts[b] = buckets[b].load(std::memory_order_relaxed);
    total += counts[b];
  }
  return total;
}

// The upper bound of the bucket where the cumulative count reaches ceil(q * total), capped
// at the largest value seen (a bucket's bound can exceed every value in it). In ms.
double percentile_of(const BucketCounts& counts, std::uint64_t total, Nanos max_ns, double q) {
  if (total == 0) return 0;
  if (!(q >= 0)) q = 0;  // also NaN
  q = std::min(q, 1.0);
  auto target = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
  target = std::clamp<std::uint64_t>(target, 1, total);
  std::uint64_t seen = 0;
  for (int b = 0; b < Histogram::kBuckets; ++b) {
    seen += counts[b];
    if (seen >= target) {
      // The last bucket also holds everything beyond its bound: only the max is honest there.
      Nanos bound = b == Histogram::kBuckets - 1 ? max_ns : Histogram::upper_bound_ns(b);
      return static_cast<double>(std::min(bound, max_ns)) / kNanosPerMs;
    }
  }
  return static_cast<double>(max_ns) / kNanosPerMs;  // unreachable when total is the bucket sum
}

}  // namespace

std::string_view counter_name(Counter c) noexcept {
  switch (c) {
    case Counter::Hits: return "hits";
    case Counter::Misses: return "misses";
    case Counter::StaleServed: return "stale_served";
    case Counter::Loads: return "loads";
    case Counter::LoadErrors: return "load_errors";
    case Counter::Coalesced: return "coalesced";
    case Counter::Errors: return "errors";
    case Counter::MemoryHits: return "memory_hits";
    case Counter::MemoryMisses: return "memory_misses";
    case Counter::RedisHits: return "redis_hits";
    case Counter::RedisMisses: return "redis_misses";
    case Counter::LeaseWaits: return "lease_waits";
    case Counter::LeaseTimeouts: return "lease_timeouts";
    case Counter::kCount: break;
  }
  return "unknown";
}

void Counters::reset() noexcept {
  for (auto& value : values_) value.store(0, std::memory_order_relaxed);
}

int Histogram::bucket_of(Nanos value) noexcept {
  if (value < kBaseNs) return 0;
  // Octave o is the one with 2^o <= value / 1 us < 2^(o+1) (integer division is exact here
  // because 2^o is an integer).
  auto micros = static_cast<std::uint64_t>(value / kBaseNs);
  int octave = std::bit_width(micros) - 1;
  if (octave >= kOctaves) return kBuckets - 1;
  Nanos base = kBaseNs << octave;
  auto sub = static_cast<int>((value - base) * kSubBuckets / base);
  return 1 + octave * kSubBuckets + sub;
}

Nanos Histogram::upper_bound_ns(int bucket) noexcept {
  if (bucket <= 0) return kBaseNs;
  bucket = std::min(bucket, kBuckets - 1);
  int octave = (bucket - 1) / kSubBuckets;
  int sub = (bucket - 1) % kSubBuckets;
  Nanos base = kBaseNs << octave;
  return base + base * (sub + 1) / kSubBuckets;
}

void Histogram::record(Nanos value) noexcept {
  value = std::max<Nanos>(value, 0);
  buckets_[bucket_of(value)].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(value, std::memory_order_relaxed);
  Nanos seen = max_ns_.load(std::memory_order_relaxed);
  while (value > seen &&
         !max_ns_.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

Histogram::Snapshot Histogram::snapshot() const {
  // Read each bucket once, and derive the count from them, so the count, the percentiles
  // and the cumulative series agree with each other even while writers run.
  BucketCounts counts{};
  std::uint64_t total = load_counts(buckets_, counts);
  Nanos max_ns = max_ns_.load(std::memory_order_relaxed);

  Snapshot snap;
  snap.count = total;
  snap.sum_ms = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / kNanosPerMs;
  snap.max_ms = static_cast<double>(max_ns) / kNanosPerMs;
  snap.p50_ms = percentile_of(counts, total, max_ns, 0.50);
  snap.p95_ms = percentile_of(counts, total, max_ns, 0.95);
  snap.p99_ms = percentile_of(counts, total, max_ns, 0.99);
  // Every bucket, so the Prometheus series has the same `le` labels from scrape to scrape.
  // The last bound is nominal (~268 s) although that bucket also holds larger values; the
  // exporter's +Inf bucket is `count`.
  snap.cumulative.reserve(kBuckets);
  std::uint64_t running = 0;
  for (int b = 0; b < kBuckets; ++b) {
    running += counts[b];
    snap.cumulative.emplace_back(static_cast<double>(upper_bound_ns(b)) / 1e9, running);
  }
  return snap;
}

double Histogram::percentile_ms(double q) const {
  if (count_.load(std::memory_order_relaxed) == 0) return 0;
  BucketCounts counts{};
  std::uint64_t total = load_counts(buckets_, counts);
  return percentile_of(counts, total, max_ns_.load(std::memory_order_relaxed), q);
}

void Histogram::reset() noexcept {
  for (auto& bucket : buckets_) bucket.store(0, std::memory_order_relaxed);
  count_.store(0, std::memory_order_relaxed);
  sum_ns_.store(0, std::memory_order_relaxed);
  max_ns_.store(0, std::memory_order_relaxed);
}

}  // namespace herdcache
