// Test helper: a real redis-server on a free loopback port (never a fixed one), started
// and stopped by the test itself. Readiness is a notification, not a polling sleep: the
// server's log is read through a pipe; start() returns when it says "Ready to accept".
#pragma once
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "herdcache/resp.hpp"

extern char** environ;

namespace herdcache::testing {

// A port nothing listens on right now (the kernel's choice for 127.0.0.1:0).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    throw std::runtime_error("bind 127.0.0.1:0 failed");
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A temporary directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "herdcache-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

class RedisServer {
 public:
  // extra: more command-line options, e.g. {"--requirepass", "secret"}.
  explicit RedisServer(std::vector<std::string> extra = {}, int port = free_port())
      : port_(port), extra_(std::move(extra)) {
    start();
  }
  // `redis-server <config_file> --sentinel`: a sentinel (it rewrites the file it is given).
  static RedisServer sentinel(std::string config_file, int port = free_port()) {
    return RedisServer(SentinelMode{}, std::move(config_file), port);
  }
  ~RedisServer() { kill(SIGTERM); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  void start() {
    std::vector<std::string> args = {"redis-server"};
    args.insert(args.end(), leading_.begin(), leading_.end());
    args.insert(args.end(), {"--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--daemonize", "no", "--enable-debug-command", "local"});
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);

    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDERR_FILENO);
    const int rc = ::posix_spawnp(&pid_, "redis-server", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (rc != 0) {
      ::close(out[0]);
      throw std::runtime_error("cannot start redis-server");
    }
    {
      std::lock_guard lock(mu_);
      ready_ = false;
      exited_ = false;
      log_.clear();
    }
    reader_ = std::thread([this, fd = out[0]] { read_log(fd); });

    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(10), [&] { return ready_ || exited_; }) ||
        !ready_) {
      const std::string log = log_;
      lock.unlock();
      kill(SIGKILL);
      throw std::runtime_error("redis-server did not become ready:\n" + log);
    }
  }

  // SIGKILL: a crash, nothing flushed or closed politely. Waits for the process to exit.
  void kill(int signal = SIGKILL) {
    if (pid_ <= 0) return;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    if (reader_.joinable()) reader_.join();  // the pipe reaches EOF with the process
  }

  std::string log() const {
    std::lock_guard lock(mu_);
    return log_;
  }

 private:
  struct SentinelMode {};
  RedisServer(SentinelMode, std::string config_file, int port)
      : port_(port), leading_{std::move(config_file), "--sentinel"}, ready_line_("+monitor master") {
    start();
  }

  void read_log(int fd) {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      std::lock_guard lock(mu_);
      if (log_.size() < (1 << 20)) log_.append(buf, static_cast<std::size_t>(n));
      if (log_.find(ready_line_) != std::string::npos) ready_ = true;
      cv_.notify_all();
    }
    ::close(fd);
    std::lock_guard lock(mu_);
    exited_ = true;
    cv_.notify_all();
  }

  int port_;
  std::vector<std::string> extra_;
  std::vector<std::string> leading_;  // before the options: a sentinel's config file
  std::string ready_line_ = "Ready to accept connections";  // the log line that says so
  pid_t pid_ = -1;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;
  bool exited_ = false;
  std::string log_;
};

// State that other threads (Redis callbacks) change and a test waits on, with a deadline.
template <class T>
class Observed {
 public:
  // Changes the state under the lock and wakes waiters.
  template <class F>
  void update(F&& change) {
    {
      std::lock_guard lock(mu_);
      change(value_);
    }
    cv_.notify_all();
  }
  // True once pred(state) holds; false if it still does not at the deadline.
  template <class P>
  bool wait_for(P&& pred, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return pred(value_); });
  }
  T get() const {
    std::lock_guard lock(mu_);
    return value_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  T value_{};
};

// A scripted stand-in for a Redis server, for what a real one will not do on demand:
// cut a connection in the middle of a reply, send bytes that are not RESP. The handler
// runs once per accepted connection (one at a time) on the server's thread; the socket
// is closed when it returns.
class FakeServer {
 public:
  using Handler = std::function<void(int fd, int connection_index)>;

  explicit FakeServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_fd_, 8) != 0) {
      throw std::runtime_error("fake server: bind/listen failed");
    }
    socklen_t len = sizeof(addr);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    if (::pipe2(stop_, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeServer() {
    (void)!::write(stop_[1], "x", 1);
    thread_.join();
    ::close(listen_fd_);
    ::close(stop_[0]);
    ::close(stop_[1]);
  }
  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  // Reads until `count` whole commands arrived (or EOF / 5 s of silence): what a handler
  // uses to wait for the client. Commands are RESP arrays, so RespParser reads them too.
  static std::vector<Reply> read_commands(int fd, RespParser& parser, std::size_t count) {
    std::vector<Reply> commands;
    while (commands.size() < count) {
      while (commands.size() < count) {
        auto command = parser.next();
        if (!command) break;
        commands.push_back(std::move(*command));
      }
      if (commands.size() == count) break;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 5000) != 1) break;
      char buf[16384];
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      parser.feed(std::string_view(buf, static_cast<std::size_t>(n)));
    }
    return commands;
  }
  static void write_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

 private:
  void serve() {
    for (int index = 0;; ++index) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) continue;
      if ((fds[1].revents & POLLIN) != 0) return;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      handler_(fd, index);
      ::close(fd);
    }
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  int stop_[2] = {-1, -1};
  std::thread thread_;
};

}  // namespace herdcache::testing
