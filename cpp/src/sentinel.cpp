// SentinelResolver's thread (sentinel.hpp has the design) and the reply parsers.
//
// The thread's loop keeps two things going: a subscription to +switch-master on one
// sentinel (reopened on the next sentinel when it drops), and rounds, which are blocking
// exchanges of a few commands each on short-lived connections, every step bounded by
// connect_timeout_ms and interrupted by close(). Rounds block only this thread; the
// connections that use the master keep running and ask master() when they reconnect.
#include "herdcache/sentinel.hpp"

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <mutex>
#include <random>
#include <utility>

#include <fmt/format.h>

#include "herdcache/breaker.hpp"
#include "herdcache/completions.hpp"
#include "herdcache/io_thread.hpp"
#include "herdcache/redis_connection.hpp"

namespace herdcache {

namespace {

constexpr Nanos kMs = 1'000'000;

}  // namespace

std::optional<MasterAddress> parse_master_address(const Reply& reply) {
  if (reply.is_nil() || (reply.is_array() && reply.elements().empty())) return {};
  if (reply.is_error()) throw ProtocolError(reply.str());
  const auto& e = reply.elements();
  if (!reply.is_array() || e.size() != 2 || !e[0].is_bulk() || !e[1].is_bulk() || e[0].str().empty()) {
    throw ProtocolError(fmt::format("not a master address: {}", reply.debug_string()));
  }
  const auto port = parse_port(e[1].str());
  if (!port) throw ProtocolError(fmt::format("not a port: '{}'", e[1].str()));
  return MasterAddress{e[0].str(), *port};
}

bool is_master_role(const Reply& reply) {
  return reply.is_array() && !reply.elements().empty() && reply.elements()[0].is_bulk() &&
         reply.elements()[0].str() == "master";
}

std::optional<MasterAddress> parse_switch_master(std::string_view payload, std::string_view service) {
  std::vector<std::string_view> words;
  while (!payload.empty()) {
    const auto space = payload.find(' ');
    if (space != 0) words.push_back(payload.substr(0, space));
    payload = space == std::string_view::npos ? std::string_view() : payload.substr(space + 1);
  }
  if (words.size() != 5 || words[0] != service) return {};
  const auto port = parse_port(words[4]);
  if (!port) return {};
  return MasterAddress{std::string(words[3]), *port};
}

std::optional<MasterAddress> master_after_round(const std::optional<MasterAddress>& verified, bool answered,
                                                const std::optional<MasterAddress>& previous) {
  if (verified) return verified;
  return answered ? std::nullopt : previous;
}

SentinelOrder::SentinelOrder(std::size_t count) : order_(count) {
  for (std::size_t i = 0; i < count; ++i) order_[i] = i;
}

void SentinelOrder::answered(std::size_t sentinel) {
  const auto it = std::find(order_.begin(), order_.end(), sentinel);
  if (it != order_.end()) std::rotate(order_.begin(), it, it + 1);
}

namespace {

struct Stopped {};  // close() interrupted a blocking step

// One short conversation with a server on the resolver's thread: every wait polls the
// stop fd too, and is bounded by `deadline`.
class Exchange {
 public:
  Exchange(RedisConnection& conn, const IoThread& io, const Clock& clock, Nanos deadline)
      : conn_(conn), io_(io), clock_(clock), deadline_(deadline) {}

  void open(const RedisUrl& url) {
    if (conn_.connect(url) == RedisConnection::Progress::InProgress) {
      do {
        wait(conn_.poll_events(true), "connect");
      } while (conn_.finish_connect() == RedisConnection::Progress::InProgress);
    }
  }

  // Sends `commands` and returns their replies, in order.
  std::vector<Reply> call(const std::vector<std::vector<std::string>>& commands) {
    for (const auto& argv : commands) append_command(conn_.output(), argv);
    std::vector<Reply> replies;
    while (replies.size() < commands.size()) {
      conn_.flush();
      while (auto reply = conn_.next_reply()) replies.push_back(std::move(*reply));
      if (replies.size() == commands.size()) break;
      if (conn_.readable(wait(conn_.poll_events(false), "reply"))) conn_.read_some();
    }
    return replies;
  }

