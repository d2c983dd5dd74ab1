// The memory tier: freshness by a manual clock, LRU and the byte budget, the invalidation
// indexes, handles released outside the lock, and a multi-threaded smoke test.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "herdcache/errors.hpp"
#include "herdcache/memory.hpp"

using namespace herdcache;

namespace {

constexpr Nanos kSecond = kNanosPerSecond;

Key make_key(std::string str, std::string resource, std::string full = "") {
  Key key;
  key.str = std::move(str);
  key.full = std::move(full);
  key.resource = std::move(resource);
  key.hash = hash_bytes(key.str);
  return key;
}

// What the tier charges for `key` with `value_bytes` and `tags`.
std::size_t charge_of(const Key& key, std::size_t value_bytes,
                      const std::vector<std::string>& tags = {}) {
  std::size_t charge = key.str.size() + key.full.size() + value_bytes + MemoryTier::kEntryOverhead;
  for (const auto& tag : tags) charge += tag.size() + MemoryTier::kTagOverhead;
  return charge;
}

struct Got {
  Handle value;
  EntryMeta meta{};
};

void capture(void* ctx, const Handle& value, const EntryMeta& meta) {
  auto* got = static_cast<Got*>(ctx);
  got->value = value;
  got->meta = meta;
}

struct Fixture {
  explicit Fixture(std::size_t max_bytes = 1 << 20, std::size_t shards = 8)
      : clock(std::make_shared<ManualClock>()), tier({max_bytes, shards}, clock) {}

  // Fresh for 10 s, then stale for 10 s more.
  Lifetime life() const {
    const Nanos now = clock->monotonic_ns();
    return {now + 10 * kSecond, now + 20 * kSecond};
  }
  bool put(const Key& key, int value, std::size_t value_bytes = 100,
           std::vector<std::string> tags = {}) {
    return static_cast<bool>(tier.put(key, EntryData{std::make_shared<int>(value), value_bytes, life(), 7000,
                                                     std::move(tags)}));
  }
  // The value stored under `key`, or -1 on a miss.
  int value(const Key& key) {
    Got got;
    if (tier.get(key.str, key.hash, capture, &got) == Lookup::Miss) return -1;
    return *got.value.as<int>();
  }
  Lookup lookup(const Key& key) { return tier.get(key.str, key.hash, nullptr, nullptr); }

  std::shared_ptr<ManualClock> clock;
  MemoryTier tier;
};

}  // namespace

TEST_CASE("memory: options are validated") {
  auto clock = std::make_shared<ManualClock>();
  CHECK_THROWS_AS(MemoryTier({1024, 0}, clock), InvalidArgument);
  CHECK_THROWS_AS(MemoryTier({1024, 3}, clock), InvalidArgument);
  CHECK_THROWS_AS(MemoryTier({0, 8}, clock), InvalidArgument);
  CHECK_NOTHROW(MemoryTier({1024, 1}, clock));
}

TEST_CASE("memory: put, get and replace") {
  Fixture f;
  const Key k = make_key("app:course:1", "course");
  CHECK(f.value(k) == -1);
  REQUIRE(f.put(k, 1));
  Got got;
  REQUIRE(f.tier.get(k.str, k.hash, capture, &got) == Lookup::Fresh);
  CHECK(*got.value.as<int>() == 1);
  CHECK(got.meta.load_ns == 7000);
  CHECK(got.meta.life.fresh_until == f.clock->monotonic_ns() + 10 * kSecond);

  REQUIRE(f.put(k, 2, 300, {"t"}));
  CHECK(f.value(k) == 2);
  auto stats = f.tier.stats();
  CHECK(stats.entries == 1);
  CHECK(stats.bytes == charge_of(k, 300, {"t"}));

  CHECK(f.tier.erase(k.str, k.hash));
  CHECK_FALSE(f.tier.erase(k.str, k.hash));
  CHECK(f.value(k) == -1);
  CHECK(f.tier.stats().bytes == 0);
}

TEST_CASE("memory: entries go fresh, stale, then expired as the clock moves") {
  Fixture f;
  const Key k = make_key("app:course:1", "course");
  f.put(k, 1);
  CHECK(f.lookup(k) == Lookup::Fresh);
  f.clock->advance(10 * kSecond - 1);
  CHECK(f.lookup(k) == Lookup::Fresh);
  f.clock->advance(1);
  CHECK(f.lookup(k) == Lookup::Stale);
  CHECK(f.value(k) == 1);  // a stale entry still hands out its value
  f.clock->advance(10 * kSecond);
  CHECK(f.lookup(k) == Lookup::Miss);
  auto stats = f.tier.stats();
  CHECK(stats.expirations == 1);
  CHECK(stats.entries == 0);
  CHECK(stats.bytes == 0);
  CHECK(f.lookup(k) == Lookup::Miss);  // removed: not counted twice
  CHECK(f.tier.stats().expirations == 1);
}

