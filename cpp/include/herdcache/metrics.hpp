// Counters and latency histograms. Everything here is lock-free: recording is a few
// relaxed atomic adds, so it can sit on every path. Snapshots are read without stopping
// writers (a snapshot may be off by the few operations in progress).
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>
#include <vector>

#include "herdcache/clock.hpp"

namespace herdcache {

enum class Counter : std::uint8_t {
  Hits,          // any tier
  Misses,        // no tier had a usable value
  StaleServed,   // a stale value returned while a refresh runs
  Loads,         // loader runs started
  LoadErrors,    // loader runs that raised
  Coalesced,     // callers that waited on another caller's load
  Errors,        // tier faults (Redis down, timeouts): counted, never raised on reads
  MemoryHits,
  MemoryMisses,
  RedisHits,
  RedisMisses,
  LeaseWaits,     // loads this process waited for while another process held the lease
  LeaseTimeouts,  // waits that ran out (lock_timeout): this process loaded it itself
  kCount
};

std::string_view counter_name(Counter c) noexcept;  // "hits", "stale_served", ...

class Counters {
 public:
  void add(Counter c, std::uint64_t n = 1) noexcept {
    values_[static_cast<std::size_t>(c)].fetch_add(n, std::memory_order_relaxed);
  }
  std::uint64_t get(Counter c) const noexcept {
    return values_[static_cast<std::size_t>(c)].load(std::memory_order_relaxed);
  }
  void reset() noexcept;

 private:
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(Counter::kCount)> values_{};
};

// Log-linear histogram of durations (HdrHistogram's idea, coarse): 8 sub-buckets per power
// of two from 1 microsecond up, so any recorded value is reported within 1/8 (12.5%) of the
// truth; values above the last bucket land in it.
class Histogram {
 public:
  static constexpr int kSubBuckets = 8;
  static constexpr int kOctaves = 28;  // 1 us .. ~268 s
  static constexpr int kBuckets = kSubBuckets * kOctaves + 1;  // +1: below 1 us

  void record(Nanos value) noexcept;

  struct Snapshot {
    std::uint64_t count = 0;
    double sum_ms = 0;
    double p50_ms = 0, p95_ms = 0, p99_ms = 0, max_ms = 0;
    // Cumulative (upper bound in seconds, count of values <= it), ascending; for Prometheus.
    std::vector<std::pair<double, std::uint64_t>> cumulative;
  };
  Snapshot snapshot() const;
  double percentile_ms(double q) const;  // q in [0, 1]; 0 when empty
  void reset() noexcept;

  static int bucket_of(Nanos value) noexcept;
  static Nanos upper_bound_ns(int bucket) noexcept;

 private:
  std::array<std::atomic<std::uint64_t>, kBuckets> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::int64_t> sum_ns_{0};
  std::atomic<std::int64_t> max_ns_{0};
};

}  // namespace herdcache