 private:
  short wait(short events, const char* what) {
    pollfd fds[2] = {{conn_.fd(), events, 0}, {io_.wake_fd(), POLLIN, 0}};
    for (;;) {
      const Nanos now = clock_.monotonic_ns();
      if (now >= deadline_) throw ConnectionError(fmt::format("{} timed out", what));
      const int ready = ::poll(fds, 2, poll_timeout_ms(now, deadline_));
      if (io_.stopping()) throw Stopped{};
      if (ready > 0 && fds[0].revents != 0) return fds[0].revents;
    }
  }

  RedisConnection& conn_;
  const IoThread& io_;
  const Clock& clock_;
  Nanos deadline_;
};

// The first error reply among `replies`, as a ConnectionError saying what refused it.
void check_replies(const std::vector<Reply>& replies, const std::string& who) {
  for (const auto& r : replies) {
    if (r.is_error()) throw ConnectionError(fmt::format("{}: refused: {}", who, r.str()));
  }
}

}  // namespace

class SentinelResolver::Impl {
 public:
  Impl(RedisUrl url, RedisOptions options, std::shared_ptr<const Clock> clock)
      : url_(std::move(url)),
        opt_(options),
        clock_(std::move(clock)),
        order_(url_.sentinels.size()),
        backoff_(validated(opt_).backoff_initial_ms, opt_.backoff_max_ms, std::random_device{}()),
        sub_backoff_(opt_.backoff_initial_ms, opt_.backoff_max_ms, std::random_device{}()) {
    if (!url_.uses_sentinel()) throw InvalidArgument("SentinelResolver needs a redis+sentinel:// url");
    io_.start([this] { run(); });
  }
  ~Impl() { close(); }

  static const RedisOptions& validated(const RedisOptions& options) {
    options.validate();
    return options;
  }

  std::optional<RedisUrl> master() const {
    std::lock_guard lock(mu_);
    if (!master_) return {};
    return url_.at(master_->host, master_->port);
  }
  bool settled() const { return settled_.load(); }
  void suspect() {
    suspected_.store(true);
    requests_.notify();
  }
  std::uint64_t watch(std::function<void()> on_change) {
    std::lock_guard lock(watchers_mu_);
    watchers_.emplace_back(++last_watch_id_, std::move(on_change));
    return last_watch_id_;
  }
  void unwatch(std::uint64_t id) {
    std::lock_guard lock(watchers_mu_);  // held while watchers run: none is running after this
    std::erase_if(watchers_, [id](const auto& w) { return w.first == id; });
  }
  SentinelStats stats() const {
    std::lock_guard lock(mu_);
    return stats_;
  }
  const RedisUrl& url() const noexcept { return url_; }
  void close() {
    io_.stop("SentinelResolver");
    sub_.close();
  }

 private:
  void run();
  void round();
  std::optional<MasterAddress> ask(std::size_t index);  // throws ConnectionError
  bool verify(const MasterAddress& address, std::vector<std::string>& errors);
  void open_subscription(Nanos now);
  void read_subscription(Nanos now);
  void ping_subscription(Nanos now);
  void drop_subscription(Nanos now);
  void publish(std::optional<MasterAddress> master, std::string error);

  RedisUrl sentinel_url(std::size_t i) const {
    RedisUrl s = url_.at(url_.sentinels[i].host, url_.sentinels[i].port);
    s.username = url_.sentinel_username;
    s.password = url_.sentinel_password;
    s.db = 0;
    return s;
  }
  Nanos step_deadline() const { return clock_->monotonic_ns() + opt_.connect_timeout_ms * kMs; }

  const RedisUrl url_;
  RedisOptions opt_;
  const std::shared_ptr<const Clock> clock_;
  IoThread io_;
  EventFd requests_;
  std::atomic<bool> suspected_{false};
  std::atomic<bool> settled_{false};

  mutable std::mutex mu_;  // master_, stats_
  std::optional<MasterAddress> master_;
  SentinelStats stats_;

  std::mutex watchers_mu_;
  std::vector<std::pair<std::uint64_t, std::function<void()>>> watchers_;
  std::uint64_t last_watch_id_ = 0;

