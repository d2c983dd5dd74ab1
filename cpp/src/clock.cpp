// The system clock, the test clock, and the seconds -> nanoseconds conversion.
#include "herdcache/clock.hpp"

#include <time.h>

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "herdcache/errors.hpp"

namespace herdcache {

Nanos seconds_to_nanos(double seconds) noexcept {
  constexpr Nanos kMax = std::numeric_limits<Nanos>::max();
  constexpr Nanos kMin = std::numeric_limits<Nanos>::min();
  if (std::isnan(seconds)) return 0;
  double ns = seconds * static_cast<double>(kNanosPerSecond);
  // 2^63 is exactly representable; every double below it converts without overflow.
  constexpr double kLimit = 9223372036854775808.0;
  if (ns >= kLimit) return kMax;
  if (ns <= -kLimit) return kMin;
  return static_cast<Nanos>(std::llround(ns));
}

namespace {

Nanos read_clock(clockid_t id) noexcept {
  timespec ts{};
  clock_gettime(id, &ts);  // cannot fail for these clock ids
  return static_cast<Nanos>(ts.tv_sec) * kNanosPerSecond + ts.tv_nsec;
}

}  // namespace

Nanos SystemClock::monotonic_ns() const noexcept { return read_clock(CLOCK_MONOTONIC); }

Nanos SystemClock::wall_ns() const noexcept { return read_clock(CLOCK_REALTIME); }

ManualClock::ManualClock(Nanos monotonic_start, Nanos wall_start)
    : monotonic_(monotonic_start), wall_(wall_start) {}

Nanos ManualClock::monotonic_ns() const noexcept {
  return monotonic_.load(std::memory_order_acquire);
}

Nanos ManualClock::wall_ns() const noexcept { return wall_.load(std::memory_order_acquire); }

void ManualClock::advance(Nanos delta) noexcept {
  // Time never goes back: a negative delta is ignored (advance_seconds is the checked API).
  if (delta <= 0) return;
  monotonic_.fetch_add(delta, std::memory_order_acq_rel);
  wall_.fetch_add(delta, std::memory_order_acq_rel);
}

void ManualClock::advance_seconds(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0)
    throw InvalidArgument(
        fmt::format("advance_seconds needs a finite number >= 0, got {}", seconds));
  advance(seconds_to_nanos(seconds));
}

std::shared_ptr<const Clock> system_clock() {
  static const std::shared_ptr<const Clock> clock = std::make_shared<SystemClock>();
  return clock;
}

}  // namespace herdcache
