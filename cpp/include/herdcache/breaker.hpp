// A circuit breaker and an exponential backoff: the two policies that decide when the
// Redis client stops trying and when it tries again. Both are pure: time comes from the
// injected Clock (breaker) or is not read at all (backoff), so tests drive them with a
// ManualClock and no sleeps.
//
//            N consecutive failures              open_ms elapsed, allow() -> true once
//   closed ---------------------------> open ---------------------------------> half_open
//     ^                                   ^                                        |
//     |         probe succeeded           |          probe failed                  |
//     +-----------------------------------+----------------------------------------+
//
// Neither class locks: each belongs to one thread (the Redis client's I/O thread).
#pragma once
#include <cstdint>
#include <memory>

#include "herdcache/clock.hpp"

namespace herdcache {

struct BreakerOptions {
  int failures_to_open = 5;      // consecutive failures that open the circuit; >= 1
  std::int64_t open_ms = 1000;   // how long it stays open before one probe; >= 1
  void validate() const;         // InvalidArgument naming the field
};

class CircuitBreaker {
 public:
  enum class State : std::uint8_t { Closed, Open, HalfOpen };

  CircuitBreaker(BreakerOptions options, std::shared_ptr<const Clock> clock);

  // May a request (closed) or the probe (open -> half_open) go out now? While open, false
  // until open_ms have passed since it opened; then it moves to half_open and returns
  // true exactly once. While half_open (the probe is out), false.
  bool allow();
  // Closed: resets the failure count. Half-open: the probe succeeded, closes.
  // Open: ignored (a late answer to something sent before the circuit opened).
  void record_success();
  // Closed: counts; the Nth consecutive failure opens. Half-open: the probe failed,
  // re-opens for another open_ms. Open: ignored (already open; the timer is not pushed).
  void record_failure();

  // Open: the probe may go out now rather than after open_ms (what failed was replaced:
  // Sentinel named a new master). Otherwise nothing.
  void probe_now() noexcept {
    if (state_ == State::Open) opened_at_ = clock_->monotonic_ns() - open_ns_;
  }
  State state() const noexcept { return state_; }
  int consecutive_failures() const noexcept { return failures_; }
  // When allow() will let the probe through (monotonic ns); meaningful while Open.
  Nanos probe_at_ns() const noexcept { return opened_at_ + open_ns_; }

 private:
  void open();

  BreakerOptions options_;
  std::shared_ptr<const Clock> clock_;
  Nanos open_ns_;
  State state_ = State::Closed;
  int failures_ = 0;
  Nanos opened_at_ = 0;
};

// "closed", "open", "half_open": the strings health() and stats() report.
const char* to_string(CircuitBreaker::State state) noexcept;

// Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
// Jitter"): attempt k waits a uniform random time in [0, min(max_ms, initial_ms * 2^k)].
// The jitter keeps a fleet of clients that lost Redis together from reconnecting in
// lockstep. Deterministic for a given seed.
class Backoff {
 public:
  Backoff(std::int64_t initial_ms, std::int64_t max_ms, std::uint64_t seed);

  // The delay before the next attempt; counts the attempt.
  Nanos next_delay_ns();
  // The upper bound of the delay for attempt k (0-based): min(max, initial * 2^k).
  Nanos ceiling_ns(int attempt) const noexcept;
  // After a success: the next delay starts from initial_ms again.
  void reset() noexcept { attempt_ = 0; }
  int attempts() const noexcept { return attempt_; }

 private:
  std::uint64_t next_random() noexcept;  // splitmix64

  Nanos initial_ns_;
  Nanos max_ns_;
  std::uint64_t state_;
  int attempt_ = 0;
};

}  // namespace herdcache
