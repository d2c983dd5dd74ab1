// The invalidation journal: invalidations this instance made while Redis could not take
// them, kept to be replayed when it can, so that none is lost across an outage. Bounded:
// the first record past `capacity` empties it and marks it overflowed; what an overflowed
// journal replays is one whole-namespace clear (which covers everything it dropped), and
// it records nothing more until that replay is taken. Thread-safe (the I/O thread records
// failed invalidations, reconnects take the replay). Replaying is the caller's: take()
// only hands over what to send.
#pragma once
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>

#include "herdcache/invalidation.hpp"

namespace herdcache {

class InvalidationJournal {
 public:
  static constexpr std::size_t kDefaultCapacity = 10000;
  explicit InvalidationJournal(std::size_t capacity = kDefaultCapacity) : capacity_(capacity) {}

  void record(const Invalidation& inv);
  // What to replay now, oldest first, and the journal starts over empty: the recorded
  // invalidations, or after an overflow Invalidation::clear(origin) alone.
  std::deque<Invalidation> take(const std::string& origin);

  std::size_t pending() const;        // recorded, waiting for the replay
  std::uint64_t overflows() const;    // times it overflowed

 private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::deque<Invalidation> pending_;
  bool overflowed_ = false;
  std::uint64_t overflows_ = 0;
};

}  // namespace herdcache
