#include "herdcache/lease_protocol.hpp"

namespace herdcache {

using Status = TierResult::Status;
using Lease = TierResult::Lease;

LeaseProtocol::Next LeaseProtocol::count_miss_then(Next next) {
  if (!refreshing_) counters_->add(Counter::Misses);
  return next;
}

LeaseProtocol::Next LeaseProtocol::load_unleased() {
  counters_->add(Counter::LeaseTimeouts);
  return count_miss_then(Next::LoadUnleased);
}

LeaseProtocol::Next LeaseProtocol::on_reply(Status status, Lease lease, std::string_view holder, bool usable,
                                            Nanos now_ns) {
  ++reads_;
  switch (status) {
    case Status::Hit:
      if (!usable) return Next::LoadUnleased;  // overwrite it (the reader counted the error)
      if (lease != Lease::Granted) return Next::Serve;
      return refreshing_ ? Next::LoadLeased : Next::ServeAndRefresh;
    case Status::Miss:
      break;
    default:  // Redis unreachable or an error reply: the memory tier alone decides
      return count_miss_then(Next::LoadUnleased);
  }
  if (lease != Lease::HeldElsewhere) return count_miss_then(lease == Lease::Granted ? Next::LoadLeased : Next::LoadUnleased);
  if (!awaiting_ || holder != awaited_) {
    awaiting_ = true;
    awaited_.assign(holder);
    deadline_ = now_ns + lock_timeout_ns_;
    counters_->add(Counter::LeaseWaits);
  }
  wait_ns_ = deadline_ - now_ns;
  if (wait_ns_ <= 0 || reads_ >= kMaxReads) return load_unleased();
  if (!watching_) {
    watching_ = true;
    return Next::Watch;
  }
  return Next::WaitFill;
}

LeaseProtocol::Next LeaseProtocol::fill_waited(Nanos now_ns) {
  watching_ = false;
  wait_ns_ = deadline_ - now_ns;
  if (reads_ >= kMaxReads) return load_unleased();
  return Next::Read;  // the lease may be free now, or expired and ours to take over
}

}  // namespace herdcache
