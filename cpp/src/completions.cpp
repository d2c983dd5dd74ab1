#include "herdcache/completions.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "herdcache/errors.hpp"

namespace herdcache {

EventFd::EventFd() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) throw Error(fmt::format("eventfd: {}", std::strerror(errno)));
}

EventFd::~EventFd() { ::close(fd_); }

void EventFd::notify() noexcept {
  const std::uint64_t one = 1;
  // Only EAGAIN (counter at its maximum: already readable) can happen; nothing to do.
  while (::write(fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

void EventFd::clear() noexcept {
  std::uint64_t count;
  // EAGAIN: the counter was already zero.
  while (::read(fd_, &count, sizeof(count)) < 0 && errno == EINTR) {
  }
}

}  // namespace herdcache
