#include "herdcache/breaker.hpp"

#include <fmt/format.h>

#include "herdcache/errors.hpp"

namespace herdcache {

namespace {
constexpr Nanos kNanosPerMilli = 1'000'000;
}  // namespace

void BreakerOptions::validate() const {
  if (failures_to_open < 1) {
    throw InvalidArgument(fmt::format("failures_to_open must be >= 1, got {}", failures_to_open));
  }
  if (open_ms < 1 || open_ms > INT64_MAX / kNanosPerMilli) {
    throw InvalidArgument(fmt::format("open_ms must be >= 1, got {}", open_ms));
  }
}

CircuitBreaker::CircuitBreaker(BreakerOptions options, std::shared_ptr<const Clock> clock)
    : options_(options), clock_(std::move(clock)) {
  options_.validate();
  if (!clock_) throw InvalidArgument("circuit breaker needs a clock");
  open_ns_ = options_.open_ms * kNanosPerMilli;
}

bool CircuitBreaker::allow() {
  switch (state_) {
    case State::Closed:
      return true;
    case State::Open:
      if (clock_->monotonic_ns() < probe_at_ns()) return false;
      state_ = State::HalfOpen;
      return true;
    case State::HalfOpen:
      return false;
  }
  return false;
}

void CircuitBreaker::record_success() {
  switch (state_) {
    case State::Closed:
      failures_ = 0;
      break;
    case State::HalfOpen:
      state_ = State::Closed;
      failures_ = 0;
      break;
    case State::Open:
      break;
  }
}

void CircuitBreaker::record_failure() {
  switch (state_) {
    case State::Closed:
      if (++failures_ >= options_.failures_to_open) open();
      break;
    case State::HalfOpen:
      ++failures_;
      open();
      break;
    case State::Open:
      break;
  }
}

void CircuitBreaker::open() {
  state_ = State::Open;
  opened_at_ = clock_->monotonic_ns();
}

const char* to_string(CircuitBreaker::State state) noexcept {
  switch (state) {
    case CircuitBreaker::State::Closed: return "closed";
    case CircuitBreaker::State::Open: return "open";
    case CircuitBreaker::State::HalfOpen: return "half_open";
  }
  return "?";
}

Backoff::Backoff(std::int64_t initial_ms, std::int64_t max_ms, std::uint64_t seed)
    : state_(seed) {
  if (initial_ms < 1 || initial_ms > INT64_MAX / kNanosPerMilli) {
    throw InvalidArgument(fmt::format("backoff_initial_ms must be >= 1, got {}", initial_ms));
  }
  if (max_ms < initial_ms || max_ms > INT64_MAX / kNanosPerMilli) {
    throw InvalidArgument(
        fmt::format("backoff_max_ms must be >= backoff_initial_ms ({}), got {}", initial_ms, max_ms));
  }
  initial_ns_ = initial_ms * kNanosPerMilli;
  max_ns_ = max_ms * kNanosPerMilli;
}

Nanos Backoff::ceiling_ns(int attempt) const noexcept {
  Nanos ceiling = initial_ns_;
  for (int i = 0; i < attempt && ceiling < max_ns_; ++i) {
    ceiling = ceiling > max_ns_ / 2 ? max_ns_ : ceiling * 2;
  }
  return ceiling < max_ns_ ? ceiling : max_ns_;
}

Nanos Backoff::next_delay_ns() {
  const Nanos ceiling = ceiling_ns(attempt_);
  if (attempt_ < 64) ++attempt_;  // the ceiling has long been capped by then
  const auto span = static_cast<std::uint64_t>(ceiling) + 1;
  return static_cast<Nanos>(next_random() % span);
}

std::uint64_t Backoff::next_random() noexcept {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace herdcache
