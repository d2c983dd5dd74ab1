#include "herdcache/redis_connection.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace herdcache {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

int UniqueFd::release() noexcept {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

namespace {

constexpr std::size_t kReadChunk = 16 * 1024;
// After a large write, give back the buffer's memory instead of keeping 8 MB around.
constexpr std::size_t kKeepOutputCapacity = 1 << 20;

std::string errno_text(int err) { return std::strerror(err); }

std::vector<unsigned char> as_bytes(const void* addr, std::size_t len) {
  const auto* p = static_cast<const unsigned char*>(addr);
  return {p, p + len};
}

bool same_tls_settings(const RedisUrl& a, const RedisUrl& b) {
  return a.tls_ca_file == b.tls_ca_file && a.tls_cert_file == b.tls_cert_file &&
         a.tls_key_file == b.tls_key_file && a.tls_verify_peer == b.tls_verify_peer;
}

}  // namespace

RedisConnection::Progress RedisConnection::connect(const RedisUrl& url) {
  close();
  addresses_.clear();
  next_address_ = 0;
  last_error_.clear();
  describe_ = url.describe();
  url_ = url;
  if (url.tls && (!tls_context_ || !same_tls_settings(url, tls_context_url_))) {
    tls_context_.reset();
    try {
      tls_context_ = std::make_unique<TlsContext>(url);
    } catch (const TlsError& e) {
      tls_failed(e, "TLS setup failed");
    }
    tls_context_url_ = url;
  }

  if (url.transport == RedisUrl::Transport::Unix) {
    tcp_ = false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (url.path.size() >= sizeof(addr.sun_path)) {
      throw ConnectionError(fmt::format("{}: socket path too long", describe_));
    }
    std::memcpy(addr.sun_path, url.path.data(), url.path.size());
    addresses_.push_back(as_bytes(&addr, sizeof(addr)));
  } else {
    tcp_ = true;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(url.port);
    const int rc = ::getaddrinfo(url.host.c_str(), port.c_str(), &hints, &found);
    if (rc != 0) {
      throw ConnectionError(fmt::format("{}: cannot resolve host: {}", describe_, gai_strerror(rc)));
    }
    for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
      addresses_.push_back(as_bytes(ai->ai_addr, ai->ai_addrlen));
    }
    ::freeaddrinfo(found);
  }
  return try_addresses();
}

RedisConnection::Progress RedisConnection::try_addresses() {
  while (next_address_ < addresses_.size()) {
    const auto& addr = addresses_[next_address_++];
    const auto* sa = reinterpret_cast<const sockaddr*>(addr.data());
    UniqueFd fd(::socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
      last_error_ = errno_text(errno);
      continue;
    }
    if (tcp_) {
      const int one = 1;
      // Pipelined batches are written whole; Nagle would only add latency.
      ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      ::setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    }
    if (::connect(fd.get(), sa, static_cast<socklen_t>(addr.size())) == 0) {
      fd_ = std::move(fd);
      return connected();
    }
    if (errno == EINPROGRESS) {
      fd_ = std::move(fd);
      return Progress::InProgress;
    }
    // Unix sockets answer EAGAIN when the listen backlog is full: a failure like any other.
    last_error_ = errno_text(errno);
  }
  throw ConnectionError(fmt::format("{}: connect failed: {}", describe_, last_error_));
}

RedisConnection::Progress RedisConnection::finish_connect() {
  if (tls_) return continue_tls();
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err == 0) return connected();
  last_error_ = errno_text(err);
  fd_.reset();
  return try_addresses();
}

RedisConnection::Progress RedisConnection::connected() {
  if (!url_.tls) return Progress::Connected;
  try {
    tls_ = std::make_unique<TlsSession>(*tls_context_, fd_.get(), url_);
  } catch (const TlsError& e) {
    tls_failed(e, "TLS setup failed");
  }
  return continue_tls();
}