TEST_CASE("memory: a recently read entry survives eviction") {
  const Key a = make_key("app:r:a", "r"), b = make_key("app:r:b", "r"),
            c = make_key("app:r:c", "r"), d = make_key("app:r:d", "r");
  // Room for exactly three entries, in one shard and spread over several.
  const std::size_t shards = GENERATE(1, 4);
  Fixture f(3 * charge_of(a, 100), shards);
  f.put(a, 1);
  f.put(b, 2);
  f.put(c, 3);
  CHECK(f.tier.stats().evictions == 0);
  if (shards == 1) {
    CHECK(f.value(a) == 1);  // a is now the most recently used, b the least
    f.put(d, 4);
    CHECK(f.value(b) == -1);
    CHECK(f.value(a) == 1);
    CHECK(f.value(c) == 3);
    CHECK(f.value(d) == 4);
  } else {
    f.put(d, 4);
    CHECK(f.value(d) == 4);  // the entry just stored is never its own victim
  }
  CHECK(f.tier.stats().evictions == 1);
  CHECK(f.tier.stats().entries == 3);
  CHECK(f.tier.stats().bytes <= f.tier.stats().max_bytes);
}

TEST_CASE("memory: the byte budget holds under a randomized workload") {
  constexpr std::size_t kBudget = 4u << 20;
  constexpr int kKeys = 5000;
  Fixture f(kBudget, 8);
  std::vector<Key> keys;
  for (int i = 0; i < kKeys; ++i) keys.push_back(make_key("app:item:" + std::to_string(i), "item"));

  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int> pick(0, kKeys - 1), op(0, 99);
  std::uniform_real_distribution<double> log_size(std::log(10.0), std::log(64.0 * 1024));
  bool warmed = false;
  std::size_t lowest_after_warm = kBudget;
  for (int i = 0; i < 100000; ++i) {
    const Key& k = keys[pick(rng)];
    const int what = op(rng);
    if (what < 50) {
      const auto size = static_cast<std::size_t>(std::exp(log_size(rng)));
      // The handle carries the charge, so the final audit can add it up.
      f.tier.put(k, EntryData{std::make_shared<std::size_t>(charge_of(k, size)), size, f.life()});
      const auto bytes = f.tier.stats().bytes;
      if (bytes > kBudget) FAIL("over budget after put " << i << ": " << bytes);
      warmed = warmed || f.tier.stats().evictions > 0;
    } else if (what < 99) {
      f.lookup(k);
    } else {
      f.tier.erase(k.str, k.hash);
    }
    if (warmed) lowest_after_warm = std::min(lowest_after_warm, f.tier.stats().bytes);
  }
  REQUIRE(warmed);
  CHECK(lowest_after_warm >= kBudget * 9 / 10);

  // Audit: every entry the stats count is reachable, and the charges add up.
  std::size_t entries = 0, bytes = 0;
  for (const Key& k : keys) {
    Got got;
    if (f.tier.get(k.str, k.hash, capture, &got) == Lookup::Miss) continue;
    ++entries;
    bytes += *got.value.as<std::size_t>();
  }
  const auto stats = f.tier.stats();
  CHECK(stats.entries == entries);
  CHECK(stats.bytes == bytes);
  CHECK(f.tier.clear() == entries);
}

TEST_CASE("memory: an entry larger than the whole budget is rejected") {
  Fixture f(4096, 2);
  const Key k = make_key("app:blob:1", "blob");
  REQUIRE(f.put(k, 1, 100));
  CHECK_FALSE(f.put(k, 2, 4096));
  CHECK(f.value(k) == -1);  // the value it was meant to replace is gone too
  const auto stats = f.tier.stats();
  CHECK(stats.rejected == 1);
  CHECK(stats.entries == 0);
  CHECK(stats.bytes == 0);
  // Exactly the budget fits.
  CHECK(f.put(k, 3, 4096 - charge_of(k, 0)));
  CHECK(f.tier.stats().bytes == 4096);
}

