#include <catch2/catch.hpp>

#include <memory>

#include "herdcache/engine.hpp"
#include "herdcache/errors.hpp"
#include "herdcache/redis_url.hpp"

using namespace herdcache;

namespace {

struct Fixture {
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  Engine engine{EngineOptions{"app", 1 << 20, 8, Policy::make(60, 0, 0)}, clock};

  Key key(std::string_view resource, std::int64_t arg) {
    KeyBuilder builder;
    engine.begin_key(builder, resource);
    builder.add_int(arg);
    return builder.finish();
  }

  Lookup look(const Key& k) {
    return engine.lookup(k.str, k.hash, engine.resource(k.resource), [](void*, const Handle&, const EntryMeta&) {},
                         nullptr);
  }
};

Handle value() { return std::make_shared<int>(7); }

}  // namespace

TEST_CASE("engine: policies per resource, the default for the rest") {
  Fixture f;
  f.engine.set_policy("courses", Policy::make(10, 5, 0));
  auto courses = f.key("courses", 1);
  auto rooms = f.key("rooms", 1);
  f.engine.store(courses, f.engine.resource("courses"), value(), 10, {}, -1, 0);
  f.engine.store(rooms, f.engine.resource("rooms"), value(), 10, {}, -1, 0);
  f.clock->advance_seconds(11);
  CHECK(f.look(courses) == Lookup::Stale);
  CHECK(f.look(rooms) == Lookup::Fresh);
  f.clock->advance_seconds(5);
  CHECK(f.look(courses) == Lookup::Miss);
  f.clock->advance_seconds(45);
  CHECK(f.look(rooms) == Lookup::Miss);
  CHECK_THROWS_AS(f.engine.set_policy("x", Policy{-1}), InvalidArgument);
  CHECK_THROWS_AS(f.engine.resource("bad:name"), InvalidArgument);
}

TEST_CASE("engine: an explicit ttl is exact and memory=false keeps values out") {
  Fixture f;
  f.engine.set_policy("big", Policy::make(60, 0, 0, 0, false));
  auto k = f.key("rooms", 2);
  Lifetime life = *f.engine.store(k, f.engine.resource("rooms"), value(), 10, {}, 3, 0);
  CHECK(life.fresh_until == f.clock->monotonic_ns() + 3 * kNanosPerSecond);
  auto big = f.key("big", 1);
  f.engine.store(big, f.engine.resource("big"), value(), 10, {}, -1, 0);
  CHECK(f.look(big) == Lookup::Miss);
  CHECK(f.engine.memory().stats().entries == 1);
}

TEST_CASE("engine: counters follow lookups") {
  Fixture f;
  auto k = f.key("rooms", 3);
  Resource& res = f.engine.resource("rooms");
  f.look(k);
  f.engine.store(k, res, value(), 10, {}, -1, 0);
  f.look(k);
  f.look(k);
  CHECK(res.counters.get(Counter::MemoryMisses) == 1);
  CHECK(res.counters.get(Counter::MemoryHits) == 2);
  CHECK(res.counters.get(Counter::Hits) == 2);
}

TEST_CASE("engine: invalidation by prefix, tag and pattern") {
  Fixture f;
  for (std::int64_t i : {1, 10}) {
    f.engine.store(f.key("rooms", i), f.engine.resource("rooms"), value(), 10, {"t" + std::to_string(i)}, -1, 0);
  }
  CHECK(f.engine.invalidate_prefix("rooms", "app:rooms:1") == 1);
  CHECK(f.look(f.key("rooms", 10)) == Lookup::Fresh);
  CHECK(f.engine.invalidate_tags({"t10"}) == 1);
  f.engine.store(f.key("rooms", 5), f.engine.resource("rooms"), value(), 10, {}, -1, 0);
  CHECK_THROWS_AS(f.engine.invalidate_pattern(""), InvalidArgument);
  CHECK(f.engine.invalidate_pattern("rooms:*") == 1);
  CHECK(f.engine.memory().stats().entries == 0);
}

TEST_CASE("engine: a value from the shared tier keeps what remains of its lifetime") {
  Fixture f;
  auto k = f.key("rooms", 4);
  Nanos wall = f.clock->wall_ns();
  Lifetime life = *f.engine.store_shared(k, f.engine.resource("rooms"), value(), 10, {}, wall + 2 * kNanosPerSecond,
                                        wall + 5 * kNanosPerSecond, 0);
  CHECK(life.fresh_until == f.clock->monotonic_ns() + 2 * kNanosPerSecond);
  Lifetime back = f.engine.to_wall(life);
  CHECK(back.fresh_until == wall + 2 * kNanosPerSecond);
  f.clock->advance_seconds(3);
  CHECK(f.look(k) == Lookup::Stale);
  // already expired there: not kept
  auto gone = f.key("rooms", 5);
  f.engine.store_shared(gone, f.engine.resource("rooms"), value(), 10, {}, wall, wall, 0);
  CHECK(f.look(gone) == Lookup::Miss);
}

TEST_CASE("engine: XFetch refreshes early only with a measured load and a beta") {
  Fixture f;
  Policy off = Policy::make(100, 0, 0, 0);
  Policy on = Policy::make(100, 0, 0, 1.0);
  Nanos now = f.clock->monotonic_ns();
  EntryMeta near{{now + kNanosPerSecond, now + kNanosPerSecond}, 2 * kNanosPerSecond};  // 1 s left, 2 s load
  EntryMeta far{{now + 90 * kNanosPerSecond, now + 90 * kNanosPerSecond}, kNanosPerSecond / 1000};
  EntryMeta unmeasured{{now + kNanosPerSecond, now + kNanosPerSecond}, 0};
  int near_hits = 0, far_hits = 0;
  for (int i = 0; i < 1000; ++i) {
    CHECK_FALSE(f.engine.should_refresh_early(off, near, now));
    CHECK_FALSE(f.engine.should_refresh_early(on, unmeasured, now));
    near_hits += f.engine.should_refresh_early(on, near, now);
    far_hits += f.engine.should_refresh_early(on, far, now);
  }
  CHECK(near_hits > 500);  // P = e^-0.5 ~ 0.61
  CHECK(far_hits == 0);
}

TEST_CASE("engine: a closed engine refuses") {
  Fixture f;
  f.engine.check_open();
  f.engine.close();
  CHECK(f.engine.closed());
  CHECK_THROWS_AS(f.engine.check_open(), ClosedError);
}

TEST_CASE("engine: a cluster url is refused before any connection, saying the cluster tier is not available") {
  Fixture f;
  for (const char* text : {"redis+cluster://127.0.0.1:7000,127.0.0.1:7001", "rediss+cluster://:pw@node:7000/0"}) {
    CAPTURE(text);
    const RedisUrl url = parse_redis_url(text);
    CHECK_THROWS_AS(f.engine.connect_redis(url, RedisOptions{}, "i", "", nullptr), InvalidArgument);
    CHECK_THROWS_WITH(f.engine.connect_redis(url, RedisOptions{}, "i", "", nullptr),
                      Catch::Contains("Redis Cluster URLs are recognised, but the cluster tier is not available in "
                                      "this version"));
    CHECK(f.engine.redis() == nullptr);
  }
  CHECK_THROWS_WITH(f.engine.connect_redis(parse_redis_url("redis+cluster://node:7000"), RedisOptions{}, "i", "",
                                           nullptr),
                    Catch::Contains("redis+cluster://node:7000/0: "));  // the url, without credentials
}
