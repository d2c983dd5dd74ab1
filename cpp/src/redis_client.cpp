// RedisClient's I/O thread. The design (pipelining, timeouts, reconnects, breaker) is
// described at the top of redis.hpp; this file is the state machine that implements it.
//
//   Backoff --attempt--> Connecting --socket writable--> Handshaking --last reply--> Ready
//      ^                     |                               |                        |
//      +---------------------+-------- any failure ----------+------------------------+
//
// It stays one file, though long, because it is one state machine: every transition
// touches the same connection, the FIFO of requests in flight and the timers, and split
// across files the machine could no longer be read in one place.
//
// Everything below `// I/O thread only` in Impl is touched by the I/O thread alone and
// needs no lock. The threads meet in three places: the inbox (WakeQueue), a few atomics
// (accepting_, io_.stopping(), pending_, in_submit_), and the stats snapshot behind stats_mu_.
#include <poll.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "herdcache/io_thread.hpp"
#include "herdcache/breaker.hpp"
#include "herdcache/completions.hpp"
#include "herdcache/redis.hpp"
#include "herdcache/redis_connection.hpp"
#include "herdcache/reply_errors.hpp"
#include "herdcache/sentinel.hpp"

namespace herdcache {

namespace {

constexpr Nanos kMs = 1'000'000;
constexpr int kReadsPerWakeup = 64;  // x 16 KiB: bounded work before timers run again

struct Request {
  Command command;
  RedisClient::Callback cb;
  Nanos deadline;
};

// A written command whose reply has not arrived yet.
struct InFlight {
  enum class Kind : std::uint8_t { User, Handshake, Health, Probe };
  Kind kind;
  bool done;  // answered already (timed out): its reply is read and dropped
  Nanos sent;
  Nanos deadline;
  RedisClient::Callback cb;  // User only
};


}  // namespace

namespace {
thread_local int deferring = 0;  // DeferWakeups scopes open on this thread
}  // namespace

RedisClient::DeferWakeups::DeferWakeups() noexcept { ++deferring; }
RedisClient::DeferWakeups::~DeferWakeups() { --deferring; }

class RedisClient::Impl {
 public:
  Impl(RedisUrl url, RedisOptions options, EventCallback on_event,
       std::shared_ptr<const Clock> clock, std::shared_ptr<SentinelResolver> sentinel)
      : url_(std::move(url)),
        opt_(validated(options)),
        clock_(std::move(clock)),
        events_(std::move(on_event)),
        master_(url_, std::move(sentinel), opt_, clock_),
        breaker_(BreakerOptions{opt_.breaker_failures, opt_.breaker_open_ms}, clock_),
        backoff_(opt_.backoff_initial_ms, opt_.backoff_max_ms, std::random_device{}()) {
    io_.start([this] { run(); });
  }

  ~Impl() { close(); }

  void submit(Command command, Callback cb);
  void wake() { inbox_.wake(); }
  void close();
  RedisHealth health() const;
  const RedisUrl& url() const noexcept { return url_; }
  bool on_io_thread() const noexcept { return io_.on_thread(); }

 private:
  enum class Phase : std::uint8_t { Backoff, Connecting, Handshaking, Ready };

  static const RedisOptions& validated(const RedisOptions& options) {
    options.validate();
    return options;
  }

  // Calls a callback; the pending slot is released first so the callback can submit.
  void complete(Callback& cb, RedisResult result) noexcept {
    pending_.fetch_sub(1, std::memory_order_relaxed);
    cb(std::move(result));  // noexcept context: a throwing callback terminates
  }

  void run();
  Nanos next_wakeup() const;
  void on_timers(Nanos now);
  void on_socket(short revents, Nanos now);
  void intake(Nanos now);
  void flush();
  void read_replies(Nanos now);
  void on_reply(Reply reply, Nanos now, bool& live);
  void expire(Nanos now);
  void start_attempt(Nanos now);
  void begin_handshake(Nanos now);
  void on_ready(Nanos now, Nanos handshake_sent);
  void send(Request&& request, Nanos now);
  void send_internal(InFlight::Kind kind, Nanos now);
  void fail_connection(RedisErrorKind kind, const std::string& why);
  void on_master_change(Nanos now);
  void sync_breaker();
  void shutdown();

  const RedisUrl url_;
  const RedisOptions opt_;
  const std::shared_ptr<const Clock> clock_;
  ConnectionReporter events_;
  MasterFollower master_;  // where to connect (the URL, or the master Sentinel names)