TEST_CASE("memory: erase_prefix matches whole arguments, also on long keys") {
  Fixture f;
  const Key o1 = make_key("app:course:o1", "course"), o1x = make_key("app:course:o1:7", "course"),
            o10 = make_key("app:course:o10", "course"),
            o10x = make_key("app:course:o10:7", "course"),
            other = make_key("app:user:o1", "user");
  // Long keys: `str` is shortened (its readable part even looks like o1), `full` decides.
  const std::string long10 = "app:course:o10:" + std::string(300, 'x');
  const std::string long1 = "app:course:o1:" + std::string(300, 'y');
  const Key l10 = make_key(long10.substr(0, 13) + "#00aa", "course", long10);
  const Key l1 = make_key(long1.substr(0, 13) + "#11bb", "course", long1);
  for (const Key* k : {&o1, &o1x, &o10, &o10x, &other, &l10, &l1}) f.put(*k, 1);

  CHECK(f.tier.erase_prefix("course", "app:course:o1") == 3);
  CHECK(f.value(o1) == -1);
  CHECK(f.value(o1x) == -1);
  CHECK(f.value(l1) == -1);
  CHECK(f.value(o10) == 1);
  CHECK(f.value(l10) == 1);
  CHECK(f.value(other) == 1);  // another resource with the same arguments
  CHECK(f.tier.erase_prefix("course", "app:course:o10") == 3);
  CHECK(f.tier.erase_prefix("course", "app:course") == 0);
  CHECK(f.tier.erase_prefix("nope", "app:nope") == 0);
  CHECK(f.tier.stats().entries == 1);
  CHECK(f.tier.erase_prefix("user", "app:user") == 1);
  CHECK(f.tier.stats().bytes == 0);
}

TEST_CASE("memory: erase_tags counts each entry once and forgets removed entries") {
  Fixture f(1 << 20, 4);
  const Key a = make_key("app:r:a", "r"), b = make_key("app:r:b", "r"),
            c = make_key("app:r:c", "r"), d = make_key("app:r:d", "r");
  f.put(a, 1, 100, {"t1"});
  f.put(b, 2, 100, {"t1", "t2", "t1"});
  f.put(c, 3, 100, {"t2"});
  f.put(d, 4, 100, {"t3"});
  CHECK(f.tier.erase_tags({"t1", "t2", "absent"}) == 3);
  CHECK(f.tier.erase_tags({"t1"}) == 0);
  CHECK(f.value(d) == 4);
  CHECK(f.tier.stats().entries == 1);

  SECTION("after a replace the old tags no longer reach the entry") {
    f.put(a, 1, 100, {"old"});
    f.put(a, 2, 100, {"new"});
    CHECK(f.tier.erase_tags({"old"}) == 0);
    CHECK(f.value(a) == 2);
    CHECK(f.tier.erase_tags({"new"}) == 1);
  }
  SECTION("after an eviction the tag finds nothing") {
    Fixture small(2 * charge_of(a, 100, {"t"}), 1);
    small.put(a, 1, 100, {"t"});
    small.put(b, 2, 100, {"u"});
    small.put(c, 3, 100, {"u"});  // evicts a
    REQUIRE(small.tier.stats().evictions == 1);
    CHECK(small.tier.erase_tags({"t"}) == 0);
    CHECK(small.tier.erase_tags({"u"}) == 2);
    CHECK(small.tier.stats().bytes == 0);
  }
  SECTION("after an expiry the tag finds nothing") {
    f.put(a, 1, 100, {"t"});
    f.clock->advance(30 * kSecond);
    CHECK(f.value(a) == -1);
    CHECK(f.tier.erase_tags({"t"}) == 0);
  }
}

