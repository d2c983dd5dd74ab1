#include "herdcache/io_thread.hpp"

#include <fmt/format.h>

#include "herdcache/errors.hpp"

namespace herdcache {

int poll_timeout_ms(Nanos now, Nanos wake_at) noexcept {
  constexpr Nanos kMs = 1'000'000;
  if (wake_at == kNoWakeup) return -1;
  if (wake_at <= now) return 0;
  const Nanos ms = (wake_at - now + kMs - 1) / kMs;
  return ms > 60'000 ? 60'000 : static_cast<int>(ms);
}

void IoThread::start(std::function<void()> loop) {
  thread_ = std::thread([this, loop = std::move(loop)] {
    id_.store(std::this_thread::get_id());
    loop();
    // A finished thread's id may be given to a new thread (glibc reuses them): one that
    // later calls stop(), a garbage collection that destroys the owner, say, must not be
    // taken for this one.
    id_.store(std::thread::id{});
  });
}

bool IoThread::stop(std::string_view owner) {
  if (on_thread()) throw Error(fmt::format("{}::close() called from its own I/O thread (a callback)", owner));
  std::lock_guard lock(stop_mu_);
  if (stopping_.exchange(true)) return false;
  wake_.notify();
  if (thread_.joinable()) thread_.join();
  return true;
}

}  // namespace herdcache
