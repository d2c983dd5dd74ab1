// Error replies by kind and the writes-failing rule, fed the strings Redis answers.
#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <vector>

#include "herdcache/reply_errors.hpp"

using herdcache::classify_reply_error;
using herdcache::reply_error_name;
using herdcache::ReplyError;
using herdcache::ReplyErrorCounts;
using herdcache::WriteHealth;
using Change = herdcache::WriteHealth::Change;

TEST_CASE("reply errors: classified by their first word, as Redis spells them", "[reply_errors]") {
  CHECK(classify_reply_error("CROSSSLOT Keys in request don't hash to the same slot") == ReplyError::CrossSlot);
  CHECK(classify_reply_error("READONLY You can't write against a read only replica.") == ReplyError::ReadOnly);
  CHECK(classify_reply_error("OOM command not allowed when used memory > 'maxmemory'.") == ReplyError::Oom);
  CHECK(classify_reply_error("NOSCRIPT No matching script. Please use EVAL.") == ReplyError::NoScript);
  CHECK(classify_reply_error("WRONGTYPE Operation against a key holding the wrong kind of value") ==
        ReplyError::WrongType);
  CHECK(classify_reply_error("MOVED 3999 127.0.0.1:6381") == ReplyError::Moved);
  CHECK(classify_reply_error("ASK 3999 127.0.0.1:6381") == ReplyError::Ask);
  CHECK(classify_reply_error("ERR unknown command 'FOO'") == ReplyError::Err);
  CHECK(classify_reply_error("LOADING Redis is loading the dataset in memory") == ReplyError::Loading);
  CHECK(classify_reply_error("NOPERM this user has no permissions") == ReplyError::NoPerm);
}

TEST_CASE("reply errors: an unknown first word, a prefix of a known one, or nothing is other", "[reply_errors]") {
  CHECK(classify_reply_error("FROBNICATED the server says no") == ReplyError::Other);
  CHECK(classify_reply_error("READ ONLY") == ReplyError::Other);         // not READONLY
  CHECK(classify_reply_error("READONLYX something") == ReplyError::Other);
  CHECK(classify_reply_error("readonly lower case") == ReplyError::Other);  // Redis' codes are upper case
  CHECK(classify_reply_error("") == ReplyError::Other);
  CHECK(classify_reply_error("MOVED") == ReplyError::Moved);  // a word alone is still its kind
  CHECK(reply_error_name(ReplyError::Other) == "other");
  CHECK(reply_error_name(ReplyError::CrossSlot) == "CROSSSLOT");
  // Every kind's name classifies back to it: the table and the enum line up.
  for (int i = 0; i < static_cast<int>(ReplyError::Other); ++i) {
    const auto kind = static_cast<ReplyError>(i);
    CHECK(classify_reply_error(std::string(reply_error_name(kind)) + " text") == kind);
  }
}

TEST_CASE("reply errors: counts per kind, only the kinds seen in the snapshot", "[reply_errors]") {
  ReplyErrorCounts counts;
  CHECK(counts.snapshot().empty());
  counts.count("READONLY You can't write against a read only replica.");
  counts.count("READONLY again");
  counts.count("OOM command not allowed");
  counts.count("WHATEVER else");
  CHECK(counts.get(ReplyError::ReadOnly) == 2);
  CHECK(counts.get(ReplyError::Oom) == 1);
  CHECK(counts.get(ReplyError::Other) == 1);
  CHECK(counts.get(ReplyError::CrossSlot) == 0);
  using Snapshot = std::vector<std::pair<std::string, std::uint64_t>>;
  CHECK(counts.snapshot() == Snapshot{{"READONLY", 2}, {"OOM", 1}, {"other", 1}});
}

TEST_CASE("writes failing: begins at the Nth error reply in a row, once", "[reply_errors]") {
  WriteHealth health;
  for (int i = 1; i < WriteHealth::kFailingAfter; ++i) {
    CHECK(health.on_error_reply("READONLY You can't write") == Change::None);
    CHECK_FALSE(health.failing());
  }
  CHECK(health.on_error_reply("READONLY You can't write") == Change::Failing);
  CHECK(health.failing());
  CHECK(health.on_error_reply("OOM command not allowed") == Change::None);  // announced once
  auto s = health.snapshot();
  CHECK(s.failing);
  CHECK(s.errors_in_a_row == WriteHealth::kFailingAfter + 1);
  CHECK(s.episodes == 1);
  CHECK(s.last_error == "OOM command not allowed");
}

TEST_CASE("writes failing: ends at the first write that succeeds", "[reply_errors]") {
  WriteHealth health;
  for (int i = 0; i < WriteHealth::kFailingAfter; ++i) health.on_error_reply("CROSSSLOT Keys");
  REQUIRE(health.failing());
  CHECK(health.on_success() == Change::Recovered);
  CHECK_FALSE(health.failing());
  CHECK(health.on_success() == Change::None);
  auto s = health.snapshot();
  CHECK(s.errors_in_a_row == 0);
  CHECK(s.episodes == 1);
  CHECK(s.last_error == "CROSSSLOT Keys");  // kept: what the last episode was about

  // A second episode is announced again and counted.
  for (int i = 0; i < WriteHealth::kFailingAfter - 1; ++i) CHECK(health.on_error_reply("OOM x") == Change::None);
  CHECK(health.on_error_reply("OOM x") == Change::Failing);
  CHECK(health.snapshot().episodes == 2);
}

TEST_CASE("writes failing: a success between error replies starts the count over", "[reply_errors]") {
  WriteHealth health;
  // One bad key among good writes (a WRONGTYPE now and then) never makes writes failing.
  for (int round = 0; round < 10; ++round) {
    for (int i = 1; i < WriteHealth::kFailingAfter; ++i) CHECK(health.on_error_reply("WRONGTYPE x") == Change::None);
    CHECK(health.on_success() == Change::None);
  }
  CHECK_FALSE(health.failing());
  CHECK(health.snapshot().episodes == 0);
}

TEST_CASE("writes failing: outcomes from several threads announce each change once", "[reply_errors]") {
  WriteHealth health;
  std::atomic<int> began{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (health.on_error_reply("READONLY x") == Change::Failing) began.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(began.load() == 1);
  CHECK(health.snapshot().errors_in_a_row == 4000);
  CHECK(health.on_success() == Change::Recovered);
}