TEST_CASE("memory: a tag shared by many entries reaches each of them, in every shard") {
  Fixture f(1 << 24, 4);
  constexpr int kEntries = 2000;
  for (int i = 0; i < kEntries; ++i) {
    std::vector<std::string> tags{"all", i % 2 == 0 ? "even" : "odd"};
    if (i % 100 == 0) tags.push_back("hundreds");
    f.put(make_key("app:r:" + std::to_string(i), "r"), i, 10, std::move(tags));
  }
  // Removing some entries by other means leaves the rings they were in intact.
  int erased = 0, hundreds_left = 0, odd_left = 0;
  for (int i = 0; i < kEntries; ++i) {
    if (i % 7 == 0) {
      const Key k = make_key("app:r:" + std::to_string(i), "r");
      REQUIRE(f.tier.erase(k.str, k.hash));
      ++erased;
    } else {
      hundreds_left += i % 100 == 0;
      odd_left += i % 2 == 1;
    }
  }
  CHECK(f.tier.erase_tags({"hundreds"}) == static_cast<std::size_t>(hundreds_left));
  CHECK(f.tier.erase_tags({"odd"}) == static_cast<std::size_t>(odd_left));
  const std::size_t rest = f.tier.stats().entries;
  CHECK(rest == static_cast<std::size_t>(kEntries - erased - hundreds_left - odd_left));
  CHECK(f.tier.erase_tags({"all"}) == rest);
  CHECK(f.tier.erase_tags({"all", "even", "odd", "hundreds"}) == 0);
  CHECK(f.tier.stats().bytes == 0);
  // A tag whose last entry went is forgotten: used again, it reaches only the new entry.
  const Key k = make_key("app:r:new", "r");
  f.put(k, 1, 10, {"all"});
  CHECK(f.tier.erase_tags({"all"}) == 1);
}

TEST_CASE("memory: charges each entry its key, value, tags and the overheads") {
  Fixture f;
  const std::string long_key = "app:r:" + std::string(300, 'z');
  const Key plain = make_key("app:r:1", "r"), shortened = make_key("app:r:zz#ff", "r", long_key);
  f.put(plain, 1, 10, {"a", "bb", "a"});  // a repeated tag is one tag
  CHECK(f.tier.stats().bytes == charge_of(plain, 10, {"a", "bb"}));
  f.put(shortened, 2, 10);
  CHECK(f.tier.stats().bytes == charge_of(plain, 10, {"a", "bb"}) + charge_of(shortened, 10));
  CHECK(f.value(shortened) == 2);
  CHECK(f.tier.erase_prefix("r", long_key) == 1);  // matched on the canonical form it keeps
}

TEST_CASE("memory: erase_pattern globs over the key without its namespace") {
  Fixture f;
  const Key c1 = make_key("app:courses:1", "courses"), c2 = make_key("app:courses:2:x", "courses"),
            cx = make_key("app:coursesx:1", "coursesx"), u1 = make_key("app:users:1", "users"),
            bare = make_key("app:users", "users");
  const std::string long_key = "app:courses:9:" + std::string(300, 'z');
  const Key cl = make_key(long_key.substr(0, 20) + "#ff", "courses", long_key);
  for (const Key* k : {&c1, &c2, &cx, &u1, &bare, &cl}) f.put(*k, 1);

  CHECK(f.tier.erase_pattern("courses:*") == 3);  // c1, c2 and the long one; not coursesx
  CHECK(f.value(cx) == 1);
  CHECK(f.tier.erase_pattern("*:1") == 2);  // a glob in the first segment scans everything
  CHECK(f.tier.erase_pattern("users") == 1);
  CHECK(f.tier.erase_pattern("*") == 0);
  CHECK(f.tier.stats().entries == 0);
}

// A resource's entries are a ring whose record goes with its last entry, however that
// entry leaves; the walk of erase_prefix and erase_pattern must survive removing the last.
TEST_CASE("memory: a resource's ring is kept through removals in any order") {
  Fixture f(1 << 20, 1);  // one shard: every entry in the same ring
  std::vector<Key> keys;
  for (int i = 0; i < 6; ++i) keys.push_back(make_key("app:r:" + std::to_string(i), "r"));
  for (const Key& k : keys) f.put(k, 1);
  f.put(make_key("app:s:0", "s"), 1);
  CHECK(f.tier.erase(keys[3].str, keys[3].hash));  // from the middle of the ring
  CHECK(f.tier.erase(keys[5].str, keys[5].hash));  // the most recent: next to the sentinel
  CHECK(f.tier.erase(keys[0].str, keys[0].hash));  // the oldest: the sentinel's other side
  CHECK(f.tier.erase_pattern("r:2") == 1);
  CHECK(f.tier.erase_prefix("r", "app:r") == 2);  // the last two: the ring's record goes
  CHECK(f.tier.erase_prefix("r", "app:r") == 0);
  CHECK(f.tier.erase_pattern("r:*") == 0);
  for (const Key& k : keys) CHECK(f.value(k) == -1);
  CHECK(f.value(make_key("app:s:0", "s")) == 1);  // another resource's ring is untouched

  f.put(keys[1], 2);  // the resource comes back with a fresh ring
  f.put(keys[4], 3);
  CHECK(f.tier.erase_pattern("r:*") == 2);
  f.put(keys[2], 4);
  CHECK(f.value(keys[2]) == 4);
  CHECK(f.tier.clear() == 2);
}

