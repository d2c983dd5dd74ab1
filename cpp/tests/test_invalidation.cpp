#include <catch2/catch.hpp>

#include "herdcache/invalidation.hpp"

using namespace herdcache;

namespace {
// An entry fresh for a second under `key`, of `resource`, carrying `tags`.
void put_entry(MemoryTier& memory, const Clock& clock, std::string key, std::string resource,
               std::vector<std::string> tags) {
  Key k{key, "", resource, hash_bytes(key), 0};
  Lifetime life{clock.monotonic_ns() + kNanosPerSecond, clock.monotonic_ns() + kNanosPerSecond};
  memory.put(k, EntryData{std::make_shared<int>(1), 1, life, 0, std::move(tags)});
}
}  // namespace

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
    put_entry(memory, *clock, std::move(key), std::move(resource), std::move(tags));
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

TEST_CASE("invalidation: what was built from a key goes with it, by every kind, uncounted") {
  auto clock = std::make_shared<ManualClock>();
  MemoryTier memory({1 << 20, 4}, clock);
  auto put = [&](std::string key, std::string resource, std::vector<std::string> tags) {
    put_entry(memory, *clock, std::move(key), std::move(resource), std::move(tags));
  };
  auto holds = [&](std::string_view key) { return memory.get(key, hash_bytes(key), nullptr, nullptr) != Lookup::Miss; };
  // slots were built from the org's config: they carry its dependency tags
  const auto deps = dependency_tags("app:config:o1", "app:config:o1");
  CHECK(deps == std::vector<std::string>{"#k:app:config:o1", "#p:app:config", "#p:app:config:o1"});
  auto build = [&] {
    put("app:config:o1", "config", {});
    put("app:config:o2", "config", {});
    put("app:slots:o1", "slots", deps);
  };
  build();
  CHECK(memory.tags_of("app:slots:o1", hash_bytes("app:slots:o1")) == deps);
  CHECK(memory.tags_of("app:nothing", hash_bytes("app:nothing")).empty());
  CHECK(Invalidation::key("x", "app:config:o1").apply(memory) == 1);
  CHECK_FALSE(holds("app:slots:o1"));
  build();
  CHECK(Invalidation::key("x", "app:config:o2").apply(memory) == 1);
  CHECK(holds("app:slots:o1"));  // built from another key
  build();
  CHECK(Invalidation::prefix("x", "config", "app:config:o1").apply(memory) == 1);
  CHECK_FALSE(holds("app:slots:o1"));
  build();
  CHECK(Invalidation::prefix("x", "config", "app:config").apply(memory) == 2);
  CHECK_FALSE(holds("app:slots:o1"));
  build();
  CHECK(Invalidation::pattern("x", "config:o2*").apply(memory) == 1);
  CHECK(holds("app:slots:o1"));
  CHECK(Invalidation::pattern("x", "config:o1*").apply(memory) == 1);
  CHECK_FALSE(holds("app:slots:o1"));
  // built from both configs: both of its dependency tags match, it goes once
  put("app:report", "report", {"#k:app:config:o1", "#k:app:config:o2", "org:1"});
  CHECK(memory.erase_tagged_by_pattern(kKeyDependency, "config:*") == 1);
  CHECK_FALSE(holds("app:report"));
  CHECK(memory.stats().entries == 0);
}
