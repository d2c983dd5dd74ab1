// RedisSubscriber's I/O thread: connect, log in, SUBSCRIBE, listen; on any failure, back
// off and start over. Shares RedisConnection, Backoff and the handshake with the client;
// it has no request FIFO, so no breaker and no per-request timeouts.
//
// On a new connection everything is written in one batch: AUTH/SELECT, a PING (proves
// the server answers), then one SUBSCRIBE with every channel. Replies come back in that
// order, so the first handshake_left_ replies are the handshake's and the next acks_left_
// "subscribe" confirmations are the initial subscription's; when both reach zero the
// subscriber is ready and says so.
#include "herdcache/io_thread.hpp"
#include "herdcache/redis_subscriber.hpp"

#include <poll.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "herdcache/breaker.hpp"
#include "herdcache/completions.hpp"
#include "herdcache/redis_connection.hpp"
#include "herdcache/sentinel.hpp"

namespace herdcache {

namespace {

constexpr Nanos kMs = 1'000'000;
constexpr int kReadsPerWakeup = 64;

struct ChannelOp {
  bool subscribe;
  std::string channel;
};


bool is_kind(const Reply& reply, std::string_view kind, std::size_t size) {
  return reply.is_array() && reply.elements().size() == size &&
         reply.elements()[0].is_bulk() && reply.elements()[0].str() == kind;
}

}  // namespace

class RedisSubscriber::Impl {
 public:
  Impl(RedisUrl url, RedisOptions options, std::vector<std::string> channels,
       MessageCallback on_message, EventCallback on_event, std::shared_ptr<const Clock> clock,
       std::shared_ptr<SentinelResolver> sentinel)
      : url_(std::move(url)),
        opt_(validated(options)),
        clock_(std::move(clock)),
        master_(url_, std::move(sentinel), opt_, clock_),
        on_message_(std::move(on_message)),
        events_(std::move(on_event)),
        channels_(channels.begin(), channels.end()),
        backoff_(opt_.backoff_initial_ms, opt_.backoff_max_ms, std::random_device{}()) {
    if (!on_message_) throw InvalidArgument("RedisSubscriber needs a message callback");
    io_.start([this] { run(); });
  }

  ~Impl() { close(); }

  void post(ChannelOp op) { ops_.push(std::move(op)); }
  bool connected() const noexcept { return connected_.load(); }

  void close() { io_.stop("RedisSubscriber"); }

 private:
  enum class Phase : std::uint8_t { Backoff, Connecting, Subscribing, Ready };

  static const RedisOptions& validated(const RedisOptions& options) {
    options.validate();
    return options;
  }

  void run();
  void on_timers(Nanos now);
  void on_socket(short revents, Nanos now);
  void apply_ops();
  void start_attempt(Nanos now);
  void begin_session();
  void on_reply(const Reply& reply, Nanos now);
  void send(std::vector<std::string> argv) { append_command(conn_.output(), argv); }
  void flush();
  void fail_connection(const std::string& why);
  void on_master_change(Nanos now);

  const RedisUrl url_;
  const RedisOptions opt_;
  const std::shared_ptr<const Clock> clock_;
  MasterFollower master_;  // where to connect (the URL, or the master Sentinel names)
  RedisUrl target_ = url_;  // I/O thread: what conn_ connects to
  const MessageCallback on_message_;
  ConnectionReporter events_;

  WakeQueue<ChannelOp> ops_;
  IoThread io_;  // the loop's thread; io_.stopping() once close() began
  std::atomic<bool> connected_{false};

