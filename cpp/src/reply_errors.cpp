// Error replies by kind and the writes-failing state (reply_errors.hpp has the rule).
#include "herdcache/reply_errors.hpp"

namespace herdcache {

namespace {
constexpr std::array<std::string_view, static_cast<std::size_t>(ReplyError::kCount)> kNames{
    "CROSSSLOT", "READONLY", "OOM",      "NOSCRIPT", "WRONGTYPE", "MOVED",  "ASK",    "TRYAGAIN", "CLUSTERDOWN",
    "MASTERDOWN", "LOADING", "BUSY",     "MISCONF",  "NOREPLICAS", "NOAUTH", "NOPERM", "ERR",      "other"};
}  // namespace

ReplyError classify_reply_error(std::string_view message) noexcept {
  const std::string_view first = message.substr(0, message.find(' '));
  for (std::size_t i = 0; i + 1 < kNames.size(); ++i) {
    if (first == kNames[i]) return static_cast<ReplyError>(i);
  }
  return ReplyError::Other;
}

std::string_view reply_error_name(ReplyError kind) noexcept {
  const auto i = static_cast<std::size_t>(kind);
  return i < kNames.size() ? kNames[i] : kNames.back();
}

void ReplyErrorCounts::count(std::string_view message) noexcept {
  counts_[static_cast<std::size_t>(classify_reply_error(message))].fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t ReplyErrorCounts::get(ReplyError kind) const noexcept {
  return counts_[static_cast<std::size_t>(kind)].load(std::memory_order_relaxed);
}

std::vector<std::pair<std::string, std::uint64_t>> ReplyErrorCounts::snapshot() const {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    if (const std::uint64_t n = counts_[i].load(std::memory_order_relaxed)) out.emplace_back(kNames[i], n);
  }
  return out;
}

WriteHealth::Change WriteHealth::on_error_reply(std::string_view message) {
  std::lock_guard lock(mutex_);
  last_error_.assign(message);
  const int in_a_row = errors_in_a_row_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (failing_.load(std::memory_order_relaxed) || in_a_row < kFailingAfter) return Change::None;
  failing_.store(true, std::memory_order_release);
  ++episodes_;
  return Change::Failing;
}

WriteHealth::Change WriteHealth::on_success() {
  // Every write that succeeds comes here: while all is well it costs two loads.
  if (errors_in_a_row_.load(std::memory_order_relaxed) == 0 && !failing()) return Change::None;
  std::lock_guard lock(mutex_);
  errors_in_a_row_.store(0, std::memory_order_relaxed);
  if (!failing_.load(std::memory_order_relaxed)) return Change::None;
  failing_.store(false, std::memory_order_release);
  return Change::Recovered;
}

WriteHealth::Snapshot WriteHealth::snapshot() const {
  std::lock_guard lock(mutex_);
  return {failing_.load(std::memory_order_relaxed), errors_in_a_row_.load(std::memory_order_relaxed), episodes_,
          last_error_};
}

}  // namespace herdcache
