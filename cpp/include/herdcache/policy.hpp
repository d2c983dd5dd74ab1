// Per-resource freshness policy and the table that maps resource names to policies.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "herdcache/clock.hpp"

namespace herdcache {

// All durations are in seconds, as users write them. Validated at construction:
// a negative, NaN or infinite field throws InvalidArgument naming the field.
struct Policy {
  double ttl_s = 300.0;        // fresh lifetime
  double stale_s = 0.0;        // after ttl: served stale while one refresh runs
  double jitter = 0.1;         // fraction in [0, 1]: fresh lifetime shortened by up to this much
  double early_refresh = 0.0;  // XFetch beta (0 = off)
  bool memory = true;          // false keeps the resource out of the memory tier
  // Payloads of at least this many bytes are stored in Redis zstd-compressed
  // (compression.hpp); kNeverCompress (Python's None): none are.
  std::int64_t compress_min_bytes = kNeverCompress;
  static constexpr std::int64_t kNeverCompress = -1;

  static Policy make(double ttl_s, double stale_s = 0.0, double jitter = 0.1,
                     double early_refresh = 0.0, bool memory = true,
                     std::int64_t compress_min_bytes = kNeverCompress);
  void validate() const;  // throws InvalidArgument

  // Fresh lifetime for one write: ttl shortened by jitter * u, u in [0, 1) drawn by the caller.
  Nanos fresh_ns(double u) const noexcept;
  Nanos stale_ns() const noexcept;
  bool operator==(const Policy&) const = default;
};

// Absolute deadlines of one entry, in the clock's monotonic time.
struct Lifetime {
  Nanos fresh_until = 0;
  Nanos stale_until = 0;  // >= fresh_until; the entry is expired at and after this
};

enum class Freshness : std::uint8_t { Fresh, Stale, Expired };

inline Freshness freshness(const Lifetime& life, Nanos now) noexcept {
  if (now < life.fresh_until) return Freshness::Fresh;
  if (now < life.stale_until) return Freshness::Stale;
  return Freshness::Expired;
}

// A lifetime from a policy (or an explicit ttl override in seconds, < 0 = none), starting now.
Lifetime lifetime_for(const Policy& policy, Nanos now, double ttl_override_s, double u);

}  // namespace herdcache
