// The thread a connection (Redis client, Redis subscriber, PostgreSQL listener) runs its
// loop on, and how it stops. stop() is idempotent: it raises the stopping flag, makes
// wake_fd() readable so the loop's poll() returns, and joins. Called from the loop's own
// thread (from a callback) it would wait for itself forever, so it throws there instead.
#pragma once
#include <atomic>
#include <functional>
#include <limits>
#include <mutex>
#include <string_view>
#include <thread>

#include "herdcache/completions.hpp"

namespace herdcache {

inline constexpr Nanos kNoWakeup = std::numeric_limits<Nanos>::max();  // no timer pending
// poll()'s timeout from `now` until `wake_at`: rounded up (a loop never wakes too early),
// -1 for kNoWakeup, at most a minute.
int poll_timeout_ms(Nanos now, Nanos wake_at) noexcept;

class IoThread {
 public:
  IoThread() = default;
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  // Runs `loop` on a new thread; the loop returns once stopping() is true.
  void start(std::function<void()> loop);
  // False when it was stopped already. `owner` names the class in the error message.
  bool stop(std::string_view owner);

  bool stopping() const noexcept { return stopping_.load(); }
  bool on_thread() const noexcept { return std::this_thread::get_id() == id_.load(); }
  int wake_fd() const noexcept { return wake_.fd(); }  // poll it: readable after stop()

 private:
  EventFd wake_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::thread::id> id_{};  // set by the thread itself
  std::mutex stop_mu_;
  std::thread thread_;
};

}  // namespace herdcache
