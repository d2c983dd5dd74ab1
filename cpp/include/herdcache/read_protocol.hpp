// The read/write protocol of herdcache, as one state machine that does no I/O.
//
// Every read and every load asks this what to do next, from the state it is in (a memory
// lookup's outcome, a shared-tier reply, how its load ended) and the time; its caller
// performs the step (a lookup, a round trip, a loader, a write) and feeds back what came
// of it. Every outcome is counted here, on the resource's counters, exactly once. The
// memory fence (write_fence.hpp) decides whether a loaded value may be stored; this
// decides what follows from that.
//
// The rules (DESIGN.md, "Read path"):
// - A memory lookup (on_lookup). Fresh is served. get_or_load serves a stale copy, or a
//   fresh one XFetch picked, and refreshes it in the background; get() only serves it.
//   A miss leads or joins the key's flight (get_or_load), reads the shared tier (get),
//   or is a miss (get, memory only).
// - A flight leader (begin) reads the key with a lease token, unless a read already
//   granted its lease (a stale copy served and refreshed under it) or there is no shared
//   tier: then it loads at once.
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
// - After the load (loaded, failed, cancelled). A value the fence kept is written to the
//   shared tier under the guard, and nobody waits for the answer (write-behind). A fenced
//   value, or a failed load, gives its lease back so a waiting process loads at once. A
//   leader cancelled while callers follow its flight starts the load over for them, once,
//   under the same lease; otherwise its lease is given back (a closed manager's leases
//   expire by themselves).
// - A conditional write (add, compare-and-set) is decided by the shared tier; when it
//   cannot be asked, by this instance's memory (on_conditional_reply, holds_locally).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "herdcache/clock.hpp"
#include "herdcache/memory.hpp"
#include "herdcache/metrics.hpp"
#include "herdcache/tier_result.hpp"

namespace herdcache {

class ReadProtocol {
 public:
  static constexpr int kMaxReads = 6;

  enum class Next : std::uint8_t {
    // After a memory lookup, and after a shared-tier reply.
    Serve,            // serve the value (a reply's: fill memory with it)
    ServeAndRefresh,  // serve it, and refresh it in the background (a reply's: under its lease)
    Lead,             // get_or_load: lead the key's flight, or follow the one that runs
    Fetch,            // get: read the shared tier (no lease, no load follows)
    Miss,             // get: nothing anywhere
    // A flight leader's shared-tier steps.
    LoadLeased,       // run the loader; write under the reply's guard (lease, generation, versions)
    LoadUnleased,     // run the loader; write without a lease
    Watch,            // register a fill waiter for at most wait_ns(), then read again
    WaitFill,         // wait for the fill notice at most wait_ns(); then fill_waited()
    Read,             // read the key (with the lease token)
    // After the load.
    Write,            // write the stored value under the guard; its answer is handled in the background
    Release,          // give the lease back
    Restart,          // start the load over for the callers that follow the flight
    Done,             // nothing more to do
  };

  enum class Op : std::uint8_t { Get, GetOrLoad };

  // A memory lookup's next step, counting a served stale copy and a get()'s final miss.
  // `early`: XFetch picked this fresh hit for an early refresh. `shared`: a shared tier
  // is connected.
  static Next on_lookup(Op op, Lookup found, bool early, bool shared, Counters& counters) noexcept;

  // What a flight leader's load is.
  struct Leader {
    bool shared = true;       // a shared tier is connected
    bool refreshing = false;  // a refresh of a copy this instance serves meanwhile (its
                              // misses are not counted: the caller was served)
    bool leased = false;      // a read already granted the lease the load runs under
    bool restarted = false;   // the load started over once already
  };

  ReadProtocol(Leader leader, Nanos lock_timeout_ns, Counters& counters) noexcept
      : leader_(leader), lock_timeout_ns_(lock_timeout_ns), counters_(&counters) {}

  // The leader's first step: Read, or LoadLeased / LoadUnleased.
  Next begin() noexcept;
  // After a read (or a fill notice that carried the entry). `usable`: a Hit's payload
  // decoded (a forged or undecodable one did not).
  Next on_reply(TierResult::Status status, TierResult::Lease lease, std::string_view holder, bool usable,
                Nanos now_ns);
  // After WaitFill: the notice came without the entry, or not at all. (A notice with the
  // entry goes to on_reply.)
  Next fill_waited(Nanos now_ns) noexcept;
  // After the loader returned: `stored` when the fence kept the value (it is not out of date).
  Next loaded(bool stored) const noexcept;
  // After the loader raised.
  Next failed() const noexcept;
  // After the leader was cancelled mid-load. `followed`: callers follow its flight (it
  // stays for them); `open`: the manager is not closing.
  Next cancelled(bool followed, bool open) const noexcept;

  Nanos wait_ns() const noexcept { return wait_ns_; }  // for Watch and WaitFill
  int reads() const noexcept { return reads_; }

  // A conditional write's outcome from the shared tier's reply.
  enum class Conditional : std::uint8_t {
    Stored,         // stored there: fill memory with it
    Refused,        // the condition did not hold: drop what memory has, it is not what Redis has
    DecideLocally,  // Redis could not be asked: decide on this instance's memory (holds_locally)
  };
  static Conditional on_conditional_reply(TierResult::Status status) noexcept;
  // add (`expected` false): nothing is cached; compare-and-set: a value is cached and
  // equals the expected one (`equal`).
  static bool holds_locally(bool expected, bool cached, bool equal) noexcept {
    return expected ? cached && equal : !cached;
  }

 private:
  Next load_unleased();
  Next count_miss_then(Next next);
  bool holds_lease() const noexcept { return leader_.leased || lease_granted_; }

  Leader leader_;
  Nanos lock_timeout_ns_;
  Counters* counters_;
  int reads_ = 0;
  bool lease_granted_ = false;  // a reply granted this leader the lease
  bool watching_ = false;       // a fill waiter is registered
  std::string awaited_;         // the holder waited for
  bool awaiting_ = false;
  Nanos deadline_ = 0;
  Nanos wait_ns_ = 0;
};

}  // namespace herdcache
