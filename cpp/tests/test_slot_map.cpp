#include <catch2/catch.hpp>

#include <memory>
#include <set>
#include <string>

#include "herdcache/slot_map.hpp"

using herdcache::SlotMap;

TEST_CASE("slot map: a value comes back once, under its own id") {
  SlotMap<std::string> map;
  const auto a = map.add("a");
  const auto b = map.add("b");
  CHECK(a != b);
  CHECK(map.size() == 2);
  CHECK(map.take(b) == "b");
  CHECK_FALSE(map.take(b).has_value());  // taken already
  CHECK(map.take(a) == "a");
  CHECK(map.size() == 0);
  CHECK_FALSE(map.take(12345).has_value());  // never added
}

TEST_CASE("slot map: a reused slot gets a new id, so a stale id reaches nothing") {
  SlotMap<std::unique_ptr<int>> map;  // move-only values too
  const auto first = map.add(std::make_unique<int>(1));
  REQUIRE(map.take(first));
  const auto second = map.add(std::make_unique<int>(2));
  CHECK(second != first);
  CHECK((second & 0xffffffffu) == (first & 0xffffffffu));  // the same slot, reused
  CHECK_FALSE(map.take(first).has_value());
  auto value = map.take(second);
  REQUIRE(value.has_value());
  CHECK(**value == 2);
}

TEST_CASE("slot map: ids stay unique across many adds and takes") {
  SlotMap<int> map;
  std::set<std::uint64_t> seen;
  std::vector<std::uint64_t> live;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 20; ++i) {
      const auto id = map.add(i);
      CHECK(seen.insert(id).second);
      live.push_back(id);
    }
    for (std::size_t i = 0; i < live.size(); i += 2) CHECK(map.take(live[i]).has_value());
    std::vector<std::uint64_t> kept;
    for (std::size_t i = 1; i < live.size(); i += 2) kept.push_back(live[i]);
    live = kept;
  }
  CHECK(map.size() == live.size());
  for (auto id : live) CHECK(map.take(id).has_value());
  CHECK(map.size() == 0);
}
