// One non-blocking socket to a Redis server (TCP, TLS over TCP, or Unix), with its output
// buffer and reply parser. No threads and no policy (timeouts, retries, matching replies
// to requests): the client and the subscriber drive it from their own I/O loops with poll.
// With rediss:// "connecting" lasts until the TLS handshake is done; poll_events() and
// readable() hide which way the TLS layer needs the socket.
#pragma once
#include <poll.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "herdcache/errors.hpp"
#include "herdcache/redis_url.hpp"
#include "herdcache/resp.hpp"
#include "herdcache/tls.hpp"

namespace herdcache {

// The socket failed: resolution, refused, reset, closed by the server, or its TLS layer did
// (handshake, certificate verification).
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
  // a non-blocking connect to the first address. InProgress: poll fd() for
  // poll_events(true), then call finish_connect(). Throws ConnectionError when no address
  // can be tried. The first rediss:// connect loads the URL's CAs and certificates
  // (blocking file reads); later ones reuse them.
  Progress connect(const RedisUrl& url);
  // After any event while connecting. A refused address moves on to the next one
  // (InProgress again); throws ConnectionError when none is left, or when the TLS
  // handshake fails (the message says why: "certificate verify failed: ...").
  Progress finish_connect();

  // Closes the socket (a TLS session sends close_notify if it can without waiting), drops
  // unsent output and unparsed input.
  void close() noexcept;
  bool is_open() const noexcept { return fd_.get() >= 0; }
  // While connecting, what is under way, for timeout messages.
  const char* connect_stage() const noexcept { return tls_ ? "TLS handshake" : "connect"; }
  int fd() const noexcept { return fd_.get(); }

  // Append encoded commands here (append_command); flush() sends them.
  std::string& output() noexcept { return out_; }
  bool wants_write() const noexcept { return out_sent_ < out_.size(); }
  // What to poll fd() for: while connecting, writability (or what the TLS handshake waits
  // for); then replies and any backlog (and writability when TLS must write to read).
  short poll_events(bool connecting) const noexcept {
    if (connecting) return handshake_wants_read_ ? POLLIN : POLLOUT;
    return static_cast<short>(POLLIN | (wants_write() || read_wants_write_ ? POLLOUT : 0));
  }
  // Whether poll's `revents` call for read_some().
  bool readable(short revents) const noexcept {
    return (revents & (POLLIN | POLLERR | POLLHUP)) != 0 || (read_wants_write_ && (revents & POLLOUT) != 0);
  }
  // Writes until everything is sent or the socket would block. Throws ConnectionError.
  void flush();

  // One recv (up to 16 KiB, the size hiredis' reader digests best) fed to the parser; with
  // TLS one record, and whatever else the session holds decrypted (poll cannot see it).
  // False when nothing was available. Throws ConnectionError on EOF or a socket error.
  bool read_some();
  // The next whole reply read so far. Throws ProtocolError.
  std::optional<Reply> next_reply() { return parser_.next(); }

 private:
  Progress try_addresses();
  Progress connected();       // TCP is up: done, or start TLS
  Progress continue_tls();    // the handshake, as far as it goes now
  [[noreturn]] void tls_failed(const TlsError& e, std::string_view doing);

  UniqueFd fd_;
  std::vector<std::vector<unsigned char>> addresses_;  // sockaddr bytes, in order
  std::size_t next_address_ = 0;
  std::string last_error_;
  std::string describe_;  // for error messages
  bool tcp_ = true;

  RedisUrl url_;                             // of the last connect()
  std::unique_ptr<TlsContext> tls_context_;  // rediss://: kept across reconnects
  RedisUrl tls_context_url_;                 // what tls_context_ was made from
  std::unique_ptr<TlsSession> tls_;          // rediss://: this connection's session
  bool handshake_wants_read_ = false;
  bool read_wants_write_ = false;

  std::string out_;
  std::size_t out_sent_ = 0;
  RespParser parser_;
};

// The commands a new connection sends before anything else: AUTH when a password is
// set (with the username when there is one), SELECT when db is not 0.
std::vector<std::vector<std::string>> handshake_commands(const RedisUrl& url);

}  // namespace herdcache
