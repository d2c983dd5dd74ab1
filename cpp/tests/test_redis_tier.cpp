// The Redis tier against a real redis-server (started by the test on a free port): a
// load's steps done by hand, with an invalidation of every kind landing between the
// lease read and the write, which must then be refused; a stale entry's refresh guard;
// the lease protocol fed the tier's real replies. (Cutting only the subscriber needs a
// proxy: tests/test_protocol.py does that.) Waits are on callbacks with deadlines.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "herdcache/compression.hpp"
#include "herdcache/completions.hpp"
#include "herdcache/read_protocol.hpp"
#include "herdcache/redis_tier.hpp"
#include "redis_server.hpp"

using namespace herdcache;
using herdcache::testing::RedisServer;
using Status = TierResult::Status;
using Lease = TierResult::Lease;

namespace {

constexpr Nanos kSecond = kNanosPerSecond;

Key key_of(const std::string& resource, const std::string& arg) {
  KeyBuilder b;
  b.reset("t", resource);
  b.add_str(arg);
  return b.finish();
}

// A tier on its own memory tier, and blocking forms of its calls.
struct Tier {
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>(kSecond, system_clock()->wall_ns());
  MemoryTier memory{{1 << 20, 4}, clock};
  RedisTier tier;

  explicit Tier(const RedisServer& server)
      : tier("t", "instance-1", parse_redis_url(server.url()), RedisOptions{}, memory, system_clock()) {
    // Connected once a read answers: requests made while the I/O thread connects wait for
    // the connection (each within its command timeout), so this is a wait, not a spin.
    const Nanos deadline = system_clock()->monotonic_ns() + 10 * kSecond;
    while (read(key_of("probe", "x"), {}, "").status == Status::Fault) REQUIRE(system_clock()->monotonic_ns() < deadline);
    REQUIRE(tier.health().connected);
  }

  template <class Start>
  TierResult call(Start&& start) {
    auto done = std::make_shared<OneShot<TierResult>>();
    start([done](TierResult r) { done->set(std::move(r)); });
    auto result = done->wait_for(5 * kSecond);
    REQUIRE(result.has_value());
    return std::move(*result);
  }
  TierResult read(const Key& key, const std::vector<std::string>& tags, const std::string& token) {
    const Nanos now = clock->wall_ns();
    return call([&](auto cb) { tier.read(key, tags, token, 10 * kSecond, now, now, std::move(cb)); });
  }
  TierResult write(const Key& key, const std::string& payload, const std::vector<std::string>& tags,
                   const TierResult& read, const std::string& token, Nanos fresh_for = 60 * kSecond) {
    RedisTier::WriteGuard guard;
    guard.lease_token = token;
    guard.generation = read.generation;
    guard.versions = read.versions;
    const Nanos now = clock->wall_ns();
    return call([&](auto cb) {
      tier.write(key, payload, now + fresh_for, now + 120 * kSecond, 0, tags, guard, std::move(cb));
    });
  }
  TierResult invalidate(const Invalidation& inv) {
    return call([&](auto cb) { tier.invalidate(inv, std::move(cb)); });
  }
};

}  // namespace

TEST_CASE("redis tier: an invalidation between a load's read and its write refuses the write", "[redis]") {
  RedisServer server;
  Tier t(server);
  const Key key = key_of("rooms", "org-1");
  const std::vector<std::string> tags{"org:1"};
  const auto [what, inv] = GENERATE_COPY(table<const char*, Invalidation>({
      {"the key", Invalidation::key("other", key.str)},
      {"its resource", Invalidation::prefix("other", "rooms", "t:rooms")},
      {"a prefix of its arguments", Invalidation::prefix("other", "rooms", std::string(key.canonical()))},
      {"a tag it carries", Invalidation::tags("other", {"org:1"})},
      {"a pattern", Invalidation::pattern("other", "rooms:*")},
      {"everything", Invalidation::clear("other")},
  }));
  INFO(what);

  const TierResult miss = t.read(key, tags, "T1");
  REQUIRE(miss.status == Status::Miss);
  REQUIRE(miss.lease == Lease::Granted);
  REQUIRE(t.invalidate(inv).status == Status::Done);
  CHECK(t.write(key, "old", tags, miss, "T1").status == Status::Refused);
  CHECK(t.tier.stats().writes_refused == 1);

  // The refused write gave its lease back: the next load is granted it, and its write lands.
  const TierResult again = t.read(key, tags, "T2");
  REQUIRE(again.status == Status::Miss);
  REQUIRE(again.lease == Lease::Granted);
  CHECK(t.write(key, "new", tags, again, "T2").status == Status::Done);
  const TierResult hit = t.read(key, tags, "T3");
  CHECK(hit.status == Status::Hit);
  CHECK(hit.payload == "new");
}

