// The leader's lease protocol, driven reply by reply with a hand-moved clock: what it
// does next for each tier answer, how long it waits for a lease holder, and what it
// counts. Each race the lease guards against is one of these sequences.
#include <catch2/catch.hpp>

#include "herdcache/lease_protocol.hpp"

using namespace herdcache;
using Next = LeaseProtocol::Next;
using Status = TierResult::Status;
using Lease = TierResult::Lease;

namespace {

constexpr Nanos kSecond = kNanosPerSecond;

struct Leader {
  Counters counters;
  Nanos now = 100 * kSecond;
  LeaseProtocol protocol;
  explicit Leader(bool refreshing = false) : protocol(refreshing, 10 * kSecond, counters) {}

  Next hit(Lease lease = Lease::None, bool usable = true) {
    return protocol.on_reply(Status::Hit, lease, "", usable, now);
  }
  Next miss(Lease lease, std::string_view holder = "") { return protocol.on_reply(Status::Miss, lease, holder, true, now); }
  Next fault() { return protocol.on_reply(Status::Fault, Lease::None, "", true, now); }
  std::uint64_t count(Counter c) const { return counters.get(c); }
};

}  // namespace

TEST_CASE("a hit is served; a stale one with its lease is served and refreshed under it") {
  Leader l;
  CHECK(l.hit() == Next::Serve);
  CHECK(l.hit(Lease::Granted) == Next::ServeAndRefresh);
  CHECK(l.count(Counter::Misses) == 0);
}

TEST_CASE("a refresh that is granted the lease loads under it, and counts no miss") {
  Leader l(/*refreshing=*/true);
  CHECK(l.hit(Lease::Granted) == Next::LoadLeased);
  Leader again(true);
  CHECK(again.miss(Lease::Granted) == Next::LoadLeased);
  CHECK(again.count(Counter::Misses) == 0);
}

TEST_CASE("a refresh that finds the lease held serves what Redis has") {
  Leader l(true);
  CHECK(l.hit(Lease::None) == Next::Serve);  // someone else refreshes it
}

TEST_CASE("a miss granted the lease loads under it; without Redis it loads alone") {
  Leader l;
  CHECK(l.miss(Lease::Granted) == Next::LoadLeased);
  CHECK(l.count(Counter::Misses) == 1);
  Leader down;
  CHECK(down.fault() == Next::LoadUnleased);
  CHECK(down.count(Counter::Misses) == 1);
}

TEST_CASE("an unusable or forged hit is loaded over, without a lease") {
  Leader l;
  CHECK(l.hit(Lease::None, /*usable=*/false) == Next::LoadUnleased);
  CHECK(l.count(Counter::LeaseWaits) == 0);
}

TEST_CASE("a follower watches before it waits, so a fill between its read and its wait is not missed") {
  Leader l;
  CHECK(l.miss(Lease::HeldElsewhere, "a.1") == Next::Watch);
  CHECK(l.protocol.wait_ns() == 10 * kSecond);
  // The holder filled it between the first read and the waiter: the second read has it.
  CHECK(l.hit() == Next::Serve);
  CHECK(l.count(Counter::LeaseWaits) == 1);
  CHECK(l.count(Counter::Misses) == 0);
}

TEST_CASE("the fill notice with the entry is served") {
  Leader l;
  CHECK(l.miss(Lease::HeldElsewhere, "a.1") == Next::Watch);
  CHECK(l.miss(Lease::HeldElsewhere, "a.1") == Next::WaitFill);
  l.now += 2 * kSecond;
  CHECK(l.hit() == Next::Serve);  // the notice, fed back as a reply
  CHECK(l.count(Counter::LeaseTimeouts) == 0);
}

TEST_CASE("a lease that never frees is waited for lock_timeout in all, not per read") {
  Leader l;
  CHECK(l.miss(Lease::HeldElsewhere, "hung") == Next::Watch);
  l.now += 1 * kSecond;
  CHECK(l.miss(Lease::HeldElsewhere, "hung") == Next::WaitFill);
  CHECK(l.protocol.wait_ns() == 9 * kSecond);  // what is left of the one deadline
  l.now += 9 * kSecond;                         // the wait ran out
  CHECK(l.protocol.fill_waited(l.now) == Next::Read);
  CHECK(l.miss(Lease::HeldElsewhere, "hung") == Next::LoadUnleased);  // the same holder: give up
  CHECK(l.count(Counter::LeaseWaits) == 1);
  CHECK(l.count(Counter::LeaseTimeouts) == 1);
  CHECK(l.count(Counter::Misses) == 1);
}

TEST_CASE("a dead holder's expired lease is taken over by the read after the wait") {
  Leader l;
  CHECK(l.miss(Lease::HeldElsewhere, "dead") == Next::Watch);
  CHECK(l.miss(Lease::HeldElsewhere, "dead") == Next::WaitFill);
  l.now += 10 * kSecond;
  CHECK(l.protocol.fill_waited(l.now) == Next::Read);
  CHECK(l.miss(Lease::Granted) == Next::LoadLeased);  // PX expired: the read granted it
  CHECK(l.count(Counter::LeaseTimeouts) == 0);
}

TEST_CASE("a new holder that took the lease over is waited for anew") {
  Leader l;
  CHECK(l.miss(Lease::HeldElsewhere, "dead") == Next::Watch);
  CHECK(l.miss(Lease::HeldElsewhere, "dead") == Next::WaitFill);
  l.now += 10 * kSecond;
  CHECK(l.protocol.fill_waited(l.now) == Next::Read);
  CHECK(l.miss(Lease::HeldElsewhere, "other-follower") == Next::Watch);  // took it over first
  CHECK(l.protocol.wait_ns() == 10 * kSecond);
  CHECK(l.count(Counter::LeaseWaits) == 2);
}

TEST_CASE("a notice without the entry (the holder gave up or was refused) reads again at once") {
  Leader l;
  CHECK(l.miss(Lease::HeldElsewhere, "a.1") == Next::Watch);
  CHECK(l.miss(Lease::HeldElsewhere, "a.1") == Next::WaitFill);
  l.now += kSecond / 10;
  CHECK(l.protocol.fill_waited(l.now) == Next::Read);
  CHECK(l.miss(Lease::Granted) == Next::LoadLeased);  // the released lease is ours
}

TEST_CASE("reads are bounded even when holders keep changing") {
  Leader l;
  Next next = Next::Read;
  for (int i = 0; i < 100 && next != Next::LoadUnleased; ++i) {
    next = l.miss(Lease::HeldElsewhere, i % 2 ? "x" : "y");
    if (next == Next::WaitFill) next = l.protocol.fill_waited(l.now);
  }
  CHECK(next == Next::LoadUnleased);
  CHECK(l.protocol.reads() <= LeaseProtocol::kMaxReads);
}