// A tag's ring of entries whose first tag it is and its ring of the others: the record
// stays while either holds an entry, and each reaches its entries.
TEST_CASE("memory: a tag reaches entries that carry it first and later, and goes with the last") {
  Fixture f(1 << 20, 1);
  const Key x = make_key("app:r:x", "r"), y = make_key("app:r:y", "r"), z = make_key("app:r:z", "r"),
            w = make_key("app:r:w", "r");
  f.put(x, 1, 10, {"a", "b"});  // b is x's second tag
  f.put(y, 2, 10, {"b"});       // and y's first
  f.put(z, 3, 10, {"b", "c"});
  f.put(w, 4, 10, {"c"});
  CHECK(f.tier.erase(y.str, y.hash));
  CHECK(f.tier.erase(z.str, z.hash));  // b's ring of firsts is empty now, its other ring is not
  CHECK(f.tier.erase_tags({"b"}) == 1);
  CHECK(f.value(x) == -1);
  CHECK(f.tier.erase_tags({"a", "b"}) == 0);  // both records went with x
  CHECK(f.tier.erase_tags({"c"}) == 1);       // z's later tag left w's ring as it was
  CHECK(f.tier.stats().entries == 0);
  f.put(y, 5, 10, {"a", "b"});  // the tags come back with fresh rings
  CHECK(f.tier.erase_tags({"b"}) == 1);
  CHECK(f.tier.erase_tags({"a"}) == 0);
}

// tags_of walks each of the entry's links around its ring to the ring's sentinel, past
// other entries' links of both kinds.
TEST_CASE("memory: tags_of names an entry's tags, first and later, among other entries") {
  Fixture f(1 << 20, 1);
  const Key x = make_key("app:r:x", "r"), y = make_key("app:r:y", "r"), z = make_key("app:r:z", "r");
  f.put(x, 1, 10, {"b", "c", "a"});
  f.put(y, 2, 10, {"a", "c"});
  f.put(z, 3, 10, {"a", "b", "c"});
  CHECK(f.tier.tags_of(x.str, x.hash) == std::vector<std::string>{"a", "b", "c"});
  CHECK(f.tier.tags_of(y.str, y.hash) == std::vector<std::string>{"a", "c"});
  CHECK(f.tier.tags_of(z.str, z.hash) == std::vector<std::string>{"a", "b", "c"});
  f.put(make_key("app:r:w", "r"), 4, 10, {});
  CHECK(f.tier.tags_of("app:r:w", hash_bytes("app:r:w")).empty());
  CHECK(f.tier.erase(y.str, y.hash));
  CHECK(f.tier.tags_of(z.str, z.hash) == std::vector<std::string>{"a", "b", "c"});
  CHECK(f.tier.erase_tags({"b"}) == 2);
  CHECK(f.tier.tags_of(x.str, x.hash).empty());  // gone
}

TEST_CASE("memory: a key whose hash is not its own is refused") {
  Fixture f;
  Key k = make_key("app:r:1", "r");
  k.hash ^= 1;
  CHECK_THROWS_AS(f.tier.put(k, EntryData{std::make_shared<int>(1), 10, f.life(), 0, {}}), InvalidArgument);
  CHECK(f.tier.stats().entries == 0);
}

TEST_CASE("memory: a load time is kept to the microsecond, rounded up") {
  Fixture f;
  const Key k = make_key("app:r:1", "r");
  auto load_of = [&](Nanos load_ns) {
    f.tier.put(k, EntryData{std::make_shared<int>(1), 10, f.life(), load_ns, {}});
    Got got;
    REQUIRE(f.tier.get(k.str, k.hash, capture, &got) == Lookup::Fresh);
    return got.meta.load_ns;
  };
  CHECK(load_of(0) == 0);  // not known stays not known
  CHECK(load_of(1) == 1000);
  CHECK(load_of(2'500'000) == 2'500'000);
  CHECK(load_of(2'500'001) == 2'501'000);
  const Nanos cap = Nanos{std::numeric_limits<std::uint32_t>::max()} * 1000;  // 71 minutes
  CHECK(load_of(cap) == cap);
  CHECK(load_of(24 * 3600 * kSecond) == cap);
}

