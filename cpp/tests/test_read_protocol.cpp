// The read/write protocol, driven step by step with a hand-moved clock: what a memory
// lookup leads to, what a flight leader does next for each tier answer, how long it waits
// for a lease holder, what follows its load, and what it counts. Each race the protocol
// guards against is one of these sequences; the last cases run whole loads against the
// engine (memory tier and fence) and a scripted tier, with an invalidation at each step.
#include <catch2/catch.hpp>

#include <functional>
#include <memory>

#include "herdcache/engine.hpp"
#include "herdcache/read_protocol.hpp"

using namespace herdcache;
using Next = ReadProtocol::Next;
using Op = ReadProtocol::Op;
using Status = TierResult::Status;
using Lease = TierResult::Lease;

namespace {

constexpr Nanos kSecond = kNanosPerSecond;

struct Leader {
  Counters counters;
  Nanos now = 100 * kSecond;
  ReadProtocol protocol;
  explicit Leader(bool refreshing = false) : protocol({.refreshing = refreshing}, 10 * kSecond, counters) {}
  explicit Leader(ReadProtocol::Leader role) : protocol(role, 10 * kSecond, counters) {}

  Next hit(Lease lease = Lease::None, bool usable = true) {
    return protocol.on_reply(Status::Hit, lease, "", usable, now);
  }
  Next miss(Lease lease, std::string_view holder = "") { return protocol.on_reply(Status::Miss, lease, holder, true, now); }
  Next fault() { return protocol.on_reply(Status::Fault, Lease::None, "", true, now); }
  std::uint64_t count(Counter c) const { return counters.get(c); }
};

}  // namespace

TEST_CASE("a memory lookup: get_or_load serves fresh, serves and refreshes stale or XFetch-picked, leads a miss") {
  Counters c;
  CHECK(ReadProtocol::on_lookup(Op::GetOrLoad, Lookup::Fresh, false, true, c) == Next::Serve);
  CHECK(ReadProtocol::on_lookup(Op::GetOrLoad, Lookup::Fresh, true, true, c) == Next::ServeAndRefresh);
  CHECK(c.get(Counter::StaleServed) == 0);
  CHECK(ReadProtocol::on_lookup(Op::GetOrLoad, Lookup::Stale, false, false, c) == Next::ServeAndRefresh);
  CHECK(c.get(Counter::StaleServed) == 1);
  CHECK(c.get(Counter::Hits) == 1);
  CHECK(c.get(Counter::MemoryHits) == 1);
  CHECK(ReadProtocol::on_lookup(Op::GetOrLoad, Lookup::Miss, false, true, c) == Next::Lead);
  CHECK(ReadProtocol::on_lookup(Op::GetOrLoad, Lookup::Miss, false, false, c) == Next::Lead);
  CHECK(c.get(Counter::Misses) == 0);  // the leader counts what its load turns out to be
}

TEST_CASE("a memory lookup: get serves what memory has, reads the shared tier on a miss, or misses") {
  Counters c;
  CHECK(ReadProtocol::on_lookup(Op::Get, Lookup::Fresh, true, true, c) == Next::Serve);  // get() never refreshes
  CHECK(ReadProtocol::on_lookup(Op::Get, Lookup::Stale, false, true, c) == Next::Serve);
  CHECK(c.get(Counter::StaleServed) == 1);
  CHECK(ReadProtocol::on_lookup(Op::Get, Lookup::Miss, false, true, c) == Next::Fetch);
  CHECK(c.get(Counter::Misses) == 0);  // the shared tier's answer is counted by its reader
  CHECK(ReadProtocol::on_lookup(Op::Get, Lookup::Miss, false, false, c) == Next::Miss);
  CHECK(c.get(Counter::Misses) == 1);
}

TEST_CASE("a leader reads the shared tier first; without one, or under a granted lease, it loads at once") {
  Leader shared;
  CHECK(shared.protocol.begin() == Next::Read);
  CHECK(shared.count(Counter::Misses) == 0);
  Leader alone({.shared = false});
  CHECK(alone.protocol.begin() == Next::LoadUnleased);
  CHECK(alone.count(Counter::Misses) == 1);
  Leader refresh_alone({.shared = false, .refreshing = true});
  CHECK(refresh_alone.protocol.begin() == Next::LoadUnleased);
  CHECK(refresh_alone.count(Counter::Misses) == 0);  // its caller was served
  Leader leased({.refreshing = true, .leased = true});
  CHECK(leased.protocol.begin() == Next::LoadLeased);
  CHECK(leased.protocol.failed() == Next::Release);
}

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
  CHECK(l.protocol.reads() <= ReadProtocol::kMaxReads);
}

TEST_CASE("after its load: a kept value is written, a fenced one gives the lease back") {
  Leader granted;
  REQUIRE(granted.miss(Lease::Granted) == Next::LoadLeased);
  CHECK(granted.protocol.loaded(true) == Next::Write);
  CHECK(granted.protocol.loaded(false) == Next::Release);  // a waiting process loads at once
  CHECK(granted.protocol.failed() == Next::Release);

  Leader unleased;
  REQUIRE(unleased.fault() == Next::LoadUnleased);
  CHECK(unleased.protocol.loaded(true) == Next::Write);  // still checked by the memory fence and the generation
  CHECK(unleased.protocol.loaded(false) == Next::Done);  // no lease to give back
  CHECK(unleased.protocol.failed() == Next::Done);

  Leader alone({.shared = false});
  REQUIRE(alone.protocol.begin() == Next::LoadUnleased);
  CHECK(alone.protocol.loaded(true) == Next::Done);  // memory is all there is
}

