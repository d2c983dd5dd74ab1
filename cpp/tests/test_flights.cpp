// Flights: one leader per key, followers share its handle, exceptions reach every follower.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <latch>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "herdcache/flights.hpp"

using namespace herdcache;

TEST_CASE("flights: the first join leads, later joins follow with the same handle") {
  FlightTable<std::shared_ptr<int>> table;
  int made = 0;
  auto make = [&] { return std::make_shared<int>(++made); };

  auto first = table.join("k", make);
  auto second = table.join("k", make);
  auto third = table.join("k", make);
  CHECK(first.leader);
  CHECK_FALSE(second.leader);
  CHECK_FALSE(third.leader);
  CHECK(made == 1);
  CHECK(second.handle == first.handle);
  CHECK(third.handle == first.handle);
  CHECK(second.id == first.id);
  CHECK(table.in_flight("k"));
  CHECK_FALSE(table.in_flight("other"));

  auto other = table.join("other", make);  // another key is its own flight
  CHECK(other.leader);
  CHECK(other.id != first.id);
  CHECK(table.size() == 2);

  auto done = table.finish("k", first.id);
  REQUIRE(done);
  CHECK(done->first == first.handle);
  CHECK(done->second == 2);
  CHECK_FALSE(table.in_flight("k"));
  CHECK(table.size() == 1);
}

TEST_CASE("flights: finish with a stale id or an unknown key yields nothing") {
  FlightTable<int> table;
  auto make = [] { return 1; };
  auto first = table.join("k", make);
  CHECK_FALSE(table.finish("k", first.id + 1));
  CHECK_FALSE(table.finish("absent", first.id));
  CHECK(table.in_flight("k"));
  REQUIRE(table.finish("k", first.id));
  CHECK_FALSE(table.finish("k", first.id));  // already finished

  // After finish, a new join leads a new flight, which the old id cannot finish.
  auto next = table.join("k", make);
  CHECK(next.leader);
  CHECK(next.id != first.id);
  CHECK_FALSE(table.finish("k", first.id));
  CHECK(table.finish("k", next.id));
  CHECK(table.size() == 0);
}

TEST_CASE("flights: 500 concurrent joins make exactly one leader and share one handle") {
  constexpr int kThreads = 500;
  FlightTable<std::shared_ptr<int>> table;
  std::atomic<int> made{0}, leaders{0};
  std::vector<FlightTable<std::shared_ptr<int>>::Joined> joined(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      joined[i] = table.join("k", [&] { return std::make_shared<int>(++made); });
      if (joined[i].leader) ++leaders;
    });
  }
  for (auto& thread : threads) thread.join();
  // make() runs unlocked, so callers racing the first one may each make a handle; only
  // one is kept, and every caller gets that one.
  CHECK(made >= 1);
  CHECK(made <= kThreads);
  CHECK(leaders == 1);
  REQUIRE(joined[0].handle);
  CHECK(*joined[0].handle >= 1);
  CHECK(*joined[0].handle <= made);
  for (const auto& j : joined) {
    CHECK(j.handle == joined[0].handle);
    CHECK(j.id == joined[0].id);
  }
  auto done = table.finish("k", joined[0].id);
  REQUIRE(done);
  CHECK(done->second == kThreads - 1);
}

TEST_CASE("flights: the leader's exception reaches every follower") {
  constexpr int kFollowers = 16;
  using Future = std::shared_future<int>;
  FlightTable<Future> table;
  std::promise<int> promise;  // only the leader's make() touches it
  auto make = [&] { return promise.get_future().share(); };

  auto lead = table.join("k", make);
  REQUIRE(lead.leader);
  std::latch joined(kFollowers);
  std::atomic<int> rethrown{0};
  std::vector<std::thread> followers;
  for (int i = 0; i < kFollowers; ++i) {
    followers.emplace_back([&] {
      auto follow = table.join("k", make);
      joined.count_down();
      if (follow.leader) return;
      try {
        follow.handle.get();
      } catch (const std::runtime_error& e) {
        if (std::string(e.what()) == "load failed") ++rethrown;
      }
    });
  }
  // Finish only once everyone has joined, as the leader does after its load completes.
  joined.wait();
  auto done = table.finish("k", lead.id);
  REQUIRE(done);
  CHECK(done->second == kFollowers);
  promise.set_exception(std::make_exception_ptr(std::runtime_error("load failed")));
  for (auto& thread : followers) thread.join();
  CHECK(rethrown == kFollowers);
  CHECK_THROWS_AS(lead.handle.get(), std::runtime_error);
  CHECK(table.size() == 0);  // nothing left behind to be reused
}

TEST_CASE("an abandoned flight stays only while callers follow it") {
  FlightTable<int> table;
  auto alone = table.join("k", [] { return 1; });
  CHECK_FALSE(table.abandon("k", alone.id));
  CHECK(table.size() == 0);
  auto led = table.join("k", [] { return 2; });
  table.join("k", [] { return 3; });  // a follower
  CHECK(table.abandon("k", led.id));
  CHECK(table.size() == 1);
  CHECK_FALSE(table.abandon("k", led.id + 1));  // another flight's id: nothing happens
  CHECK(table.finish("k", led.id)->second == 1);
}

// In the bindings `make` runs Python code, during which another thread may take the GIL
// and then the table's lock: make must not run under that lock, or the two deadlock.
TEST_CASE("flights: make runs without the table's lock, and a leader that lost the race follows") {
  FlightTable<int> table;
  FlightTable<int>::Joined other{};
  std::promise<void> other_joined;
  std::thread t;
  auto joined = table.join("k", [&] {
    // Another caller joins the same key while this one makes its handle. Were make called
    // under the lock, that caller would wait for make to return, and the wait below would
    // run out (then it joins once make has returned, and the checks after it fail).
    t = std::thread([&] {
      other = table.join("k", [] { return 2; });
      other_joined.set_value();
    });
    CHECK(other_joined.get_future().wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    return 1;
  });
  t.join();
  CHECK(other.leader);
  CHECK(other.handle == 2);
  CHECK_FALSE(joined.leader);  // it lost the race: it follows the flight the other caller leads
  CHECK(joined.handle == 2);
  CHECK(joined.id == other.id);
  auto done = table.finish("k", other.id);
  REQUIRE(done.has_value());
  CHECK(done->second == 1);  // one follower
  CHECK(table.size() == 0);
}