  // Shared with submitting threads.
  WakeQueue<Request> inbox_;
  std::atomic<bool> accepting_{true};  // mirrors "breaker closed" for submit()
  IoThread io_;  // the loop's thread; io_.stopping() once close() began
  std::atomic<std::size_t> pending_{0};
  ReplyErrorCounts reply_errors_;  // every error reply, by kind (health())
  std::atomic<int> in_submit_{0};  // submits between their io_.stopping() check and their push
  mutable std::mutex stats_mu_;
  RedisHealth stats_;

  // I/O thread only.
  RedisConnection conn_;
  RedisUrl target_ = url_;  // what conn_ connects to (the URL, or the master resolved for it)
  bool awaiting_master_ = false;  // Connecting with no socket: the resolver's first round runs
  Phase phase_ = Phase::Backoff;
  Nanos next_attempt_ = 0;    // Backoff: when to try again
  Nanos phase_deadline_ = 0;  // Connecting/Handshaking: give up then
  std::deque<Request> waiting_;     // submitted while connecting: sent once ready
  std::deque<InFlight> in_flight_;  // written, reply pending, in wire order
  std::size_t unexpired_ = 0;       // in_flight_[0, unexpired_) are past their deadline
  std::size_t handshake_left_ = 0;
  Nanos last_read_ = 0;
  Nanos next_health_ = 0;
  bool health_out_ = false;
  bool probe_out_ = false;
  bool ever_ready_ = false;
  CircuitBreaker breaker_;
  Backoff backoff_;
  std::vector<Request> batch_;
};

// ---------------------------------------------------------------------------------------
// Any thread

void RedisClient::Impl::submit(Command command, Callback cb) {
  if (command.empty()) throw InvalidArgument("a Redis command needs at least one argument");
  if (!cb) throw InvalidArgument("RedisClient::submit needs a callback");
  // close() waits for in_submit_ to reach 0 after io_.stop() raised the flag, then drains the inbox
  // one last time: a submit either sees it or is drained (both seq_cst).
  in_submit_.fetch_add(1);
  struct Leave {
    std::atomic<int>& n;
    ~Leave() { n.fetch_sub(1); }
  } leave{in_submit_};

  if (io_.stopping()) {
    pending_.fetch_add(1, std::memory_order_relaxed);
    complete(cb, RedisResult::failure(RedisErrorKind::Disconnected, "client closed"));
    return;
  }
  auto refuse = [&](RedisErrorKind kind, const char* why) {
    {
      std::lock_guard lock(stats_mu_);
      ++stats_.rejected;
    }
    pending_.fetch_add(1, std::memory_order_relaxed);
    complete(cb, RedisResult::failure(kind, why));
  };
  if (!accepting_.load(std::memory_order_acquire)) {
    return refuse(RedisErrorKind::CircuitOpen, "circuit breaker open: redis is failing");
  }
  if (pending_.fetch_add(1, std::memory_order_relaxed) >= opt_.max_pending) {
    pending_.fetch_sub(1, std::memory_order_relaxed);
    return refuse(RedisErrorKind::Overloaded, "too many pending requests (max_pending)");
  }
  const Nanos deadline = clock_->monotonic_ns() + opt_.command_timeout_ms * kMs;
  if (deferring > 0) {
    inbox_.push_quiet(Request{std::move(command), std::move(cb), deadline});
  } else {
    inbox_.push(Request{std::move(command), std::move(cb), deadline});
  }
}

void RedisClient::Impl::close() {
  if (!io_.stop("RedisClient")) return;
  while (in_submit_.load() != 0) std::this_thread::yield();  // a few instructions at most
  for (auto& request : inbox_.drain()) {
    complete(request.cb, RedisResult::failure(RedisErrorKind::Disconnected, "client closed"));
  }
}

RedisHealth RedisClient::Impl::health() const {
  std::lock_guard lock(stats_mu_);
  RedisHealth health = stats_;
  health.pending = pending_.load(std::memory_order_relaxed);
  health.error_replies = reply_errors_.snapshot();
  return health;
}

// ---------------------------------------------------------------------------------------
// The loop

void RedisClient::Impl::run() {
  next_attempt_ = clock_->monotonic_ns();
  while (!io_.stopping()) {
    Nanos now = clock_->monotonic_ns();
    on_timers(now);
    if (conn_.is_open() && phase_ != Phase::Connecting && conn_.wants_write()) flush();

    pollfd fds[4] = {{inbox_.fd(), POLLIN, 0}, {io_.wake_fd(), POLLIN, 0}, {master_.fd(), POLLIN, 0}, {-1, 0, 0}};
    nfds_t count = 3;
    if (conn_.is_open()) fds[count++] = {conn_.fd(), conn_.poll_events(phase_ == Phase::Connecting), 0};
    const int ready = ::poll(fds, count, poll_timeout_ms(now, next_wakeup()));
    if (ready <= 0) continue;  // timeout (timers run next iteration) or EINTR
    if (io_.stopping()) break;
    now = clock_->monotonic_ns();
    if ((fds[2].revents & POLLIN) != 0) on_master_change(now);
    if (count == 4 && fds[3].revents != 0) on_socket(fds[3].revents, now);
    if ((fds[0].revents & POLLIN) != 0) intake(now);
    if (conn_.is_open() && phase_ != Phase::Connecting && conn_.wants_write()) flush();
  }
  shutdown();
}

Nanos RedisClient::Impl::next_wakeup() const {
  Nanos at = kNoWakeup;
  auto consider = [&](Nanos t) { at = t < at ? t : at; };
  if (!waiting_.empty()) consider(waiting_.front().deadline);
  if (unexpired_ < in_flight_.size()) consider(in_flight_[unexpired_].deadline);
  switch (phase_) {
    case Phase::Backoff:
      consider(next_attempt_);
      break;
    case Phase::Connecting:
    case Phase::Handshaking:
      consider(phase_deadline_);
      break;
    case Phase::Ready:
      if (!in_flight_.empty() && in_flight_.front().done) {
        consider(std::max(last_read_, in_flight_.front().deadline) + opt_.command_timeout_ms * kMs);
      }
      if (breaker_.state() == CircuitBreaker::State::Closed) {
        if (opt_.health_interval_ms > 0 && !health_out_) consider(next_health_);
      } else if (breaker_.state() == CircuitBreaker::State::Open && !probe_out_) {
        consider(breaker_.probe_at_ns());
      }
      break;
  }
  return at;
}

void RedisClient::Impl::on_timers(Nanos now) {
  if (phase_ == Phase::Backoff && now >= next_attempt_) start_attempt(now);
  if ((phase_ == Phase::Connecting || phase_ == Phase::Handshaking) && now >= phase_deadline_) {
    const char* stage = phase_ != Phase::Connecting ? "handshake"
                        : awaiting_master_          ? "asking the sentinels for the master"
                                                    : conn_.connect_stage();
    fail_connection(RedisErrorKind::Disconnected,
                    fmt::format("{}: {} timed out after {} ms", (awaiting_master_ ? url_ : target_).describe(),
                                stage, opt_.connect_timeout_ms));
  }
  expire(now);
  if (phase_ != Phase::Ready) return;

  // Presumed dead: a reply is overdue and nothing was read for another command timeout.
  if (!in_flight_.empty() && in_flight_.front().done &&
      now - std::max(last_read_, in_flight_.front().deadline) >= opt_.command_timeout_ms * kMs) {
    fail_connection(RedisErrorKind::Disconnected,
                    fmt::format("{}: no reply for {} ms past a deadline; connection reset",
                                target_.describe(), opt_.command_timeout_ms));
    return;
  }
  if (breaker_.state() == CircuitBreaker::State::Closed) {
    if (opt_.health_interval_ms > 0 && !health_out_ && now >= next_health_) {
      send_internal(InFlight::Kind::Health, now);
      health_out_ = true;
      next_health_ = now + opt_.health_interval_ms * kMs;
    }
  } else if (!probe_out_ && breaker_.allow()) {  // open long enough: one probe
    send_internal(InFlight::Kind::Probe, now);
    probe_out_ = true;
    sync_breaker();
  }
}

void RedisClient::Impl::on_socket(short revents, Nanos now) {
  if (phase_ == Phase::Connecting) {
    try {
      if (conn_.finish_connect() == RedisConnection::Progress::Connected) begin_handshake(now);
    } catch (const ConnectionError& e) {
      fail_connection(RedisErrorKind::Disconnected, e.what());
    }
    return;
  }
  if (conn_.readable(revents)) read_replies(now);
  if (conn_.is_open() && (revents & POLLOUT) != 0) flush();
}

void RedisClient::Impl::intake(Nanos now) {
  inbox_.drain(batch_);
  for (auto& request : batch_) {
    if (breaker_.state() != CircuitBreaker::State::Closed) {
      // Accepted just before the circuit opened: refuse like submit() now would.
      {
        std::lock_guard lock(stats_mu_);
        ++stats_.rejected;
      }
      complete(request.cb, RedisResult::failure(RedisErrorKind::CircuitOpen,
                                                "circuit breaker open: redis is failing"));
      continue;
    }
    switch (phase_) {
      case Phase::Backoff: {
        std::string why;
        {
          std::lock_guard lock(stats_mu_);
          ++stats_.errors;
          why = "not connected: " + stats_.last_error;
        }
        complete(request.cb, RedisResult::failure(RedisErrorKind::Disconnected, why));
        break;
      }
      case Phase::Connecting:
      case Phase::Handshaking:
        waiting_.push_back(std::move(request));
        break;
      case Phase::Ready:
        send(std::move(request), now);
        break;
    }
  }
  batch_.clear();
}

void RedisClient::Impl::flush() {
  try {
    conn_.flush();
  } catch (const ConnectionError& e) {
    fail_connection(RedisErrorKind::Disconnected, e.what());
  }
}

void RedisClient::Impl::read_replies(Nanos now) {
  bool live = false;  // a reply to something not yet answered: the server is healthy
  try {
    for (int i = 0; i < kReadsPerWakeup && conn_.is_open(); ++i) {
      if (!conn_.read_some()) break;
      last_read_ = now;
      while (conn_.is_open()) {
        auto reply = conn_.next_reply();
        if (!reply) break;
        on_reply(std::move(*reply), now, live);
      }
    }
  } catch (const ProtocolError& e) {
    fail_connection(RedisErrorKind::Protocol, fmt::format("{}: {}", target_.describe(), e.what()));
  } catch (const ConnectionError& e) {
    fail_connection(RedisErrorKind::Disconnected, e.what());
  }
  if (live && phase_ == Phase::Ready) {
    breaker_.record_success();
    sync_breaker();
  }
}

void RedisClient::Impl::on_reply(Reply reply, Nanos now, bool& live) {
  if (in_flight_.empty()) throw ProtocolError("a reply arrived with no request outstanding");
  InFlight entry = std::move(in_flight_.front());
  in_flight_.pop_front();
  if (unexpired_ > 0) --unexpired_;

  switch (entry.kind) {
    case InFlight::Kind::User:
      if (reply.is_error()) reply_errors_.count(reply.str());
      if (is_readonly_error(reply)) master_.suspect();  // a replica now: where is the master?
      if (!entry.done) {
        live = true;
        complete(entry.cb, RedisResult::success(std::move(reply)));
      }
      break;
    case InFlight::Kind::Handshake:
      if (reply.is_error()) {
        fail_connection(RedisErrorKind::Disconnected,
                        fmt::format("{}: handshake refused: {}", target_.describe(), reply.str()));
        return;
      }
      if (--handshake_left_ == 0) on_ready(now, entry.sent);
      break;
    case InFlight::Kind::Health:
      health_out_ = false;
      if (reply.is_error()) reply_errors_.count(reply.str());
      if (!entry.done) {
        live = true;
        std::lock_guard lock(stats_mu_);
        stats_.latency_ms = static_cast<double>(now - entry.sent) / 1e6;
      }
      break;
    case InFlight::Kind::Probe:
      probe_out_ = false;
      if (!entry.done) {
        breaker_.record_success();  // half-open -> closed
        sync_breaker();
        next_health_ = now;
      }
      break;
  }
}

// Deadlines are set at submit() time, so both queues are (nearly) in deadline order and
// only their fronts need looking at: expiry costs O(expired), not O(outstanding).
void RedisClient::Impl::expire(Nanos now) {
  std::uint64_t expired = 0;
  while (!waiting_.empty() && waiting_.front().deadline <= now) {
    complete(waiting_.front().cb,
             RedisResult::failure(RedisErrorKind::Timeout,
                                  fmt::format("not connected within {} ms", opt_.command_timeout_ms)));
    waiting_.pop_front();
    ++expired;
  }
  bool probe_failed = false;
  while (unexpired_ < in_flight_.size() && in_flight_[unexpired_].deadline <= now) {
    InFlight& entry = in_flight_[unexpired_];
    if (entry.kind == InFlight::Kind::Handshake) break;  // phase_deadline_ handles it
    if (!entry.done) {
      entry.done = true;
      switch (entry.kind) {
        case InFlight::Kind::User:
          complete(entry.cb, RedisResult::failure(
                                 RedisErrorKind::Timeout,
                                 fmt::format("no reply within {} ms", opt_.command_timeout_ms)));
          entry.cb = nullptr;
          ++expired;
          break;
        case InFlight::Kind::Health:
          health_out_ = false;
          ++expired;
          break;
        case InFlight::Kind::Probe:
          probe_out_ = false;
          probe_failed = true;
          break;
        case InFlight::Kind::Handshake:
          break;
      }
    }
    ++unexpired_;
  }
  if (expired == 0 && !probe_failed) return;
  // One failure per pass, however many requests it expired: a burst of timeouts from a
  // single stall must not count as breaker_failures separate failures. Requests that
  // expired waiting for a connection attempt are not counted: the attempt's own outcome
  // is the verdict (and may be the half-open probe).
  if (phase_ == Phase::Ready) {
    breaker_.record_failure();
    sync_breaker();
  }
  std::lock_guard lock(stats_mu_);
  stats_.timeouts += expired;
  stats_.errors += expired;
  stats_.last_error = fmt::format("{}: {} request(s) timed out after {} ms", target_.describe(),
                                  expired, opt_.command_timeout_ms);
}

// ---------------------------------------------------------------------------------------
// Connection lifecycle

void RedisClient::Impl::start_attempt(Nanos now) {
  if (!breaker_.allow()) {  // open: wait for the probe time; the attempt will be the probe
    next_attempt_ = breaker_.probe_at_ns();
    return;
  }
  sync_breaker();  // may have become half_open
  phase_deadline_ = now + opt_.connect_timeout_ms * kMs;
  awaiting_master_ = false;
  const MasterFollower::Target target = master_.target();
  if (!target.url && target.wait) {  // requests wait, as for a connect; on_master_change resumes
    phase_ = Phase::Connecting;
    awaiting_master_ = true;
    return;
  }
  try {
    if (!target.url) throw ConnectionError(target.why);
    target_ = *target.url;
    if (conn_.connect(target_) == RedisConnection::Progress::Connected) {
      begin_handshake(now);
    } else {
      phase_ = Phase::Connecting;
    }
  } catch (const ConnectionError& e) {
    phase_ = Phase::Connecting;  // so that fail_connection schedules the next attempt
    fail_connection(RedisErrorKind::Disconnected, e.what());
  }
}

void RedisClient::Impl::begin_handshake(Nanos now) {
  phase_ = Phase::Handshaking;
  auto commands = handshake_commands(target_);
  commands.push_back({"PING"});  // proves the server answers, not just its kernel
  for (const auto& argv : commands) {
    append_command(conn_.output(), argv);
    in_flight_.push_back(InFlight{InFlight::Kind::Handshake, false, now, phase_deadline_, {}});
  }
  handshake_left_ = commands.size();
  last_read_ = now;
  flush();
}

void RedisClient::Impl::on_ready(Nanos now, Nanos handshake_sent) {
  phase_ = Phase::Ready;
  backoff_.reset();
  breaker_.record_success();
  sync_breaker();
  next_health_ = now + opt_.health_interval_ms * kMs;
  {
    std::lock_guard lock(stats_mu_);
    stats_.connected = true;
    stats_.latency_ms = static_cast<double>(now - handshake_sent) / 1e6;
    if (ever_ready_) ++stats_.reconnects;
  }
  ever_ready_ = true;
  events_.up(target_.describe());
  while (!waiting_.empty()) {
    send(std::move(waiting_.front()), now);
    waiting_.pop_front();
  }
}

void RedisClient::Impl::send(Request&& request, Nanos now) {
  conn_.output().append(request.command.bytes());
  in_flight_.push_back(
      InFlight{InFlight::Kind::User, false, now, request.deadline, std::move(request.cb)});
}

void RedisClient::Impl::send_internal(InFlight::Kind kind, Nanos now) {
  static const std::vector<std::string> kPing = {"PING"};
  append_command(conn_.output(), kPing);
  in_flight_.push_back(InFlight{kind, false, now, now + opt_.command_timeout_ms * kMs, {}});
}

// The connection (or the attempt) is over: answer everything that was waiting on it,
// count one failure and schedule the next attempt.
void RedisClient::Impl::fail_connection(RedisErrorKind kind, const std::string& why) {
  conn_.close();
  awaiting_master_ = false;
  master_.suspect();
  std::uint64_t failed = 0;
  for (auto& entry : in_flight_) {
    if (entry.kind == InFlight::Kind::User && !entry.done) {
      complete(entry.cb, RedisResult::failure(kind, why));
      ++failed;
    }
  }
  in_flight_.clear();
  unexpired_ = 0;
  handshake_left_ = 0;
  health_out_ = false;
  for (auto& request : waiting_) {
    complete(request.cb, RedisResult::failure(RedisErrorKind::Disconnected, why));
    ++failed;
  }
  waiting_.clear();

  breaker_.record_failure();  // a probe failing here re-opens the circuit
  probe_out_ = false;
  sync_breaker();
  phase_ = Phase::Backoff;
  const Nanos now = clock_->monotonic_ns();
  next_attempt_ = breaker_.state() == CircuitBreaker::State::Open
                      ? breaker_.probe_at_ns()
                      : now + backoff_.next_delay_ns();
  {
    std::lock_guard lock(stats_mu_);
    stats_.connected = false;
    stats_.errors += failed + 1;
    stats_.last_error = why;
  }
  events_.down(why);
}

// The resolver's master changed: leave a server that is no longer it, and connect now
// rather than after the backoff or the open circuit's wait.
void RedisClient::Impl::on_master_change(Nanos now) {
  const bool moved = master_.moved_from(target_);
  // The circuit opened against a server that is no longer the master: probe the new one.
  if (moved && master_.target().url) breaker_.probe_now();
  if (awaiting_master_) {
    start_attempt(now);
  } else if (phase_ == Phase::Backoff) {
    next_attempt_ = std::min(next_attempt_, now);
  } else if (moved) {
    fail_connection(RedisErrorKind::Disconnected,
                    fmt::format("{}: no longer the master of {}", target_.describe(), url_.describe()));
    next_attempt_ = now;
  }
}

void RedisClient::Impl::sync_breaker() {
  const bool closed = breaker_.state() == CircuitBreaker::State::Closed;
  accepting_.store(closed, std::memory_order_release);
  std::lock_guard lock(stats_mu_);
  stats_.circuit = to_string(breaker_.state());
  stats_.consecutive_failures = breaker_.consecutive_failures();
}


void RedisClient::Impl::shutdown() {
  const std::string why = "client closed";
  for (auto& entry : in_flight_) {
    if (entry.kind == InFlight::Kind::User && !entry.done) {
      complete(entry.cb, RedisResult::failure(RedisErrorKind::Disconnected, why));
    }
  }
  in_flight_.clear();
  for (auto& request : waiting_) {
    complete(request.cb, RedisResult::failure(RedisErrorKind::Disconnected, why));
  }
  waiting_.clear();
  inbox_.drain(batch_);
  for (auto& request : batch_) {
    complete(request.cb, RedisResult::failure(RedisErrorKind::Disconnected, why));
  }
  batch_.clear();
  conn_.close();
  std::lock_guard lock(stats_mu_);
  stats_.connected = false;
}

// ---------------------------------------------------------------------------------------
// RedisClient: the public face

RedisClient::RedisClient(RedisUrl url, RedisOptions options, EventCallback on_event,
                         std::shared_ptr<const Clock> clock, std::shared_ptr<SentinelResolver> sentinel)
    : impl_(std::make_unique<Impl>(std::move(url), options, std::move(on_event),
                                   clock ? std::move(clock) : system_clock(), std::move(sentinel))) {}

RedisClient::~RedisClient() = default;  // Impl's destructor closes

void RedisClient::submit(Command command, Callback cb) { impl_->submit(std::move(command), std::move(cb)); }

RedisResult RedisClient::execute(Command command) {
  if (impl_->on_io_thread()) {
    throw Error("RedisClient::execute() called from its own I/O thread (a callback)");
  }
  auto latch = std::make_shared<OneShot<RedisResult>>();
  submit(std::move(command), [latch](RedisResult result) { latch->set(std::move(result)); });
  wake();  // in case a DeferWakeups scope is open here: this caller waits for the reply
  return latch->wait();  // bounded: every accepted request completes by its deadline
}

void RedisClient::wake() { impl_->wake(); }
RedisHealth RedisClient::health() const { return impl_->health(); }
const RedisUrl& RedisClient::url() const noexcept { return impl_->url(); }
void RedisClient::close() { impl_->close(); }

}  // namespace herdcache