TEST_CASE("redis tier: a dependency's version seen inside a load refuses the load's write once it moves", "[redis]") {
  RedisServer server;
  Tier t(server);
  const Key outer = key_of("report", "o1");
  const Key inner = key_of("config", "o1");
  // What an entry built from `inner` depends on (invalidation.hpp): nothing was built
  // from it yet, so none of its version keys exists in Redis.
  const std::vector<std::string> inner_tags{"#k:" + inner.str, "#p:t:config", "#p:t:config:o1", "org:1"};
  const auto [what, inv] = GENERATE_COPY(table<const char*, Invalidation>({
      {"the inner key deleted", Invalidation::key("other", inner.str)},
      {"its resource", Invalidation::prefix("other", "config", "t:config")},
      {"a tag it carries", Invalidation::tags("other", {"org:1"})},
  }));
  INFO(what);
  auto versions = [&] { return t.call([&](auto cb) { t.tier.versions(inner_tags, std::move(cb)); }); };

  const TierResult miss = t.read(outer, {}, "T1");
  REQUIRE(miss.status == Status::Miss);
  const TierResult seen = versions();  // the loader's read of `inner`
  REQUIRE(seen.status == Status::Done);
  CHECK(seen.versions == std::vector<std::string>{"0", "0", "0", "0"});
  REQUIRE(t.invalidate(inv).status == Status::Done);
  TierResult guarded = miss;
  guarded.versions.insert(guarded.versions.end(), seen.versions.begin(), seen.versions.end());
  CHECK(t.write(outer, "built from the old inner", inner_tags, guarded, "T1").status == Status::Refused);

  // Built again from what is there now, it is written.
  const TierResult again = t.read(outer, {}, "T2");
  const TierResult now = versions();
  CHECK(now.versions != seen.versions);
  TierResult current = again;
  current.versions.insert(current.versions.end(), now.versions.begin(), now.versions.end());
  CHECK(t.write(outer, "built from the new inner", inner_tags, current, "T2").status == Status::Done);
}

TEST_CASE("redis tier: a stale entry's refresh lease carries the guard its write must prove", "[redis]") {
  RedisServer server;
  Tier t(server);
  const Key key = key_of("rooms", "org-2");
  const std::vector<std::string> tags{"org:2"};
  const TierResult first = t.read(key, tags, "T1");
  REQUIRE(t.write(key, "v1", tags, first, "T1", /*fresh_for=*/0).status == Status::Done);  // stale at once

  const TierResult stale = t.read(key, tags, "T2");
  REQUIRE(stale.status == Status::Hit);
  REQUIRE(stale.lease == Lease::Granted);  // the refresh is ours
  CHECK_FALSE(stale.generation.empty());
  CHECK(stale.versions.size() == 3);  // "t:rooms", "t:rooms:<arg>", the tag
  REQUIRE(t.invalidate(Invalidation::tags("other", {"org:2"})).status == Status::Done);
  CHECK(t.write(key, "old refresh", tags, stale, "T2").status == Status::Refused);
}

TEST_CASE("redis tier: the lease protocol, fed real replies, waits for the holder it names", "[redis]") {
  RedisServer server;
  Tier t(server);
  const Key key = key_of("rooms", "org-3");
  Counters counters;
  REQUIRE(t.read(key, {}, "holder").lease == Lease::Granted);

  ReadProtocol follower({}, 10 * kSecond, counters);
  const TierResult held = t.read(key, {}, "follower");
  REQUIRE(held.lease == Lease::HeldElsewhere);
  CHECK(held.lease_holder == "holder");
  CHECK(follower.on_reply(held.status, held.lease, held.lease_holder, true, 0) == ReadProtocol::Next::Watch);

  // The same token reading again is granted its own lease again (a load starting over).
  CHECK(t.read(key, {}, "holder").lease == Lease::Granted);
  const TierResult filled_read = t.read(key, {}, "holder");
  REQUIRE(t.write(key, "v", {}, filled_read, "holder").status == Status::Done);
  const TierResult hit = t.read(key, {}, "follower");
  CHECK(follower.on_reply(hit.status, hit.lease, hit.lease_holder, true, kSecond) == ReadProtocol::Next::Serve);
  CHECK(counters.get(Counter::LeaseWaits) == 1);
}

