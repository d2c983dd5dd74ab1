// Fill waiters: a fill notice wakes each waiter of its key once; a waiter past its
// deadline is called with a Fault when the next one is added, and never again.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "herdcache/fill_waiters.hpp"

using namespace herdcache;
using Status = TierResult::Status;

namespace {

constexpr Nanos kSecond = kNanosPerSecond;

struct Calls {
  std::vector<std::pair<std::string, TierResult>> seen;
  TierCallback record(std::string who) {
    return [this, who = std::move(who)](TierResult r) { seen.emplace_back(who, std::move(r)); };
  }
};

TierResult filled_with(std::string payload) {
  TierResult r;
  r.status = Status::Hit;
  r.payload = std::move(payload);
  return r;
}

}  // namespace

TEST_CASE("fill waiters: a notice wakes every waiter of its key, once, and no other") {
  FillWaiters waiters;
  Calls calls;
  waiters.add("k1", 0, kSecond, calls.record("a"));
  waiters.add("k1", 0, kSecond, calls.record("b"));
  waiters.add("k2", 0, kSecond, calls.record("c"));
  CHECK(waiters.size() == 3);

  CHECK(waiters.wake("k1", filled_with("v")) == 2);
  REQUIRE(calls.seen.size() == 2);
  for (auto& [who, r] : calls.seen) {
    CHECK((who == "a" || who == "b"));
    CHECK(r.status == Status::Hit);
    CHECK(r.payload == "v");
  }
  CHECK(waiters.size() == 1);
  CHECK(waiters.wake("k1", filled_with("again")) == 0);  // woken ones are gone
  CHECK(waiters.wake("nobody", filled_with("v")) == 0);
  CHECK(calls.seen.size() == 2);
}

TEST_CASE("fill waiters: past its deadline a waiter is called with a Fault by the next add") {
  FillWaiters waiters;
  Calls calls;
  waiters.add("k1", 0, kSecond, calls.record("early"));
  waiters.add("k2", 0, 3 * kSecond, calls.record("late"));

  waiters.add("k3", kSecond - 1, kSecond, calls.record("third"));  // nobody is due yet
  CHECK(calls.seen.empty());

  waiters.add("k3", kSecond, kSecond, calls.record("fourth"));  // the deadline itself is due
  REQUIRE(calls.seen.size() == 1);
  CHECK(calls.seen[0].first == "early");
  CHECK(calls.seen[0].second.status == Status::Fault);
  CHECK_FALSE(calls.seen[0].second.error.empty());
  CHECK(waiters.size() == 3);

  CHECK(waiters.wake("k1", filled_with("v")) == 0);  // swept: not called again
  CHECK(waiters.wake("k2", filled_with("v")) == 1);  // still within its deadline
  CHECK(calls.seen.back().first == "late");
  CHECK(calls.seen.back().second.status == Status::Hit);
}

TEST_CASE("fill waiters: a notice wakes a waiter whose deadline passed but was not swept") {
  FillWaiters waiters;
  Calls calls;
  waiters.add("k", 0, kSecond, calls.record("a"));
  TierResult done;
  done.status = Status::Done;
  CHECK(waiters.wake("k", done) == 1);
  REQUIRE(calls.seen.size() == 1);
  CHECK(calls.seen[0].second.status == Status::Done);
}

TEST_CASE("fill waiters: callbacks run outside the lock and may wait again") {
  FillWaiters waiters;
  int woken = 0;
  waiters.add("k", 0, kSecond, [&](TierResult) {
    ++woken;
    waiters.add("k", 0, kSecond, [&](TierResult) { ++woken; });
  });
  CHECK(waiters.wake("k", filled_with("v")) == 1);
  CHECK(woken == 1);
  CHECK(waiters.size() == 1);  // registered from inside the first callback
  CHECK(waiters.wake("k", filled_with("v")) == 1);
  CHECK(woken == 2);
}

TEST_CASE("fill waiters: each deadline in turn is swept, whatever order they were added in") {
  FillWaiters waiters;
  Calls calls;
  waiters.add("late", 0, 3 * kSecond, calls.record("late"));
  waiters.add("early", 0, kSecond, calls.record("early"));
  waiters.add("x", 2 * kSecond, 10 * kSecond, calls.record("x"));  // sweeps "early"
  REQUIRE(calls.seen.size() == 1);
  CHECK(calls.seen[0].first == "early");
  waiters.add("y", 3 * kSecond, 10 * kSecond, calls.record("y"));  // then "late", the next deadline
  REQUIRE(calls.seen.size() == 2);
  CHECK(calls.seen[1].first == "late");
  CHECK(waiters.size() == 2);
}