RedisConnection::Progress RedisConnection::continue_tls() {
  TlsSession::Status status;
  try {
    status = tls_->handshake();
  } catch (const TlsError& e) {
    tls_failed(e, "");
  }
  handshake_wants_read_ = status == TlsSession::Status::WantRead;
  return status == TlsSession::Status::Done ? Progress::Connected : Progress::InProgress;
}

void RedisConnection::tls_failed(const TlsError& e, std::string_view doing) {
  if (doing.empty()) throw ConnectionError(fmt::format("{}: {}", describe_, e.what()));
  throw ConnectionError(fmt::format("{}: {}: {}", describe_, doing, e.what()));
}

void RedisConnection::close() noexcept {
  if (tls_) tls_->shutdown();
  tls_.reset();
  handshake_wants_read_ = false;
  read_wants_write_ = false;
  fd_.reset();
  out_.clear();
  if (out_.capacity() > kKeepOutputCapacity) std::string().swap(out_);
  out_sent_ = 0;
  parser_.reset();
}

void RedisConnection::flush() {
  while (tls_ && out_sent_ < out_.size()) {
    TlsSession::Io io;
    try {
      io = tls_->write(out_.data() + out_sent_, out_.size() - out_sent_);
    } catch (const TlsError& e) {
      tls_failed(e, "");
    }
    if (io.status == TlsSession::Status::Closed) {
      throw ConnectionError(fmt::format("{}: connection closed by the server", describe_));
    }
    if (io.status != TlsSession::Status::Done) break;  // poll_events asks for POLLIN|POLLOUT
    out_sent_ += io.bytes;
  }
  while (!tls_ && out_sent_ < out_.size()) {
    const ssize_t n = ::send(fd_.get(), out_.data() + out_sent_, out_.size() - out_sent_,
                             MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      throw ConnectionError(fmt::format("{}: write failed: {}", describe_, errno_text(errno)));
    }
    out_sent_ += static_cast<std::size_t>(n);
  }
  if (out_sent_ == out_.size()) {
    out_.clear();
    out_sent_ = 0;
    if (out_.capacity() > kKeepOutputCapacity) std::string().swap(out_);
  } else if (out_sent_ >= kReadChunk && out_sent_ >= out_.size() / 2) {
    out_.erase(0, out_sent_);  // keep appends cheap while a big batch drains
    out_sent_ = 0;
  }
}

bool RedisConnection::read_some() {
  char buf[kReadChunk];
  if (tls_) {
    read_wants_write_ = false;
    try {
      bool any = false;
      do {  // until the session holds nothing decrypted: poll() cannot see what it holds
        const TlsSession::Io io = tls_->read(buf, sizeof(buf));
        if (io.status == TlsSession::Status::Closed) {
          throw ConnectionError(fmt::format("{}: connection closed by the server", describe_));
        }
        if (io.status != TlsSession::Status::Done) {
          read_wants_write_ = io.status == TlsSession::Status::WantWrite;
          break;
        }
        parser_.feed(std::string_view(buf, io.bytes));
        any = true;
      } while (tls_->pending());
      return any;
    } catch (const TlsError& e) {
      tls_failed(e, "");
    }
  }
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      parser_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
      return true;
    }
    if (n == 0) throw ConnectionError(fmt::format("{}: connection closed by the server", describe_));
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    throw ConnectionError(fmt::format("{}: read failed: {}", describe_, errno_text(errno)));
  }
}

std::vector<std::vector<std::string>> handshake_commands(const RedisUrl& url) {
  std::vector<std::vector<std::string>> commands;
  if (!url.password.empty()) {
    if (url.username.empty()) {
      commands.push_back({"AUTH", url.password});
    } else {
      commands.push_back({"AUTH", url.username, url.password});
    }
  }
  if (url.db != 0) commands.push_back({"SELECT", std::to_string(url.db)});
  return commands;
}

}  // namespace herdcache
