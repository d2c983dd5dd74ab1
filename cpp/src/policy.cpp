// Policy validation and the lifetime of one write.
#include "herdcache/policy.hpp"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "herdcache/errors.hpp"

namespace herdcache {
namespace {

// Field names are the ones users write (Python's Policy(ttl=..., stale=...)).
void require_non_negative(std::string_view field, double value) {
  if (!std::isfinite(value) || value < 0)
    throw InvalidArgument(fmt::format("{} must be a finite number >= 0, got {}", field, value));
}

Nanos saturating_add(Nanos a, Nanos b) noexcept {
  Nanos sum;
  if (__builtin_add_overflow(a, b, &sum))
    return b > 0 ? std::numeric_limits<Nanos>::max() : std::numeric_limits<Nanos>::min();
  return sum;
}

}  // namespace

Policy Policy::make(double ttl_s, double stale_s, double jitter, double early_refresh,
                    bool memory, std::int64_t compress_min_bytes) {
  Policy policy{ttl_s, stale_s, jitter, early_refresh, memory, compress_min_bytes};
  policy.validate();
  return policy;
}

void Policy::validate() const {
  require_non_negative("ttl", ttl_s);
  require_non_negative("stale", stale_s);
  if (!std::isfinite(jitter) || jitter < 0 || jitter > 1)
    throw InvalidArgument(fmt::format("jitter must be a finite number in [0, 1], got {}", jitter));
  require_non_negative("early_refresh", early_refresh);
  if (compress_min_bytes < kNeverCompress) {
    throw InvalidArgument(
        fmt::format("compress_min_bytes must be an integer >= 0 or None, got {}", compress_min_bytes));
  }
}

Nanos Policy::fresh_ns(double u) const noexcept {
  if (!(u >= 0)) u = 0;  // also NaN
  if (u > 1) u = 1;
  return seconds_to_nanos(ttl_s * (1.0 - jitter * u));
}

Nanos Policy::stale_ns() const noexcept { return seconds_to_nanos(stale_s); }

Lifetime lifetime_for(const Policy& policy, Nanos now, double ttl_override_s, double u) {
  // < 0 means "no override"; NaN and infinities are mistakes, not "none".
  if (!std::isfinite(ttl_override_s))
    throw InvalidArgument(fmt::format("ttl must be a finite number >= 0, got {}", ttl_override_s));
  // An explicit ttl is exact: jitter only spreads the policy's own expiries.
  Nanos fresh = ttl_override_s >= 0 ? seconds_to_nanos(ttl_override_s) : policy.fresh_ns(u);
  Lifetime life;
  life.fresh_until = saturating_add(now, fresh);
  life.stale_until = saturating_add(life.fresh_until, policy.stale_ns());
  return life;
}

}  // namespace herdcache