  // I/O thread only (channels_ is filled by the constructor before the thread starts).
  std::set<std::string> channels_;
  RedisConnection conn_;
  Backoff backoff_;
  Phase phase_ = Phase::Backoff;
  Nanos next_attempt_ = 0;
  Nanos phase_deadline_ = 0;  // Connecting/Subscribing: ready by then or start over
  std::size_t handshake_left_ = 0;
  std::size_t acks_left_ = 0;
  Nanos next_ping_ = 0;
  std::optional<Nanos> ping_deadline_;  // a PING is out: answered by then or reset
  std::vector<ChannelOp> batch_;
};

void RedisSubscriber::Impl::run() {
  next_attempt_ = clock_->monotonic_ns();
  while (!io_.stopping()) {
    Nanos now = clock_->monotonic_ns();
    on_timers(now);
    if (conn_.is_open() && phase_ != Phase::Connecting && conn_.wants_write()) flush();

    Nanos wake_at = kNoWakeup;
    if (phase_ == Phase::Backoff) wake_at = next_attempt_;
    if (phase_ == Phase::Connecting || phase_ == Phase::Subscribing) wake_at = phase_deadline_;
    if (phase_ == Phase::Ready) {
      if (ping_deadline_) {
        wake_at = *ping_deadline_;
      } else if (opt_.health_interval_ms > 0) {
        wake_at = next_ping_;
      }
    }
    pollfd fds[4] = {{ops_.fd(), POLLIN, 0}, {io_.wake_fd(), POLLIN, 0}, {master_.fd(), POLLIN, 0}, {-1, 0, 0}};
    nfds_t count = 3;
    if (conn_.is_open()) fds[count++] = {conn_.fd(), conn_.poll_events(phase_ == Phase::Connecting), 0};
    if (::poll(fds, count, poll_timeout_ms(now, wake_at)) <= 0) continue;
    if (io_.stopping()) break;
    now = clock_->monotonic_ns();
    if ((fds[2].revents & POLLIN) != 0) on_master_change(now);
    if (count == 4 && fds[3].revents != 0) on_socket(fds[3].revents, now);
    if ((fds[0].revents & POLLIN) != 0) apply_ops();
  }
  conn_.close();
  connected_.store(false);
}

void RedisSubscriber::Impl::on_timers(Nanos now) {
  switch (phase_) {
    case Phase::Backoff:
      if (now >= next_attempt_) start_attempt(now);
      break;
    case Phase::Connecting:
    case Phase::Subscribing:
      if (now >= phase_deadline_) {
        fail_connection(fmt::format("{}: {} timed out after {} ms", target_.describe(),
                                    phase_ == Phase::Connecting ? conn_.connect_stage() : "subscribe",
                                    opt_.connect_timeout_ms));
      }
      break;
    case Phase::Ready:
      if (ping_deadline_ && now >= *ping_deadline_) {
        fail_connection(fmt::format("{}: no PONG within {} ms; connection reset",
                                    target_.describe(), opt_.command_timeout_ms));
      } else if (!ping_deadline_ && opt_.health_interval_ms > 0 && now >= next_ping_) {
        send({"PING"});
        ping_deadline_ = now + opt_.command_timeout_ms * kMs;
      }
      break;
  }
}

void RedisSubscriber::Impl::on_socket(short revents, Nanos now) {
  try {
    if (phase_ == Phase::Connecting) {
      if (conn_.finish_connect() == RedisConnection::Progress::Connected) begin_session();
      return;
    }
    if (conn_.readable(revents)) {
      for (int i = 0; i < kReadsPerWakeup && conn_.is_open(); ++i) {
        if (!conn_.read_some()) break;
        while (conn_.is_open()) {
          auto reply = conn_.next_reply();
          if (!reply) break;
          on_reply(*reply, now);
        }
      }
    }
    if (conn_.is_open() && (revents & POLLOUT) != 0) flush();
  } catch (const ProtocolError& e) {
    fail_connection(fmt::format("{}: {}", target_.describe(), e.what()));
  } catch (const ConnectionError& e) {
    fail_connection(e.what());
  }
}

void RedisSubscriber::Impl::apply_ops() {
  ops_.drain(batch_);
  const bool live = conn_.is_open() && phase_ != Phase::Connecting;
  for (auto& op : batch_) {
    const bool changed =
        op.subscribe ? channels_.insert(op.channel).second : channels_.erase(op.channel) > 0;
    // Not connected: the next session subscribes to channels_ as it is then.
    if (changed && live) send({op.subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE", op.channel});
  }
  batch_.clear();
}

void RedisSubscriber::Impl::start_attempt(Nanos now) {
  const MasterFollower::Target target = master_.target();
  if (!target.url && target.wait) {  // the resolver's first round runs: on_master_change resumes
    next_attempt_ = now + opt_.connect_timeout_ms * kMs;
    return;
  }
  phase_deadline_ = now + opt_.connect_timeout_ms * kMs;
  phase_ = Phase::Connecting;
  try {
    if (!target.url) throw ConnectionError(target.why);
    target_ = *target.url;
    if (conn_.connect(target_) == RedisConnection::Progress::Connected) begin_session();
  } catch (const ConnectionError& e) {
    fail_connection(e.what());
  }
}

void RedisSubscriber::Impl::begin_session() {
  phase_ = Phase::Subscribing;
  auto commands = handshake_commands(target_);
  commands.push_back({"PING"});
  handshake_left_ = commands.size();
  for (auto& argv : commands) send(std::move(argv));
  acks_left_ = channels_.size();
  if (!channels_.empty()) {
    std::vector<std::string> argv = {"SUBSCRIBE"};
    argv.insert(argv.end(), channels_.begin(), channels_.end());
    send(std::move(argv));
  }
  flush();
}

void RedisSubscriber::Impl::on_reply(const Reply& reply, Nanos now) {
  if (reply.is_error()) {
    fail_connection(fmt::format("{}: {} refused: {}", target_.describe(),
                                handshake_left_ > 0 ? "handshake" : "subscription", reply.str()));
    return;
  }
  if (handshake_left_ > 0) {
    --handshake_left_;
  } else if (is_kind(reply, "message", 3)) {
    on_message_(reply.elements()[1].str(), reply.elements()[2].str());
    return;
  } else if (is_kind(reply, "subscribe", 3)) {
    if (acks_left_ > 0) --acks_left_;
  } else if (is_kind(reply, "pong", 2) || reply == Reply::status("PONG")) {
    ping_deadline_.reset();
    next_ping_ = now + opt_.health_interval_ms * kMs;
    return;
  }
  // "unsubscribe" confirmations and anything else need no action.

  if (phase_ == Phase::Subscribing && handshake_left_ == 0 && acks_left_ == 0) {
    phase_ = Phase::Ready;
    backoff_.reset();
    ping_deadline_.reset();
    next_ping_ = now + opt_.health_interval_ms * kMs;
    connected_.store(true);
    events_.up(target_.describe());
  }
}

void RedisSubscriber::Impl::flush() {
  try {
    conn_.flush();
  } catch (const ConnectionError& e) {
    fail_connection(e.what());
  }
}

void RedisSubscriber::Impl::fail_connection(const std::string& why) {
  conn_.close();
  master_.suspect();
  connected_.store(false);
  phase_ = Phase::Backoff;
  handshake_left_ = acks_left_ = 0;
  ping_deadline_.reset();
  next_attempt_ = clock_->monotonic_ns() + backoff_.next_delay_ns();
  events_.down(why);
}

// The resolver's master changed: leave a server that is no longer it (what it would
// publish from now on is not what the tier's writes publish), and connect now.
void RedisSubscriber::Impl::on_master_change(Nanos now) {
  if (master_.moved_from(target_) && phase_ != Phase::Backoff) {
    fail_connection(fmt::format("{}: no longer the master of {}", target_.describe(), url_.describe()));
  }
  if (phase_ == Phase::Backoff) next_attempt_ = std::min(next_attempt_, now);
}

RedisSubscriber::RedisSubscriber(RedisUrl url, RedisOptions options,
                                 std::vector<std::string> channels, MessageCallback on_message,
                                 EventCallback on_event, std::shared_ptr<const Clock> clock,
                                 std::shared_ptr<SentinelResolver> sentinel)
    : impl_(std::make_unique<Impl>(std::move(url), options, std::move(channels),
                                   std::move(on_message), std::move(on_event),
                                   clock ? std::move(clock) : system_clock(), std::move(sentinel))) {}

RedisSubscriber::~RedisSubscriber() = default;

void RedisSubscriber::subscribe(std::string channel) { impl_->post({true, std::move(channel)}); }
void RedisSubscriber::unsubscribe(std::string channel) {
  impl_->post({false, std::move(channel)});
}
bool RedisSubscriber::connected() const noexcept { return impl_->connected(); }
void RedisSubscriber::close() { impl_->close(); }

}  // namespace herdcache
