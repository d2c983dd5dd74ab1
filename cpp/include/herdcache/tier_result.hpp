// What every shared-tier operation answers: one TierResult, handed once to the
// operation's callback on the thread that finished it (the client's or the subscriber's
// I/O thread). The tier's pieces that build results (the entry codec, the fill waiters,
// the read/write protocol in redis_tier.hpp) share this header so none of them depends
// on another. Callbacks never see Python; the bindings forward results to the event loop
// (or to a blocked sync caller).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "herdcache/clock.hpp"
#include "herdcache/codes.hpp"
#include "herdcache/inline_function.hpp"

namespace herdcache {

struct TierResult {
  using Status = TierStatus;  // codes.hpp: what each status carries
  Status status = Status::Fault;
  std::string payload;
  Nanos fresh_until_wall = 0;
  Nanos stale_until_wall = 0;
  Nanos load_ns = 0;
  std::vector<std::string> tags;
  std::vector<std::string> versions;  // with `generation`: the guard of the write that follows
  using Lease = LeaseState;
  Lease lease = Lease::None;  // Hit (stale: refresh it) or Miss: load it / wait for it
  std::string generation;     // Miss, or Hit with the lease granted: the namespace generation
  std::string lease_holder;   // Miss with the lease held elsewhere: the holder's token
  std::int64_t count = 0;
  std::string error;
  bool forged = false;        // Miss: an entry was there, but its signature did not verify

  static TierResult fault(std::string error) {
    TierResult r;
    r.error = std::move(error);
    return r;
  }
  static TierResult miss() {
    TierResult r;
    r.status = Status::Miss;
    return r;
  }
};

// A shared-tier operation's callback, kept inline up to kTierCallbackBytes
// (inline_function.hpp): the bindings' callbacks fit.
inline constexpr std::size_t kTierCallbackBytes = 48;
using TierCallback = InlineFunction<void(TierResult), kTierCallbackBytes>;

}  // namespace herdcache