  // Resolver thread only.
  SentinelOrder order_;
  Backoff backoff_;
  std::optional<MasterAddress> last_verified_;  // the last master ever verified
  std::optional<MasterAddress> announced_;      // named by a +switch-master not yet checked
  Nanos next_round_ = 0;                        // kNoWakeup: none due
  Nanos last_round_ = 0;
  RedisConnection sub_;                         // subscribed to +switch-master
  std::size_t sub_next_ = 0;                    // the sentinel to subscribe on next
  Nanos sub_retry_ = 0;
  Nanos sub_ping_at_ = kNoWakeup;       // the next PING on the subscription
  Nanos sub_pong_deadline_ = kNoWakeup;  // a PING is out: answered by then, or the sentinel is gone
  Backoff sub_backoff_;
};

void SentinelResolver::Impl::run() {
  try {
    while (!io_.stopping()) {
      Nanos now = clock_->monotonic_ns();
      if (!sub_.is_open() && now >= sub_retry_) open_subscription(now);
      if (sub_.is_open()) ping_subscription(now);
      if (now >= next_round_) {
        round();
        now = clock_->monotonic_ns();
      }
      const Nanos wake_at = std::min(
          next_round_, sub_.is_open() ? std::min(sub_ping_at_, sub_pong_deadline_) : sub_retry_);
      pollfd fds[3] = {{io_.wake_fd(), POLLIN, 0}, {requests_.fd(), POLLIN, 0}, {sub_.fd(), sub_.poll_events(false), 0}};
      const nfds_t count = sub_.is_open() ? 3 : 2;
      if (::poll(fds, count, poll_timeout_ms(now, wake_at)) <= 0) continue;
      if (io_.stopping()) break;
      now = clock_->monotonic_ns();
      if ((fds[1].revents & POLLIN) != 0) {
        requests_.clear();
        if (suspected_.exchange(false)) {
          next_round_ = std::min(next_round_, std::max(now, last_round_ + kSuspectGapMs * kMs));
        }
      }
      if (count == 3 && sub_.readable(fds[2].revents)) read_subscription(now);
      if (count == 3 && sub_.is_open() && (fds[2].revents & POLLOUT) != 0) {
        try {
          sub_.flush();
        } catch (const ConnectionError&) {
          drop_subscription(now);
        }
      }
    }
  } catch (const Stopped&) {
  }
}

void SentinelResolver::Impl::round() {
  last_round_ = clock_->monotonic_ns();
  {
    std::lock_guard lock(mu_);
    ++stats_.rounds;
  }
  std::vector<std::string> errors;
  // The address a switch announced first: other sentinels may name the old master for a
  // moment longer, and until it is reconfigured it still answers ROLE as a master.
  if (const auto announced = std::exchange(announced_, std::nullopt); announced && verify(*announced, errors)) {
    backoff_.reset();
    next_round_ = kNoWakeup;
    return publish(announced, "");
  }
  bool answered = false;  // some sentinel named a master (or said it knows none)
  for (std::size_t i = 0; i < order_.size(); ++i) {
    const std::size_t index = order_.at(i);
    std::optional<MasterAddress> address;
    try {
      address = ask(index);
    } catch (const ConnectionError& e) {
      errors.push_back(e.what());
      continue;
    }
    answered = true;
    if (!address) {
      errors.push_back(fmt::format("{}: does not monitor '{}'", sentinel_url(index).describe(),
                                   url_.sentinel_service));
      continue;
    }
    if (verify(*address, errors)) {
      order_.answered(index);
      backoff_.reset();
      next_round_ = kNoWakeup;
      publish(address, "");
      return;
    }
  }
  next_round_ = clock_->monotonic_ns() + backoff_.next_delay_ns();
  std::string why = fmt::format("no master for '{}': ", url_.sentinel_service);
  for (std::size_t i = 0; i < errors.size(); ++i) why.append(i ? "; " : "").append(errors[i]);
  std::optional<MasterAddress> previous;
  {
    std::lock_guard lock(mu_);
    previous = master_;
  }
  publish(master_after_round(std::nullopt, answered, previous), why);
}

std::optional<MasterAddress> SentinelResolver::Impl::ask(std::size_t index) {
  const RedisUrl sentinel = sentinel_url(index);
  RedisConnection conn;
  Exchange x(conn, io_, *clock_, step_deadline());
  try {
    x.open(sentinel);
    auto commands = handshake_commands(sentinel);
    commands.push_back({"SENTINEL", "get-master-addr-by-name", url_.sentinel_service});
    auto replies = x.call(commands);
    const Reply answer = std::move(replies.back());
    replies.pop_back();
    check_replies(replies, sentinel.describe());
    return parse_master_address(answer);
  } catch (const ProtocolError& e) {
    throw ConnectionError(fmt::format("{}: {}", sentinel.describe(), e.what()));
  } catch (const ConnectionError& e) {
    // The connection's own errors name the address; the exchange's timeouts do not.
    const std::string what = e.what();
    if (what.starts_with(sentinel.describe())) throw;
    throw ConnectionError(fmt::format("{}: {}", sentinel.describe(), what));
  }
}

bool SentinelResolver::Impl::verify(const MasterAddress& address, std::vector<std::string>& errors) {
  const RedisUrl master = url_.at(address.host, address.port);
  try {
    RedisConnection conn;
    Exchange x(conn, io_, *clock_, step_deadline());
    x.open(master);
    auto commands = handshake_commands(master);
    commands.push_back({"ROLE"});
    auto replies = x.call(commands);
    check_replies(replies, master.describe());
    if (is_master_role(replies.back())) return true;
    const auto& e = replies.back().elements();
    errors.push_back(fmt::format("{}: not a master (ROLE says {})", master.describe(),
                                 e.empty() ? replies.back().debug_string() : e[0].str()));
  } catch (const ProtocolError& e) {
    errors.push_back(fmt::format("{}: {}", master.describe(), e.what()));
  } catch (const ConnectionError& e) {
    const std::string what = e.what();
    errors.push_back(what.starts_with(master.describe()) ? what : fmt::format("{}: {}", master.describe(), what));
  }
  return false;
}

void SentinelResolver::Impl::publish(std::optional<MasterAddress> master, std::string error) {
  bool changed;
  {
    std::lock_guard lock(mu_);
    changed = master != master_;
    if (master && last_verified_ && *master != *last_verified_) ++stats_.failovers;
    if (master) last_verified_ = master;
    master_ = master;
    stats_.master = master ? master->str() : std::string();
    stats_.last_error = std::move(error);
  }
  const bool first = !settled_.exchange(true);
  if (!changed && !first) return;
  std::lock_guard lock(watchers_mu_);
  for (auto& [id, on_change] : watchers_) on_change();
}

// Subscribes on the next sentinel that answers; a failure tries the next one after a
// short backoff (the rounds do not depend on the subscription, they only start sooner).
void SentinelResolver::Impl::open_subscription(Nanos now) {
  const std::size_t index = sub_next_ % order_.size();
  const RedisUrl sentinel = sentinel_url(index);
  try {
    Exchange x(sub_, io_, *clock_, step_deadline());
    x.open(sentinel);
    auto commands = handshake_commands(sentinel);
    commands.push_back({"SUBSCRIBE", "+switch-master"});
    check_replies(x.call(commands), sentinel.describe());
  } catch (const Error&) {  // ConnectionError or ProtocolError: the next sentinel, later
    sub_.close();
    sub_retry_ = now + sub_backoff_.next_delay_ns();
    sub_next_ = index + 1;
    return;
  }
  sub_backoff_.reset();
  sub_next_ = index;  // the one in use; a drop moves on to the next
  sub_ping_at_ = opt_.health_interval_ms > 0 ? now + opt_.health_interval_ms * kMs : kNoWakeup;
  sub_pong_deadline_ = kNoWakeup;
  {
    std::lock_guard lock(mu_);
    stats_.listening_on = sentinel.describe();
  }
  // A switch announced while nobody listened was missed: ask again (not before the first round).
  if (settled_.load()) next_round_ = std::min(next_round_, now);
}

void SentinelResolver::Impl::read_subscription(Nanos now) {
  try {
    while (sub_.read_some()) {
      while (auto reply = sub_.next_reply()) {
        const auto& e = reply->elements();
        if (reply->is_array() && !e.empty() && e[0].str() == "pong") {
          sub_pong_deadline_ = kNoWakeup;
          sub_ping_at_ = now + opt_.health_interval_ms * kMs;
        } else if (reply->is_array() && e.size() == 3 && e[0].str() == "message") {
          if (auto moved = parse_switch_master(e[2].str(), url_.sentinel_service)) {
            announced_ = std::move(moved);
            next_round_ = now;
          }
        }
      }
    }
  } catch (const Error&) {  // ConnectionError or ProtocolError: subscribe elsewhere
    drop_subscription(now);
  }
}

// Liveness, as the subscriber's (redis_subscriber.hpp): a sentinel that does not answer a
// PING within command_timeout_ms is presumed gone, and with it the switches it would announce.
void SentinelResolver::Impl::ping_subscription(Nanos now) {
  if (now >= sub_pong_deadline_) return drop_subscription(now);
  if (now < sub_ping_at_ || sub_pong_deadline_ != kNoWakeup) return;
  static const std::vector<std::string> kPing = {"PING"};
  append_command(sub_.output(), kPing);
  sub_pong_deadline_ = now + opt_.command_timeout_ms * kMs;
  sub_ping_at_ = kNoWakeup;
  try {
    sub_.flush();
  } catch (const ConnectionError&) {
    drop_subscription(now);
  }
}

void SentinelResolver::Impl::drop_subscription(Nanos now) {
  sub_.close();
  sub_next_ += 1;
  sub_retry_ = now;
  sub_ping_at_ = sub_pong_deadline_ = kNoWakeup;
  next_round_ = std::min(next_round_, now);  // a switch may be under way unheard
  std::lock_guard lock(mu_);
  stats_.listening_on.clear();
}

// ---------------------------------------------------------------------------------------

MasterFollower::MasterFollower(const RedisUrl& url, std::shared_ptr<SentinelResolver> resolver,
                               const RedisOptions& options, std::shared_ptr<const Clock> clock)
    : url_(url), resolver_(std::move(resolver)) {
  if (!url.uses_sentinel()) {
    resolver_.reset();
    return;
  }
  if (!resolver_) resolver_ = std::make_shared<SentinelResolver>(url, options, std::move(clock));
  watch_id_ = resolver_->watch([this] { changed_.notify(); });
}

MasterFollower::~MasterFollower() {
  if (resolver_) resolver_->unwatch(watch_id_);
}

MasterFollower::Target MasterFollower::target() const {
  if (!resolver_) return Target{url_, false, {}};
  Target t;
  t.url = resolver_->master();
  if (!t.url) {
    t.wait = !resolver_->settled();
    const std::string error = resolver_->stats().last_error;
    t.why = fmt::format("{}: {}", url_.describe(), error.empty() ? "no master known yet" : error);
  }
  return t;
}

bool MasterFollower::moved_from(const RedisUrl& connected_to) {
  changed_.clear();
  if (!resolver_) return false;
  const auto now = resolver_->master();
  return !now || now->host != connected_to.host || now->port != connected_to.port;
}

bool is_readonly_error(const Reply& reply) noexcept {
  return reply.is_error() && (reply.str().starts_with("READONLY ") || reply.str().find(" READONLY ") != std::string::npos ||
                              reply.str().find("-READONLY ") != std::string::npos);
}

SentinelResolver::SentinelResolver(RedisUrl url, RedisOptions options, std::shared_ptr<const Clock> clock)
    : impl_(std::make_unique<Impl>(std::move(url), options, clock ? std::move(clock) : system_clock())) {}
SentinelResolver::~SentinelResolver() = default;
std::optional<RedisUrl> SentinelResolver::master() const { return impl_->master(); }
bool SentinelResolver::settled() const { return impl_->settled(); }
void SentinelResolver::suspect() { impl_->suspect(); }
std::uint64_t SentinelResolver::watch(std::function<void()> on_change) { return impl_->watch(std::move(on_change)); }
void SentinelResolver::unwatch(std::uint64_t id) { impl_->unwatch(id); }
SentinelStats SentinelResolver::stats() const { return impl_->stats(); }
const RedisUrl& SentinelResolver::url() const noexcept { return impl_->url(); }
void SentinelResolver::close() { impl_->close(); }

}  // namespace herdcache
