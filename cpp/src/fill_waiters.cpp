#include "herdcache/fill_waiters.hpp"

#include <algorithm>
#include <vector>

namespace herdcache {

void FillWaiters::add(const std::string& key, Nanos now, Nanos timeout_ns, TierCallback cb) {
  std::vector<TierCallback> expired;
  {
    std::lock_guard lock(mutex_);
    if (now >= earliest_) {  // something may have expired: sweep, and find the next deadline
      earliest_ = kNever;
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        if (it->second.deadline <= now) {
          expired.push_back(std::move(it->second.cb));
          it = waiters_.erase(it);
        } else {
          earliest_ = std::min(earliest_, it->second.deadline);
          ++it;
        }
      }
    }
    waiters_.emplace(key, Waiter{now + timeout_ns, std::move(cb)});
    earliest_ = std::min(earliest_, now + timeout_ns);
  }
  for (auto& waiter : expired) waiter(TierResult::fault("timed out waiting for the lease holder"));
}

std::size_t FillWaiters::wake(const std::string& key, const TierResult& filled) {
  std::vector<TierCallback> woken;
  {
    std::lock_guard lock(mutex_);
    auto [first, last] = waiters_.equal_range(key);
    for (auto it = first; it != last; ++it) woken.push_back(std::move(it->second.cb));
    waiters_.erase(first, last);
  }
  for (auto& waiter : woken) waiter(filled);
  return woken.size();
}

std::size_t FillWaiters::size() const {
  std::lock_guard lock(mutex_);
  return waiters_.size();
}

}  // namespace herdcache
