// The completion queue (eventfd + batch) and the one-shot latch.
// Named "redis: ..." because they are the Redis layer's bridge to asyncio and sync callers.
#include <catch2/catch.hpp>

#include <poll.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "herdcache/completions.hpp"

using herdcache::Completion;
using herdcache::CompletionQueue;
using herdcache::OneShot;
using herdcache::WakeQueue;

namespace {

bool readable(int fd, int timeout_ms = 0) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

}  // namespace

TEST_CASE("redis: completion queue wakes once per empty to non-empty batch", "[redis][completions]") {
  CompletionQueue<std::string> queue;
  CHECK_FALSE(readable(queue.fd()));
  CHECK(queue.drain().empty());

  queue.push({1, "a"});
  CHECK(readable(queue.fd()));
  queue.push({2, "b"});
  queue.push({3, "c"});

  std::vector<Completion<std::string>> batch;
  queue.drain(batch);
  REQUIRE(batch.size() == 3);
  CHECK(batch[0].request_id == 1);
  CHECK(batch[2].result == "c");
  CHECK_FALSE(readable(queue.fd()));  // drained: no spurious readiness left behind

  queue.push({4, "d"});
  CHECK(readable(queue.fd()));
  queue.drain(batch);
  REQUIRE(batch.size() == 1);
  CHECK(batch[0].request_id == 4);
}

TEST_CASE("redis: quiet pushes wait for wake(), and any ordinary push wakes them too",
          "[redis][completions]") {
  WakeQueue<int> queue;
  queue.push_quiet(1);
  queue.push_quiet(2);
  CHECK_FALSE(readable(queue.fd()));  // a burst of quiet pushes: no wakeup yet
  queue.wake();
  CHECK(readable(queue.fd()));
  queue.wake();  // idempotent while a wakeup is pending
  std::vector<int> batch;
  queue.drain(batch);
  CHECK(batch == std::vector<int>{1, 2});
  CHECK_FALSE(readable(queue.fd()));

  queue.wake();  // nothing queued: nothing to wake for
  CHECK_FALSE(readable(queue.fd()));

  // A quiet push never hides an ordinary one: the consumer is woken for both.
  queue.push_quiet(3);
  queue.push(4);
  CHECK(readable(queue.fd()));
  queue.drain(batch);
  CHECK(batch == std::vector<int>{3, 4});
}

TEST_CASE("redis: completion queue loses nothing with 4 producers and a polling consumer",
          "[redis][completions]") {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50000;
  WakeQueue<std::uint64_t> queue;
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&queue, t] {
      for (int i = 0; i < kPerThread; ++i) queue.push(std::uint64_t(t) << 32 | std::uint64_t(i));
    });
  }

  std::vector<int> next(kThreads, 0);  // per producer, items arrive in push order
  int received = 0, wakeups = 0;
  std::vector<std::uint64_t> batch;
  bool in_order = true;
  while (received < kThreads * kPerThread) {
    REQUIRE(readable(queue.fd(), 5000));  // a push is never left without a wakeup
    ++wakeups;
    queue.drain(batch);
    for (auto item : batch) {
      const auto t = static_cast<int>(item >> 32);
      in_order = in_order && static_cast<int>(item & 0xffffffff) == next[t];
      ++next[t];
    }
    received += static_cast<int>(batch.size());
  }
  for (auto& p : producers) p.join();
  CHECK(in_order);
  CHECK(received == kThreads * kPerThread);
  CHECK(wakeups <= received);
  queue.drain(batch);
  CHECK(batch.empty());
}

TEST_CASE("redis: one-shot latch hands a value across threads", "[redis][completions]") {
  auto latch = std::make_shared<OneShot<std::string>>();
  std::thread setter([latch] { latch->set("done"); });
  CHECK(latch->wait() == "done");
  setter.join();
  CHECK_FALSE(latch->set("again"));

  OneShot<int> never;
  CHECK_FALSE(never.wait_for(1'000'000).has_value());  // 1 ms deadline, not a hang
  never.set(7);
  CHECK(never.wait_for(0) == 7);
}
