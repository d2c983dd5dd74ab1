// The shared-tier protocol of one flight leader, as a state machine that does no I/O.
//
// A leader reads the key with a lease token (RedisTier::read); from each reply, and the
// time, this decides what it does next: serve the value Redis has, load it (under the
// lease the read granted, or without one), or wait for the process that holds the lease
// to fill the key. Its caller performs the step and feeds back what came of it. Every
// outcome is counted here, on the resource's counters, exactly once.
//
// The rules (DESIGN.md, "Read path"):
// - A usable hit is served. A stale one whose lease the read granted is served and
//   refreshed under that lease; a refresh (stale-while-revalidate, warm) granted the
//   lease loads under it.
// - A miss with the lease granted loads under it: the write proves the lease and the
//   generation and versions the read saw, so an invalidation in between refuses it.
// - A miss whose lease another process holds waits for that holder's "filled" notice:
//   first a waiter is registered and the key read again (a fill landing between the
//   read and the wait is not missed), then the notice is waited for. One holder is
//   waited for lock_timeout in all; a read after that takes an expired lease over (the
//   holder died) or, if the same holder still has it, the leader loads without it. A new
//   holder (the lease was taken over) is waited for anew. At most kMaxReads reads.
// - Redis unreachable, an unusable payload, or the waiting exhausted: load without a
//   lease (the write is then unguarded by a lease, still checked by the memory fence).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "herdcache/clock.hpp"
#include "herdcache/metrics.hpp"
#include "herdcache/tier_result.hpp"

namespace herdcache {

class LeaseProtocol {
 public:
  static constexpr int kMaxReads = 6;

  enum class Next : std::uint8_t {
    Serve,            // serve the value of the reply just given (fill memory with it)
    ServeAndRefresh,  // serve it, and refresh it in the background under the granted lease
    LoadLeased,       // run the loader; write under the reply's guard (lease, generation, versions)
    LoadUnleased,     // run the loader; write without a lease
    Watch,            // register a fill waiter for at most wait_ns(), then read again
    WaitFill,         // wait for the fill notice at most wait_ns(); then fill_waited()
    Read,             // read again
  };

  // `refreshing`: a refresh of a copy this instance serves meanwhile (its misses are not
  // counted as misses: the caller was served). Counts go to `counters`.
  LeaseProtocol(bool refreshing, Nanos lock_timeout_ns, Counters& counters) noexcept
      : refreshing_(refreshing), lock_timeout_ns_(lock_timeout_ns), counters_(&counters) {}

  // After a read (or a fill notice that carried the entry). `usable`: a Hit's payload
  // decoded (a forged or undecodable one did not).
  Next on_reply(TierResult::Status status, TierResult::Lease lease, std::string_view holder, bool usable,
                Nanos now_ns);
  // After WaitFill: the notice came without the entry, or not at all. (A notice with the
  // entry goes to on_reply.)
  Next fill_waited(Nanos now_ns);

  Nanos wait_ns() const noexcept { return wait_ns_; }  // for Watch and WaitFill
  int reads() const noexcept { return reads_; }

 private:
  Next load_unleased();
  Next count_miss_then(Next next);

  bool refreshing_;
  Nanos lock_timeout_ns_;
  Counters* counters_;
  int reads_ = 0;
  bool watching_ = false;     // a fill waiter is registered
  std::string awaited_;       // the holder waited for
  bool awaiting_ = false;
  Nanos deadline_ = 0;
  Nanos wait_ns_ = 0;
};

}  // namespace herdcache
