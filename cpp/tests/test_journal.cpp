// The invalidation journal: what was recorded is replayed once, in order; past its bound
// it replays one clear instead, and records nothing more until that replay is taken.
#include <catch2/catch.hpp>

#include <deque>
#include <string>

#include "herdcache/journal.hpp"

using namespace herdcache;

TEST_CASE("journal: invalidations are replayed once, oldest first") {
  InvalidationJournal journal;
  CHECK(journal.take("me").empty());
  journal.record(Invalidation::key("me", "ns:r:1"));
  journal.record(Invalidation::tags("me", {"org:1", "rooms"}));
  journal.record(Invalidation::prefix("me", "r", "ns:r:1"));
  CHECK(journal.pending() == 3);

  std::deque<Invalidation> replay = journal.take("me");
  REQUIRE(replay.size() == 3);
  CHECK(replay[0] == Invalidation::key("me", "ns:r:1"));
  CHECK(replay[1] == Invalidation::tags("me", {"org:1", "rooms"}));
  CHECK(replay[2] == Invalidation::prefix("me", "r", "ns:r:1"));
  CHECK(journal.pending() == 0);
  CHECK(journal.take("me").empty());
  CHECK(journal.overflows() == 0);
}

TEST_CASE("journal: up to its capacity it keeps everything") {
  InvalidationJournal journal(3);
  for (int i = 0; i < 3; ++i) journal.record(Invalidation::key("me", "k" + std::to_string(i)));
  CHECK(journal.pending() == 3);
  CHECK(journal.overflows() == 0);
  CHECK(journal.take("me").size() == 3);
}

TEST_CASE("journal: an overflow empties it and its replay is one clear") {
  InvalidationJournal journal(3);
  for (int i = 0; i < 4; ++i) journal.record(Invalidation::key("me", "k" + std::to_string(i)));
  CHECK(journal.pending() == 0);
  CHECK(journal.overflows() == 1);

  journal.record(Invalidation::key("me", "later"));  // covered by the clear: not kept
  CHECK(journal.pending() == 0);
  CHECK(journal.overflows() == 1);

  std::deque<Invalidation> replay = journal.take("me");
  REQUIRE(replay.size() == 1);
  CHECK(replay[0] == Invalidation::clear("me"));

  // Taken: it records again, and overflows again past its bound.
  journal.record(Invalidation::key("me", "k"));
  CHECK(journal.take("me") == std::deque<Invalidation>{Invalidation::key("me", "k")});
  for (int i = 0; i < 4; ++i) journal.record(Invalidation::pattern("me", "*"));
  CHECK(journal.overflows() == 2);
  CHECK(journal.take("me") == std::deque<Invalidation>{Invalidation::clear("me")});
}

TEST_CASE("journal: the default bound is the one the tier documents") {
  InvalidationJournal journal;
  for (std::size_t i = 0; i < InvalidationJournal::kDefaultCapacity; ++i) journal.record(Invalidation::clear("me"));
  CHECK(journal.pending() == InvalidationJournal::kDefaultCapacity);
  CHECK(journal.overflows() == 0);
  journal.record(Invalidation::clear("me"));
  CHECK(journal.overflows() == 1);
}
