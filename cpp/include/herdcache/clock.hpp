// Time, injected. Nothing in the engine reads time except through a Clock, so every
// TTL / stale / expiry rule is tested by moving a ManualClock instead of sleeping.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>

namespace herdcache {

using Nanos = std::int64_t;

inline constexpr Nanos kNanosPerSecond = 1'000'000'000;
inline constexpr Nanos kNanosPerMs = 1'000'000;

// Converts seconds (as given by users) to nanoseconds, saturating instead of overflowing.
Nanos seconds_to_nanos(double seconds) noexcept;

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time: never goes back. Used for every in-process deadline.
  virtual Nanos monotonic_ns() const noexcept = 0;
  // Wall time since the Unix epoch: only for values shared between processes (Redis).
  virtual Nanos wall_ns() const noexcept = 0;
};

class SystemClock final : public Clock {
 public:
  Nanos monotonic_ns() const noexcept override;
  Nanos wall_ns() const noexcept override;
};

// A clock that moves only when told. Both readings advance together.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Nanos monotonic_start = kNanosPerSecond,
                       Nanos wall_start = Nanos{1'700'000'000} * kNanosPerSecond);
  Nanos monotonic_ns() const noexcept override;
  Nanos wall_ns() const noexcept override;
  void advance(Nanos delta) noexcept;  // delta >= 0
  void advance_seconds(double seconds);  // InvalidArgument when negative or not finite

 private:
  std::atomic<Nanos> monotonic_;
  std::atomic<Nanos> wall_;
};

std::shared_ptr<const Clock> system_clock();

}  // namespace herdcache