TEST_CASE("a leader cancelled mid-load hands its load over to its followers once") {
  Leader first;
  CHECK(first.protocol.cancelled(/*followed=*/true, /*open=*/true) == Next::Restart);
  CHECK(first.protocol.cancelled(false, true) == Next::Release);  // alone: the lease it may hold goes back
  CHECK(first.protocol.cancelled(true, false) == Next::Done);     // closing: its lease expires by itself
  Leader again({.restarted = true});
  CHECK(again.protocol.cancelled(true, true) == Next::Release);  // a loader that cancels itself fails its flight
  Leader alone({.shared = false});
  CHECK(alone.protocol.cancelled(false, true) == Next::Done);
}

TEST_CASE("a conditional write is decided by the shared tier, or by this instance's memory when it cannot answer") {
  using Conditional = ReadProtocol::Conditional;
  CHECK(ReadProtocol::on_conditional_reply(Status::Done) == Conditional::Stored);
  CHECK(ReadProtocol::on_conditional_reply(Status::Conflict) == Conditional::Refused);
  CHECK(ReadProtocol::on_conditional_reply(Status::Fault) == Conditional::DecideLocally);
  // add: only where nothing is cached
  CHECK(ReadProtocol::holds_locally(false, false, false));
  CHECK_FALSE(ReadProtocol::holds_locally(false, true, false));
  // compare-and-set: only where the cached value equals the expected one
  CHECK(ReadProtocol::holds_locally(true, true, true));
  CHECK_FALSE(ReadProtocol::holds_locally(true, true, false));
  CHECK_FALSE(ReadProtocol::holds_locally(true, false, false));
}

namespace {

// A whole flight leader's load against the engine's memory tier and a scripted shared
// tier: `replies` answer its reads in turn; `at` runs an invalidation at one step.
enum class Step { BeforeRead, AfterReply, DuringLoad, None };

struct Load {
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  Engine engine{EngineOptions{"app", 1 << 20, 8, Policy::make(60, 30, 0)}, clock};
  Key key = make_key();
  std::vector<Next> steps;

  Key make_key() {
    KeyBuilder builder;
    engine.begin_key(builder, "rooms");
    builder.add_int(7);
    return builder.finish();
  }

  // Runs the load; returns its last step (Write, Release or Done).
  Next run(const TierResult& reply, Step at, const std::function<void(Engine&, const Key&)>& invalidate) {
    Resource& res = engine.resource(key.resource);
    const WriteFence::Seq since = engine.write_sequence();  // where the load begins
    ReadProtocol protocol({}, 10 * kSecond, res.counters);
    Next next = protocol.begin();
    steps.push_back(next);
    if (at == Step::BeforeRead) invalidate(engine, key);
    if (next == Next::Read) {
      next = protocol.on_reply(reply.status, reply.lease, reply.lease_holder, true, clock->monotonic_ns());
      steps.push_back(next);
    }
    if (at == Step::AfterReply) invalidate(engine, key);
    REQUIRE((next == Next::LoadLeased || next == Next::LoadUnleased));
    clock->advance(kSecond / 2);  // the loader runs
    if (at == Step::DuringLoad) invalidate(engine, key);
    auto stored = engine.store(key, res, std::make_shared<int>(1), 8, {"org:1"}, -1, kSecond / 2, since);
    next = protocol.loaded(stored.has_value());
    steps.push_back(next);
    return next;
  }

  bool cached() {
    return engine.memory().get(key.str, key.hash, [](void*, const Handle&, const EntryMeta&) {}, nullptr) !=
           Lookup::Miss;
  }
};

TierResult granted() {
  TierResult r = TierResult::miss();
  r.lease = Lease::Granted;
  return r;
}

const std::pair<const char*, std::function<void(Engine&, const Key&)>> kInvalidations[] = {
    {"the key", [](Engine& e, const Key& k) { e.invalidate_key(k); }},
    {"its resource",
     [](Engine& e, const Key&) {
       KeyBuilder prefix;
       e.begin_key(prefix, "rooms");
       e.invalidate_prefix("rooms", prefix.canonical());
     }},
    {"its tag", [](Engine& e, const Key&) { e.invalidate_tags({"org:1"}); }},
    {"a pattern", [](Engine& e, const Key&) { e.invalidate_pattern("rooms:*"); }},
    {"everything", [](Engine& e, const Key&) { e.clear(); }},
};

}  // namespace

TEST_CASE("a load invalidated at any step is kept nowhere, and its lease goes back") {
  for (const auto& [what, invalidate] : kInvalidations) {
    for (Step at : {Step::BeforeRead, Step::AfterReply, Step::DuringLoad}) {
      for (const TierResult& reply : {granted(), TierResult::fault("down")}) {
        INFO("invalidating " << what << " at step " << static_cast<int>(at) << ", reply "
                             << static_cast<int>(reply.status));
        Load load;
        const Next last = load.run(reply, at, invalidate);
        CHECK_FALSE(load.cached());
        CHECK(last == (reply.lease == Lease::Granted ? Next::Release : Next::Done));
      }
    }
  }
}

TEST_CASE("a load nothing invalidates is kept and written under its guard") {
  for (const TierResult& reply : {granted(), TierResult::fault("down")}) {
    Load load;
    CHECK(load.run(reply, Step::None, [](Engine&, const Key&) {}) == Next::Write);
    CHECK(load.cached());
    CHECK(load.steps.front() == Next::Read);
  }
}

TEST_CASE("an invalidation of another key does not fence a load") {
  for (Step at : {Step::BeforeRead, Step::AfterReply, Step::DuringLoad}) {
    Load load;
    const auto other = [](Engine& e, const Key&) { e.invalidate_tags({"org:2"}); };
    CHECK(load.run(granted(), at, other) == Next::Write);
    CHECK(load.cached());
  }
}
