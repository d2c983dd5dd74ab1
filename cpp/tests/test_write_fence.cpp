// The write fence: a store is refused exactly when an invalidation that covers its key
// was recorded after its load began; the memory tier applies it to put() for every kind
// of invalidation, and a forgotten past refuses rather than guesses.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "herdcache/memory.hpp"
#include "herdcache/write_fence.hpp"

using namespace herdcache;

namespace {

Key key_of(const std::string& resource, const std::vector<std::string>& args) {
  KeyBuilder b;
  b.reset("ns", resource);
  for (const auto& a : args) b.add_str(a);
  return b.finish();
}

EntryData data(std::vector<std::string> tags = {}) {
  EntryData d;
  d.value = std::make_shared<int>(1);
  d.value_bytes = 8;
  d.life = {60 * kNanosPerSecond, 120 * kNanosPerSecond};
  d.tags = std::move(tags);
  return d;
}

}  // namespace

TEST_CASE("a fence allows what nothing covered since the load began") {
  WriteFence fence;
  const Key rooms = key_of("rooms", {"org-1", "2"});
  const Key other = key_of("rooms", {"org-2"});
  const WriteFence::Seq began = fence.sequence();
  CHECK(fence.allows(began, rooms, {"org:1"}));

  fence.record_key(other.str);
  fence.record_tags({"org:2"});
  fence.record_prefix("rooms", "ns:rooms:org-2");
  fence.record_prefix("courses", "ns:courses");
  fence.record_pattern("courses:*");
  CHECK(fence.allows(began, rooms, {"org:1"}));  // none of them covers rooms:org-1

  SECTION("a key") { fence.record_key(rooms.str); }
  SECTION("a tag it carries") { fence.record_tags({"x", "org:1"}); }
  SECTION("a prefix of its arguments") { fence.record_prefix("rooms", "ns:rooms:org-1"); }
  SECTION("its resource") { fence.record_prefix("rooms", "ns:rooms"); }
  SECTION("a pattern") { fence.record_pattern("rooms:org-1:*"); }
  SECTION("everything") { fence.record_all(); }
  CHECK_FALSE(fence.allows(began, rooms, {"org:1"}));
  CHECK(fence.allows(fence.sequence(), rooms, {"org:1"}));  // a load that began after it
  CHECK(fence.allows(WriteFence::kUnfenced, rooms, {"org:1"}));
}

TEST_CASE("a prefix covers whole arguments only") {
  WriteFence fence;
  const WriteFence::Seq began = fence.sequence();
  fence.record_prefix("rooms", "ns:rooms:org-1");
  CHECK(fence.allows(began, key_of("rooms", {"org-10"}), {}));
  CHECK_FALSE(fence.allows(began, key_of("rooms", {"org-1", "x"}), {}));
}

TEST_CASE("a load older than everything the fence remembers is refused") {
  WriteFence fence;
  const Key rooms = key_of("rooms", {"org-1"});
  const WriteFence::Seq began = fence.sequence();
  for (std::size_t i = 0; i < WriteFence::kRemembered; ++i) fence.record_key("ns:other:" + std::to_string(i));
  CHECK(fence.allows(began, rooms, {}));  // every record since is still known
  fence.record_key("ns:other:last");
  CHECK_FALSE(fence.allows(began, rooms, {}));  // the first one since is forgotten
  CHECK(fence.allows(fence.sequence() - 1, rooms, {}));
}

TEST_CASE("the memory tier fences puts by every kind of invalidation") {
  MemoryTier memory({1 << 20, 4}, std::make_shared<ManualClock>());
  const Key rooms = key_of("rooms", {"org-1"});
  const WriteFence::Seq began = memory.fence().sequence();
  SECTION("erase") { memory.erase(rooms.str, rooms.hash); }
  SECTION("erase_prefix") { memory.erase_prefix("rooms", "ns:rooms"); }
  SECTION("erase_tags") { memory.erase_tags({"org:1"}); }
  SECTION("erase_pattern") { memory.erase_pattern("rooms:*"); }
  SECTION("clear") { memory.clear(); }
  CHECK(memory.put(rooms, data({"org:1"}), began).outcome == MemoryTier::Put::Fenced);
  CHECK(memory.stats().fenced == 1);
  CHECK(memory.stats().entries == 0);
  CHECK(memory.put(rooms, data({"org:1"}), memory.fence().sequence()));
  CHECK(memory.stats().entries == 1);
}

TEST_CASE("an invalidation of something else does not fence a put") {
  MemoryTier memory({1 << 20, 4}, std::make_shared<ManualClock>());
  const Key rooms = key_of("rooms", {"org-1"});
  const WriteFence::Seq began = memory.fence().sequence();
  memory.erase_tags({"org:2"});
  CHECK(memory.put(rooms, data({"org:1"}), began));
  CHECK(memory.admits(began, key_of("x", {}), {}));
  CHECK(memory.stats().fenced == 0);
}

TEST_CASE("a suspended memory tier serves nothing, keeps nothing, and forgets what a put replaced") {
  MemoryTier memory({1 << 20, 4}, std::make_shared<ManualClock>());
  const Key rooms = key_of("rooms", {"org-1"});
  const Key other = key_of("rooms", {"org-2"});
  REQUIRE(memory.put(rooms, data()));
  REQUIRE(memory.put(other, data()));
  memory.suspend();
  CHECK(memory.get(other.str, other.hash, nullptr, nullptr) == Lookup::Miss);  // not served...
  CHECK_FALSE(memory.put(rooms, data()));                                    // ...not kept...
  memory.resume();
  CHECK(memory.get(other.str, other.hash, nullptr, nullptr) == Lookup::Fresh);  // ...but still there
  CHECK(memory.get(rooms.str, rooms.hash, nullptr, nullptr) == Lookup::Miss);   // replaced: gone
}

TEST_CASE("a put the tier cannot keep still tells a fenced value from one only not kept") {
  MemoryTier memory({4096, 1}, std::make_shared<ManualClock>());
  const Key rooms = key_of("rooms", {"org-1"});
  EntryData big = data({"org:1"});
  big.value_bytes = 1 << 20;  // larger than the whole budget
  const WriteFence::Seq began = memory.fence().sequence();
  CHECK(memory.put(rooms, big, began).outcome == MemoryTier::Put::NotKept);  // written on, not kept
  memory.erase_tags({"org:1"});
  CHECK(memory.put(rooms, big, began).outcome == MemoryTier::Put::Fenced);  // out of date: written nowhere
  memory.suspend();
  CHECK(memory.put(rooms, data({"org:1"}), memory.fence().sequence()).outcome == MemoryTier::Put::NotKept);
  CHECK(memory.put(rooms, data({"org:1"}), began).outcome == MemoryTier::Put::Fenced);
}