TEST_CASE("redis tier: an increment adds to the stored integer, keeps its record, and refuses the rest", "[redis]") {
  RedisServer server;
  Tier t(server);
  const Key key = key_of("hits", "page");
  auto incr = [&](std::int64_t delta, const Key& k) {
    const Nanos now = t.clock->wall_ns();
    return t.call([&](auto cb) { t.tier.incr(k, delta, now + 60 * kSecond, now + 120 * kSecond, false, {"org:1"}, now, std::move(cb)); });
  };
  TierResult first = incr(5, key);
  REQUIRE(first.status == Status::Done);
  CHECK(first.count == 5);
  CHECK(incr(-7, key).count == -2);
  const TierResult stored = t.read(key, {"org:1"}, "");
  REQUIRE(stored.status == Status::Hit);
  CHECK(stored.payload == std::string(kPayloadHeader) + "-2");
  CHECK(stored.tags == std::vector<std::string>{"org:1"});

  // Its dependency record is current: a tag bump invalidates the counter, which counts from 0 again.
  REQUIRE(t.invalidate(Invalidation::tags({}, {"org:1"})).status == Status::Done);
  CHECK(incr(1, key).count == 1);

  const Key text = key_of("names", "a");
  const TierResult read = t.read(text, {}, "");
  REQUIRE(t.write(text, std::string(kPayloadHeader) + "\"7\"", {}, read, "").status == Status::Done);
  const TierResult refused = incr(1, text);
  CHECK(refused.status == Status::Conflict);
  CHECK(refused.error == "\"7\"");
  CHECK(t.read(text, {}, "").payload == std::string(kPayloadHeader) + "\"7\"");  // unchanged

  CHECK(incr(9007199254740991, key_of("hits", "max")).count == 9007199254740991);
  const TierResult over = incr(1, key_of("hits", "max"));
  CHECK(over.status == Status::Conflict);
  CHECK(over.count == 1);
}

TEST_CASE("redis tier: a compressed payload is stored as it is, read back plain, and compared as stored", "[redis]") {
  RedisServer server;
  Tier t(server);
  std::string rows = "[";
  for (int i = 0; i < 500; ++i) rows += "{\"slot\":" + std::to_string(i % 12) + ",\"room\":\"B1\"},";
  rows.back() = ']';
  const std::string payload = std::string(kPayloadHeader) + rows;
  const std::string compressed = compress_payload(payload, 1024);
  REQUIRE(compressed.starts_with(kCompressedHeader));
  const Key key = key_of("reports", "1");
  REQUIRE(t.write(key, compressed, {}, t.read(key, {}, ""), "").status == Status::Done);
  // What Redis holds is the compressed payload; every read hands out the plain one.
  RedisClient raw(parse_redis_url(server.url()), RedisOptions{});
  CHECK(raw.execute({"HGET", key.str, "v"}).take().str() == compressed);
  const TierResult read = t.read(key, {}, "");
  REQUIRE(read.status == Status::Hit);
  CHECK(read.payload == payload);
  CHECK(t.read(key, {}, "lease-token").payload == payload);  // the read script's path

  // A compare-and-set expects the payload compressed the same way: the script compares
  // stored bodies, and compression is deterministic.
  auto conditional = [&](const std::string& expected, const std::string& next) {
    RedisTier::WriteGuard guard;
    guard.condition = RedisTier::WriteGuard::Condition::Equals;
    guard.expected_payload = compress_payload(expected, 1024);
    const Nanos now = t.clock->wall_ns();
    return t.call([&](auto cb) {
      t.tier.write(key, compress_payload(next, 1024), now + 60 * kSecond, now + 120 * kSecond, 0, {}, guard,
                   std::move(cb));
    });
  };
  const std::string other = std::string(kPayloadHeader) + "[]";
  CHECK(conditional(other, other).status == Status::Conflict);
  CHECK(conditional(payload, other).status == Status::Done);
  CHECK(t.read(key, {}, "").payload == other);

  // The increment script cannot read a compressed entry: it says so and changes nothing.
  REQUIRE(t.write(key, compressed, {}, t.read(key, {}, ""), "").status == Status::Done);
  const Nanos now = t.clock->wall_ns();
  const TierResult incr = t.call([&](auto cb) {
    t.tier.incr(key, 1, now + 60 * kSecond, now + 120 * kSecond, false, {}, now, std::move(cb));
  });
  CHECK(incr.status == Status::Conflict);
  CHECK(incr.count == 2);
  CHECK(raw.execute({"HGET", key.str, "v"}).take().str() == compressed);
}
