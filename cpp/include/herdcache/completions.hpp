// Handing results from one thread to another without a wakeup per result.
//
// `WakeQueue<T>` is a mutex-protected batch plus an eventfd. push() from any thread
// writes the eventfd only when the queue goes from empty to non-empty; the consumer
// polls the fd (asyncio: loop.add_reader; the Redis I/O thread: poll) and drain() takes
// the whole batch at once. Under load many pushes share one wakeup and one drain, which
// is what keeps the Python loop from taking the GIL per Redis reply.
//
// The order in drain() matters: it clears the eventfd *before* swapping the batch out.
// A push that lands after the swap saw an empty queue and writes the eventfd again, so
// nothing is ever left in the queue without a pending wakeup; the opposite order could
// lose one. The price is an occasional spurious wakeup with an empty batch.
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
  // Appends; wakes the consumer if the queue was empty. Any thread.
  void push(T item) {
    bool was_empty;
    {
      std::lock_guard lock(mu_);
      was_empty = items_.empty();
      items_.push_back(std::move(item));
    }
    if (was_empty) event_.notify();
  }

  // Replaces `out` with everything queued (possibly nothing), oldest first. `out`'s old
  // capacity is kept for the next batch. Consumer thread only.
  void drain(std::vector<T>& out) {
    out.clear();
    event_.clear();  // before the swap: see the header comment
    std::lock_guard lock(mu_);
    out.swap(items_);
  }

  std::vector<T> drain() {
    std::vector<T> out;
    drain(out);
    return out;
  }

  // Readable while a batch may be waiting: for poll / loop.add_reader.
  int fd() const noexcept { return event_.fd(); }

 private:
  EventFd event_;
  std::mutex mu_;
  std::vector<T> items_;  // bounded by what producers have outstanding (their job)
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
