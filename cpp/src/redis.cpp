// The small value types of redis.hpp: options validation, results, errors.
#include "herdcache/redis.hpp"

#include <fmt/format.h>

namespace herdcache {

namespace {

// Milliseconds are later multiplied into nanoseconds: keep them far from overflow.
constexpr std::int64_t kMaxMs = std::int64_t{1} << 40;  // ~35 years

void require_ms(const char* field, std::int64_t value, std::int64_t min) {
  if (value < min || value > kMaxMs) {
    throw InvalidArgument(fmt::format("RedisOptions.{} must be in [{}, {}] ms, got {}", field,
                                      min, kMaxMs, value));
  }
}

}  // namespace

void RedisOptions::validate() const {
  require_ms("connect_timeout_ms", connect_timeout_ms, 1);
  require_ms("command_timeout_ms", command_timeout_ms, 1);
  require_ms("backoff_initial_ms", backoff_initial_ms, 1);
  require_ms("backoff_max_ms", backoff_max_ms, 1);
  if (backoff_max_ms < backoff_initial_ms) {
    throw InvalidArgument(fmt::format(
        "RedisOptions.backoff_max_ms ({}) must be >= backoff_initial_ms ({})", backoff_max_ms,
        backoff_initial_ms));
  }
  if (breaker_failures < 1) {
    throw InvalidArgument(
        fmt::format("RedisOptions.breaker_failures must be >= 1, got {}", breaker_failures));
  }
  require_ms("breaker_open_ms", breaker_open_ms, 1);
  if (max_pending < 1) throw InvalidArgument("RedisOptions.max_pending must be >= 1, got 0");
  require_ms("health_interval_ms", health_interval_ms, 0);
}

const char* to_string(RedisErrorKind kind) noexcept {
  switch (kind) {
    case RedisErrorKind::Timeout: return "Timeout";
    case RedisErrorKind::Disconnected: return "Disconnected";
    case RedisErrorKind::CircuitOpen: return "CircuitOpen";
    case RedisErrorKind::Overloaded: return "Overloaded";
    case RedisErrorKind::Protocol: return "Protocol";
  }
  return "?";
}

RedisError::RedisError(RedisErrorKind kind, const std::string& message)
    : Error(fmt::format("redis {}: {}", to_string(kind), message)), kind_(kind) {}

Reply RedisResult::take() && {
  if (!ok()) throw RedisError(error_kind(), error_message());
  return std::move(std::get<Reply>(value_));
}

std::string RedisResult::debug_string() const {
  if (ok()) return reply().debug_string();
  return fmt::format("{}: {}", to_string(error_kind()), error_message());
}

}  // namespace herdcache
