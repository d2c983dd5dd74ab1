// One non-blocking socket to a Redis server (TCP or Unix), with its output buffer and
// reply parser. No threads and no policy (timeouts, retries, matching replies to
// requests): the client and the subscriber drive it from their own I/O loops with poll.
#pragma once
#include <poll.h>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "herdcache/errors.hpp"
#include "herdcache/redis_url.hpp"
#include "herdcache/resp.hpp"

namespace herdcache {

// The socket failed: resolution, refused, reset, closed by the server.
class ConnectionError : public Error {
 public:
  using Error::Error;
};

// A file descriptor that closes itself.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  int get() const noexcept { return fd_; }
  int release() noexcept;
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

class RedisConnection {
 public:
  enum class Progress { Connected, InProgress };

  // Resolves the address (getaddrinfo: blocking, on the caller's I/O thread) and starts
  // a non-blocking connect to the first address. InProgress: poll fd() for POLLOUT, then
  // call finish_connect(). Throws ConnectionError when no address can be tried.
  Progress connect(const RedisUrl& url);
  // After POLLOUT/POLLERR while connecting. A refused address moves on to the next one
  // (InProgress again); throws ConnectionError when none is left.
  Progress finish_connect();

  // Closes the socket, drops unsent output and unparsed input.
  void close() noexcept;
  bool is_open() const noexcept { return fd_.get() >= 0; }
  int fd() const noexcept { return fd_.get(); }

  // Append encoded commands here (append_command); flush() sends them.
  std::string& output() noexcept { return out_; }
  bool wants_write() const noexcept { return out_sent_ < out_.size(); }
  // What to poll fd() for: writability while connecting, else replies and any backlog.
  short poll_events(bool connecting) const noexcept {
    if (connecting) return POLLOUT;
    return static_cast<short>(POLLIN | (wants_write() ? POLLOUT : 0));
  }
  // Writes until everything is sent or the socket would block. Throws ConnectionError.
  void flush();

  // One recv (up to 16 KiB, the size hiredis' reader digests best) fed to the parser.
  // False when nothing was available. Throws ConnectionError on EOF or a socket error.
  bool read_some();
  // The next whole reply read so far. Throws ProtocolError.
  std::optional<Reply> next_reply() { return parser_.next(); }

 private:
  Progress try_addresses();

  UniqueFd fd_;
  std::vector<std::vector<unsigned char>> addresses_;  // sockaddr bytes, in order
  std::size_t next_address_ = 0;
  std::string last_error_;
  std::string describe_;  // for error messages
  bool tcp_ = true;

  std::string out_;
  std::size_t out_sent_ = 0;
  RespParser parser_;
};

// The commands a new connection sends before anything else: AUTH when a password is
// set (with the username when there is one), SELECT when db is not 0.
std::vector<std::vector<std::string>> handshake_commands(const RedisUrl& url);

}  // namespace herdcache
