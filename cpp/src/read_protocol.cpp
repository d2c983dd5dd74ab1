#include "herdcache/read_protocol.hpp"

namespace herdcache {

using Status = TierResult::Status;
using Lease = TierResult::Lease;

ReadProtocol::Next ReadProtocol::on_lookup(Op op, Lookup found, bool early, bool shared, Counters& counters) noexcept {
  if (found == Lookup::Stale) {  // served either way: a hit, from memory, a stale one
    counters.add(Counter::StaleServed);
    counters.add(Counter::Hits);
    counters.add(Counter::MemoryHits);
  }
  if (op == Op::Get) {
    if (found != Lookup::Miss) return Next::Serve;
    if (shared) return Next::Fetch;
    counters.add(Counter::Misses);
    return Next::Miss;
  }
  if (found == Lookup::Miss) return Next::Lead;
  return found == Lookup::Stale || early ? Next::ServeAndRefresh : Next::Serve;
}

ReadProtocol::Next ReadProtocol::count_miss_then(Next next) {
  if (!leader_.refreshing) counters_->add(Counter::Misses);
  return next;
}

ReadProtocol::Next ReadProtocol::load_unleased() {
  counters_->add(Counter::LeaseTimeouts);
  return count_miss_then(Next::LoadUnleased);
}

ReadProtocol::Next ReadProtocol::begin() noexcept {
  if (leader_.leased) return Next::LoadLeased;
  if (leader_.shared) return Next::Read;
  return count_miss_then(Next::LoadUnleased);
}

ReadProtocol::Next ReadProtocol::on_reply(Status status, Lease lease, std::string_view holder, bool usable,
                                          Nanos now_ns) {
  ++reads_;
  switch (status) {
    case Status::Hit:
      if (!usable) return Next::LoadUnleased;  // overwrite it (the reader counted the error)
      if (lease != Lease::Granted) return Next::Serve;
      if (!leader_.refreshing) return Next::ServeAndRefresh;
      lease_granted_ = true;
      return Next::LoadLeased;
    case Status::Miss:
      break;
    default:  // Redis unreachable or an error reply: the memory tier alone decides
      return count_miss_then(Next::LoadUnleased);
  }
  if (lease == Lease::Granted) {
    lease_granted_ = true;
    return count_miss_then(Next::LoadLeased);
  }
  if (lease != Lease::HeldElsewhere) return count_miss_then(Next::LoadUnleased);
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

ReadProtocol::Next ReadProtocol::fill_waited(Nanos now_ns) noexcept {
  watching_ = false;
  wait_ns_ = deadline_ - now_ns;
  if (reads_ >= kMaxReads) return load_unleased();
  return Next::Read;  // the lease may be free now, or expired and ours to take over
}

ReadProtocol::Next ReadProtocol::loaded(bool stored) const noexcept {
  if (!leader_.shared) return Next::Done;
  if (stored) return Next::Write;
  return holds_lease() ? Next::Release : Next::Done;  // fenced: let a waiting process load now
}

ReadProtocol::Next ReadProtocol::failed() const noexcept {
  return leader_.shared && holds_lease() ? Next::Release : Next::Done;
}

ReadProtocol::Next ReadProtocol::cancelled(bool followed, bool open) const noexcept {
  if (followed && open && !leader_.restarted) return Next::Restart;
  // The read may have been granted the lease before its reply was lost with the caller.
  return leader_.shared && open ? Next::Release : Next::Done;
}

ReadProtocol::Conditional ReadProtocol::on_conditional_reply(Status status) noexcept {
  switch (status) {
    case Status::Done:
      return Conditional::Stored;
    case Status::Conflict:
      return Conditional::Refused;
    default:
      return Conditional::DecideLocally;
  }
}

}  // namespace herdcache
