// Handing results from one thread to another without a wakeup per result.
//
// `WakeQueue<T>` is a mutex-protected batch plus an eventfd. push() from any thread
// writes the eventfd only if it has not been written since the consumer's last drain;
// the consumer polls the fd (asyncio: loop.add_reader; the Redis I/O thread: poll) and
// drain() takes the whole batch at once. Under load many pushes share one wakeup and one
// drain, which is what keeps the Python loop from taking the GIL per Redis reply.
// push_quiet() queues without writing it: the producer calls wake() a little later, once
// for a whole burst (any ordinary push meanwhile wakes the consumer all the same).
//
// The order in drain() matters: it clears the eventfd *before* swapping the batch out.
// A push that lands after the swap sees no wakeup pending and writes the eventfd again,
// so nothing is ever left in the queue without a pending wakeup, except quiet pushes
// until their wake(); the opposite order could lose one. The price is an occasional
// spurious wakeup with an empty batch.
//
// `OneShot<T>` is the sync caller's side: one value, set once from any thread, waited
// for (with or without a deadline) by another.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "herdcache/clock.hpp"

namespace herdcache {

// An eventfd (non-blocking, close-on-exec): a counter that is readable while non-zero.
class EventFd {
 public:
  EventFd();  // throws Error if the kernel refuses
  ~EventFd();
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;

  int fd() const noexcept { return fd_; }
  void notify() noexcept;  // makes fd() readable
  void clear() noexcept;   // makes it unreadable again (reads the counter)

 private:
  int fd_;
};

template <class T>
class WakeQueue {
 public:
  // Appends; wakes the consumer unless a wakeup is pending already. Any thread.
  void push(T item) {
    if (append(std::move(item), true)) event_.notify();
  }
  // Appends without waking the consumer: wake() must follow. Any thread.
  void push_quiet(T item) { append(std::move(item), false); }
  // Wakes the consumer if something is queued and no wakeup is pending. Any thread.
  void wake() {
    bool notify;
    {
      std::lock_guard lock(mu_);
      notify = !items_.empty() && !woken_;
      woken_ = woken_ || notify;
    }
    if (notify) event_.notify();
  }

  // Replaces `out` with everything queued (possibly nothing), oldest first. `out`'s old
  // capacity is kept for the next batch. Consumer thread only.
  void drain(std::vector<T>& out) {
    out.clear();
    event_.clear();  // before the swap: see the header comment
    std::lock_guard lock(mu_);
    out.swap(items_);
    woken_ = false;
  }

  std::vector<T> drain() {
    std::vector<T> out;
    drain(out);
    return out;
  }

  // Readable while a batch may be waiting: for poll / loop.add_reader.
  int fd() const noexcept { return event_.fd(); }

 private:
  // Returns whether the caller must notify (a waking push with no wakeup pending).
  bool append(T&& item, bool waking) {
    std::lock_guard lock(mu_);
    items_.push_back(std::move(item));
    bool notify = waking && !woken_;
    woken_ = woken_ || notify;
    return notify;
  }

  EventFd event_;
  std::mutex mu_;
  std::vector<T> items_;  // bounded by what producers have outstanding (their job)
  bool woken_ = false;    // the eventfd was written since the last drain
};

// What the asyncio bridge carries: which request finished, and how.
template <class Result>
struct Completion {
  std::uint64_t request_id;
  Result result;
};

template <class Result>
using CompletionQueue = WakeQueue<Completion<Result>>;

// A single value handed from one thread to one waiter (a sync caller blocked with the
// GIL released). Share it through a shared_ptr so the setter never outlives it.
template <class T>
class OneShot {
 public:
  // The first set wins; later ones are ignored (returns false).
  bool set(T value) {
    {
      std::lock_guard lock(mu_);
      if (value_) return false;
      value_.emplace(std::move(value));
    }
    cv_.notify_all();
    return true;
  }

  // Blocks until set; moves the value out (wait once).
  T wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return value_.has_value(); });
    return std::move(*value_);
  }

  // Blocks at most `timeout_ns`; nullopt if not set by then.
  std::optional<T> wait_for(Nanos timeout_ns) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::nanoseconds(timeout_ns),
                      [&] { return value_.has_value(); })) {
      return std::nullopt;
    }
    return std::move(*value_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<T> value_;
};

}  // namespace herdcache
