#include "herdcache/io_thread.hpp"

#include <fmt/format.h>

#include "herdcache/errors.hpp"

namespace herdcache {

void IoThread::start(std::function<void()> loop) {
  thread_ = std::thread([this, loop = std::move(loop)] {
    id_.store(std::this_thread::get_id());
    loop();
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
