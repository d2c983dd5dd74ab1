#include "herdcache/journal.hpp"

namespace herdcache {

void InvalidationJournal::record(const Invalidation& inv) {
  std::lock_guard lock(mutex_);
  if (overflowed_) return;
  if (pending_.size() >= capacity_) {
    pending_.clear();
    overflowed_ = true;
    ++overflows_;
    return;
  }
  pending_.push_back(inv);
}

std::deque<Invalidation> InvalidationJournal::take(const std::string& origin) {
  std::deque<Invalidation> out;
  bool overflowed;
  {
    std::lock_guard lock(mutex_);
    out.swap(pending_);
    overflowed = overflowed_;
    overflowed_ = false;
  }
  if (overflowed) {
    out.clear();
    out.push_back(Invalidation::clear(origin));
  }
  return out;
}

std::size_t InvalidationJournal::pending() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

std::uint64_t InvalidationJournal::overflows() const {
  std::lock_guard lock(mutex_);
  return overflows_;
}

}  // namespace herdcache
