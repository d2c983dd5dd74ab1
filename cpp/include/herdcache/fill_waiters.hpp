// Fill waiters: the callers of this instance waiting for another process to fill a key
// (its lease holder's write, or its release after a failed load). A waiter is registered
// under the key with a deadline; a fill notice for the key (entry_codec.hpp) wakes every
// waiter of that key once, with the notice's result. Waiters whose deadline passed are
// swept when the next waiter is added and called once with a Fault, so nothing waits
// here for ever and an abandoned waiter does not stay; the sweep runs only once the
// earliest deadline has passed, so an add costs O(1) while nothing expired. Time comes in as `now` (the
// caller's monotonic clock), so the rules are tested without a clock or a server.
// Thread-safe: waiters are added on the loop's thread and woken on the subscriber's I/O
// thread; callbacks run outside the lock (they may add waiters again).
#pragma once
#include <limits>
#include <mutex>
#include <string>
#include <unordered_map>

#include "herdcache/tier_result.hpp"

namespace herdcache {

class FillWaiters {
 public:
  // Registers `cb` for `key` until now + timeout_ns; first calls every waiter (of any key)
  // whose deadline is at or before `now` with TierResult::fault.
  void add(const std::string& key, Nanos now, Nanos timeout_ns, TierCallback cb);
  // Calls every waiter of `key` with `filled` and forgets them. Returns how many.
  std::size_t wake(const std::string& key, const TierResult& filled);
  std::size_t size() const;

 private:
  struct Waiter {
    Nanos deadline;
    TierCallback cb;
  };
  static constexpr Nanos kNever = std::numeric_limits<Nanos>::max();
  mutable std::mutex mutex_;
  std::unordered_multimap<std::string, Waiter> waiters_;
  Nanos earliest_ = kNever;  // no waiter's deadline is before this: add() sweeps only past it
};

}  // namespace herdcache
