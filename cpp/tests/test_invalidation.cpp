#include <catch2/catch.hpp>

#include "herdcache/invalidation.hpp"

using namespace herdcache;

TEST_CASE("invalidation: every kind round-trips through the wire form") {
  std::vector<Invalidation> all = {
      Invalidation::key("i1", "app:courses:o1:1"),
      Invalidation::prefix("i1", "courses", "app:courses:o1"),
      Invalidation::tags("i2", {"org:1", std::string("bin\0ary\n", 8), ""}),
      Invalidation::pattern("i3", "courses:*"),
      Invalidation::clear("i4"),
  };
  for (const auto& inv : all) {
    auto wire = encode_invalidation(inv);
    auto back = decode_invalidation(wire);
    REQUIRE(back.has_value());
    CHECK(*back == inv);
  }
  CHECK(encode_invalidation(Invalidation::key("a", "k:1")) == "HCI1k1:a3:k:1");
}

TEST_CASE("invalidation: malformed messages are refused, never half-applied") {
  for (std::string_view bad : {"", "HCI1", "HCI1x1:a", "HCI2k1:a3:k:1", "HCI1k1:a", "HCI1k1:a9:short",
                               "HCI1k1:a3:k:13:k:2", "HCI1p1:a1:r", "HCI1t1:a", "HCI1k:a", "HCI1k-1:a",
                               "HCI1k99999999999:a", "HCI1c"}) {
    INFO(bad);
    CHECK_FALSE(decode_invalidation(bad).has_value());
  }
  // every truncation of a valid message is refused too
  auto wire = encode_invalidation(Invalidation::prefix("origin", "courses", "app:courses:o1"));
  for (std::size_t n = 0; n < wire.size(); ++n) {
    auto cut = decode_invalidation(std::string_view(wire).substr(0, n));
    CHECK((!cut.has_value() || cut->kind != Invalidation::Kind::Prefix));
  }
}

TEST_CASE("invalidation: prefix levels stop at keyword parameters and respect brackets") {
  CHECK(prefix_levels("app:courses") == std::vector<std::string>{"app:courses"});
  CHECK(prefix_levels("app:courses:o1:1") ==
        std::vector<std::string>{"app:courses", "app:courses:o1", "app:courses:o1:1"});
  CHECK(prefix_levels("app:courses:o1:semester=1") ==
        std::vector<std::string>{"app:courses", "app:courses:o1"});
  CHECK(prefix_levels("app:r:[1,2]:{a=1,b=[x]}:z") ==
        std::vector<std::string>{"app:r", "app:r:[1,2]", "app:r:[1,2]:{a=1,b=[x]}",
                                 "app:r:[1,2]:{a=1,b=[x]}:z"});
}

TEST_CASE("invalidation: version keys are namespaced and bounded") {
  CHECK(prefix_version_key("app", "app:courses:o1") == "app#p:courses:o1");
  CHECK(tag_version_key("app", "org:1") == "app#t:org:1");
  std::string long_tag(1000, 'x');
  auto k = tag_version_key("app", long_tag);
  CHECK(k.size() < 100);
  CHECK(k != tag_version_key("app", long_tag + "y"));
}

TEST_CASE("invalidation: apply removes what it names from a memory tier") {
  auto clock = std::make_shared<ManualClock>();
  MemoryTier memory({1 << 20, 4}, clock);
  auto put = [&](std::string key, std::string resource, std::vector<std::string> tags) {
    Key k{key, "", resource, hash_bytes(key), 0};
    Lifetime life{clock->monotonic_ns() + kNanosPerSecond, clock->monotonic_ns() + kNanosPerSecond};
    memory.put(k, EntryData{std::make_shared<int>(1), 1, life, 0, std::move(tags)});
  };
  put("app:c:o1:1", "c", {"org:1"});
  put("app:c:o10:1", "c", {});
  put("app:r:o1", "r", {"org:1"});
  CHECK(Invalidation::prefix("x", "c", "app:c:o1").apply(memory) == 1);
  CHECK(Invalidation::tags("x", {"org:1"}).apply(memory) == 1);
  CHECK(Invalidation::key("x", "app:c:o10:1").apply(memory) == 1);
  CHECK(memory.stats().entries == 0);
  put("app:c:o1:1", "c", {});
  CHECK(Invalidation::pattern("x", "c:*").apply(memory) == 1);
  put("app:c:o1:1", "c", {});
  CHECK(Invalidation::clear("x").apply(memory) == 1);
}