TEST_CASE("memory: clear empties every index") {
  Fixture f(1 << 20, 4);
  for (int i = 0; i < 100; ++i) {
    f.put(make_key("app:r:" + std::to_string(i), "r"), i, 100, {"t" + std::to_string(i % 3)});
  }
  CHECK(f.tier.clear() == 100);
  const auto stats = f.tier.stats();
  CHECK(stats.entries == 0);
  CHECK(stats.bytes == 0);
  CHECK(f.tier.erase_tags({"t0", "t1", "t2"}) == 0);
  CHECK(f.tier.erase_prefix("r", "app:r") == 0);
  const Key k = make_key("app:r:1", "r");
  f.put(k, 5, 100, {"t1"});
  CHECK(f.value(k) == 5);
  CHECK(f.tier.erase_tags({"t1"}) == 1);
}

// In production a handle's destructor runs Python code, which may call the tier again.
TEST_CASE("memory: a handle released by the tier may call back into it") {
  // One shard, so every call is on the same lock; room for two entries.
  Fixture f(2 * charge_of(make_key("app:r:a", "r"), 100) + 10, 1);
  const Key a = make_key("app:r:a", "r"), b = make_key("app:r:b", "r"),
            c = make_key("app:r:c", "r");
  int released = 0;
  auto reentrant = [&] {
    return Handle(std::shared_ptr<int>(new int(0), [&](int* p) {
      delete p;
      f.tier.stats();
      f.tier.get(a.str, a.hash, nullptr, nullptr);
      f.tier.erase(make_key("app:r:none", "r").str, hash_bytes("app:r:none"));
      ++released;
    }));
  };
  auto put = [&](const Key& k, std::vector<std::string> tags = {}) {
    f.tier.put(k, EntryData{reentrant(), 100, f.life(), 0, std::move(tags)});
  };

  put(a);
  put(a);  // replace
  CHECK(released == 1);
  f.tier.erase(a.str, a.hash);
  CHECK(released == 2);
  put(a);
  put(b);
  put(c);  // evicts a
  CHECK(released == 3);
  f.clock->advance(30 * kSecond);
  f.tier.get(b.str, b.hash, nullptr, nullptr);  // expired
  CHECK(released == 4);
  put(a, {"t"});
  f.tier.erase_tags({"t"});
  put(a);
  f.tier.erase_prefix("r", "app:r:a");
  put(a);
  f.tier.erase_pattern("r:*");  // a and the expired c
  CHECK(released == 8);
  put(a);
  f.tier.put(a, EntryData{reentrant(), 1 << 20, f.life()});  // rejected, drops the old a
  CHECK(released == 10);
  put(a);
  f.tier.clear();
  CHECK(released == 11);
}

TEST_CASE("memory: concurrent get, put and erase_tags keep the counts consistent") {
  constexpr int kKeys = 200, kThreads = 4, kOps = 20000;
  Fixture f(64 << 10, 4);  // small enough that puts evict
  std::vector<Key> keys;
  for (int i = 0; i < kKeys; ++i) keys.push_back(make_key("app:mt:" + std::to_string(i), "mt"));

  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::uniform_int_distribution<int> pick(0, kKeys - 1), op(0, 99), size(100, 4000);
      for (int i = 0; i < kOps; ++i) {
        const Key& k = keys[pick(rng)];
        const int what = op(rng);
        if (what < 60) {
          Got got;
          if (f.tier.get(k.str, k.hash, capture, &got) != Lookup::Miss && !got.value) ++errors;
        } else if (what < 98) {
          const std::size_t bytes = size(rng);
          std::vector<std::string> tags{"t" + std::to_string(pick(rng) % 10)};
          const std::size_t charge = charge_of(k, bytes, tags);
          f.tier.put(k, EntryData{std::make_shared<std::size_t>(charge), bytes, f.life(), 0,
                                  std::move(tags)});
        } else {
          f.tier.erase_tags({"t" + std::to_string(pick(rng) % 10)});
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(errors == 0);

  std::size_t entries = 0, bytes = 0;
  for (const Key& k : keys) {
    Got got;
    if (f.tier.get(k.str, k.hash, capture, &got) == Lookup::Miss) continue;
    ++entries;
    bytes += *got.value.as<std::size_t>();
  }
  const auto stats = f.tier.stats();
  CHECK(stats.evictions > 0);
  CHECK(stats.entries == entries);
  CHECK(stats.bytes == bytes);
  // Over budget by at most what was being inserted concurrently.
  CHECK(stats.bytes <= stats.max_bytes + kThreads * charge_of(keys[0], 4000, {"t0"}));
  CHECK(f.tier.erase_tags({"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"}) ==
        entries);
  CHECK(f.tier.stats().bytes == 0);
}
