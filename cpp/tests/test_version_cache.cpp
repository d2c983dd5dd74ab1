#include <catch2/catch.hpp>

#include "herdcache/version_cache.hpp"

using namespace herdcache;
using Check = VersionCache::Check;

TEST_CASE("version cache: an entry is valid only when every dependency is known and matches") {
  VersionCache cache;
  const std::string deps = "app#p:courses\n0\napp#t:org:1\n3\n";
  CHECK(cache.check(deps) == Check::Unknown);
  REQUIRE(cache.learn("app#p:courses\n0\n", cache.epoch()));
  CHECK(cache.check(deps) == Check::Unknown);  // the tag is still unknown
  REQUIRE(cache.learn({"app#t:org:1"}, {"3"}, cache.epoch()));
  CHECK(cache.check(deps) == Check::Valid);
  CHECK(cache.check("") == Check::Valid);  // no dependencies: nothing can invalidate it
  CHECK(cache.check("app#p:courses\n0\napp#t:org:1\n2\n") == Check::Invalid);
  CHECK(cache.check("app#p:x\n0\napp#t:org:1\n2\n") == Check::Invalid);  // one moved settles it
  CHECK(cache.find("app#t:org:1") == "3");
  CHECK_FALSE(cache.find("app#t:org:2").has_value());
}

TEST_CASE("version cache: malformed records are Unknown and teach nothing") {
  VersionCache cache;
  REQUIRE(cache.learn("a\n1\n", cache.epoch()));
  for (std::string_view bad : {"a\n1", "a\n", "a", "a\n1\nb"}) {
    INFO(bad);
    CHECK(cache.check(bad) == Check::Unknown);
  }
  CHECK_FALSE(cache.learn("b\n2", cache.epoch()));
  CHECK_FALSE(cache.learn({"b", "c"}, {"1"}, cache.epoch()));
  CHECK(cache.check("c\n1\n") == Check::Unknown);
}

TEST_CASE("version cache: forgetting a name makes entries that depend on it Unknown") {
  VersionCache cache;
  REQUIRE(cache.learn("a\n1\nb\n7\n", cache.epoch()));
  cache.forget({"a"});
  CHECK(cache.check("a\n1\n") == Check::Unknown);
  CHECK(cache.check("b\n7\n") == Check::Valid);
  cache.clear();
  CHECK(cache.check("b\n7\n") == Check::Unknown);
  CHECK(cache.size() == 0);
}

TEST_CASE("version cache: a read answered after a forget teaches nothing") {
  // The read was sent before an invalidation was applied: what it saw may be the version
  // from before the bump, so learning it would keep an invalidated entry valid.
  VersionCache cache;
  std::uint64_t sent = cache.epoch();
  cache.forget({"unrelated"});
  CHECK_FALSE(cache.learn("a\n1\n", sent));
  CHECK_FALSE(cache.learn({"a"}, {"1"}, sent));
  CHECK(cache.check("a\n1\n") == Check::Unknown);
  sent = cache.epoch();
  cache.clear();
  CHECK_FALSE(cache.learn("a\n1\n", sent));
  CHECK(cache.learn("a\n1\n", cache.epoch()));
}

TEST_CASE("version cache: forgetting nothing (a key-only broadcast) spoils no read in flight") {
  // Every write is announced; the reads around it must still learn what they saw.
  VersionCache cache;
  const std::uint64_t sent = cache.epoch();
  cache.forget({});
  CHECK(cache.epoch() == sent);
  CHECK(cache.learn("a\n1\n", sent));
}

TEST_CASE("version cache: bounded, it starts over when full") {
  VersionCache cache(4);
  for (int i = 0; i < 4; ++i) REQUIRE(cache.learn({"k" + std::to_string(i)}, {"1"}, cache.epoch()));
  CHECK(cache.size() == 4);
  REQUIRE(cache.learn({"k0"}, {"2"}, cache.epoch()));  // a known name replaces, no reset
  CHECK(cache.size() == 4);
  CHECK(cache.check("k0\n2\n") == Check::Valid);
  REQUIRE(cache.learn({"k9"}, {"1"}, cache.epoch()));
  CHECK(cache.size() == 1);
  CHECK(cache.check("k9\n1\n") == Check::Valid);
  CHECK(cache.check("k0\n2\n") == Check::Unknown);
}
