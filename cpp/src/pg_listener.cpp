// PgListener's I/O thread: connect (PQconnectPoll), LISTEN, wait for notifications; on
// any failure, back off and start over. The same shape as RedisSubscriber: one poll() over
// the stop eventfd and the libpq socket, with the next deadline as its timeout.
//
//   Backoff --deadline--> Connecting --PGRES_POLLING_OK--> Listening --LISTEN ok--> Ready
//      ^                      |                               |                       |
//      +----------------------+-------- error / deadline -----+-----------------------+
//
// In Ready an empty query is sent after health_interval_ms without traffic; its answer
// (PGRES_EMPTY_QUERY) must arrive within health_timeout_ms, or the connection is presumed
// dead (a server that vanished without a FIN/RST looks exactly like a quiet one).
#include "herdcache/io_thread.hpp"
#include "herdcache/pg_listener.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "herdcache/breaker.hpp"
#include "herdcache/completions.hpp"
#include "herdcache/errors.hpp"

namespace herdcache {

void PgConnDeleter::operator()(pg_conn* conn) const noexcept { PQfinish(conn); }
void PgResultDeleter::operator()(pg_result* result) const noexcept { PQclear(result); }

namespace {

constexpr Nanos kMs = 1'000'000;

std::string trimmed_error(const PGconn* conn) {
  std::string message = conn ? PQerrorMessage(conn) : "out of memory";
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message.empty() ? "unknown libpq error" : message;
}

// libpq prints notices (NOTICE, and FATAL on a dying server) to stderr by default; a
// library must not write to the host's stderr. Errors reach us through results instead.
void ignore_notice(void*, const char*) {}

}  // namespace

void PgListenerOptions::validate() const {
  if (connect_timeout_ms < 1) throw InvalidArgument("PgListenerOptions.connect_timeout_ms must be >= 1");
  if (health_interval_ms < 0) throw InvalidArgument("PgListenerOptions.health_interval_ms must be >= 0");
  if (health_timeout_ms < 1) throw InvalidArgument("PgListenerOptions.health_timeout_ms must be >= 1");
  if (backoff_initial_ms < 1) throw InvalidArgument("PgListenerOptions.backoff_initial_ms must be >= 1");
  if (backoff_max_ms < backoff_initial_ms) {
    throw InvalidArgument("PgListenerOptions.backoff_max_ms must be >= backoff_initial_ms");
  }
}

void validate_conninfo(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options) {
    PQconninfoFree(options);
    return;
  }
  std::string why = error ? error : "out of memory";
  if (error) PQfreemem(error);
  while (!why.empty() && why.back() == '\n') why.pop_back();
  throw InvalidArgument(fmt::format("bad PostgreSQL DSN: {}", why));
}

void validate_channel(std::string_view channel) {
  if (channel.empty() || channel.size() > 63) {
    throw InvalidArgument(fmt::format("channel must be 1..63 bytes, got {}", channel.size()));
  }
  if (channel.find('\0') != std::string_view::npos) throw InvalidArgument("channel must not contain NUL");
}

std::string listen_command(std::string_view channel) {
  std::string out = "LISTEN \"";
  for (char c : channel) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

class PgListener::Impl {
 public:
  Impl(std::string conninfo, std::vector<std::string> channels, PgListenerOptions options,
       NotifyCallback on_notify, EventCallback on_event, std::shared_ptr<const Clock> clock)
      : conninfo_(std::move(conninfo)),
        channels_(std::move(channels)),
        opt_(options),
        clock_(std::move(clock)),
        on_notify_(std::move(on_notify)),
        events_(std::move(on_event)),
        backoff_(opt_.backoff_initial_ms, opt_.backoff_max_ms, std::random_device{}()) {
    opt_.validate();
    validate_conninfo(conninfo_);
    if (channels_.empty()) throw InvalidArgument("PgListener needs at least one channel");
    for (const auto& channel : channels_) validate_channel(channel);
    if (!on_notify_) throw InvalidArgument("PgListener needs a notify callback");
    io_.start([this] { run(); });
  }

  ~Impl() { close(); }

  bool connected() const noexcept { return connected_.load(); }

  void close() { io_.stop("PgListener"); }

 private:
  enum class Phase : std::uint8_t { Backoff, Connecting, Listening, Ready };

  void run();
  std::optional<Nanos> wake_at() const;
  void on_timers(Nanos now);
  void on_socket(short revents, Nanos now);
  void start_attempt(Nanos now);
  void continue_connect(Nanos now);
  void send(const std::string& sql);
  void read_input(Nanos now);
  void fail(const std::string& why);

  const std::string conninfo_;
  const std::vector<std::string> channels_;
  const PgListenerOptions opt_;
  const std::shared_ptr<const Clock> clock_;
  const NotifyCallback on_notify_;
  ConnectionReporter events_;

  IoThread io_;  // the loop's thread; io_.stopping() once close() began
  std::atomic<bool> connected_{false};

  // I/O thread only.
  PgConnPtr conn_;
  Backoff backoff_;
  Phase phase_ = Phase::Backoff;
  Nanos next_attempt_ = 0;
  Nanos phase_deadline_ = 0;      // Connecting/Listening: done by then or start over
  short connect_events_ = POLLOUT;  // what PQconnectPoll waits for
  bool wants_write_ = false;      // PQflush left output behind
  Nanos last_traffic_ = 0;
  std::optional<Nanos> probe_deadline_;  // an empty query is out
};

void PgListener::Impl::run() {
  next_attempt_ = clock_->monotonic_ns();
  while (!io_.stopping()) {
    Nanos now = clock_->monotonic_ns();
    on_timers(now);
    pollfd fds[2] = {{io_.wake_fd(), POLLIN, 0}, {-1, 0, 0}};
    nfds_t count = 1;
    if (conn_ && phase_ != Phase::Backoff) {
      short events = phase_ == Phase::Connecting ? connect_events_
                                                 : static_cast<short>(POLLIN | (wants_write_ ? POLLOUT : 0));
      fds[1] = {PQsocket(conn_.get()), events, 0};
      count = 2;
    }
    if (::poll(fds, count, poll_timeout_ms(now, wake_at().value_or(kNoWakeup))) <= 0) continue;
    if (io_.stopping()) break;
    if (count == 2 && fds[1].revents != 0) on_socket(fds[1].revents, clock_->monotonic_ns());
  }
  conn_.reset();
  connected_.store(false);
}

std::optional<Nanos> PgListener::Impl::wake_at() const {
  switch (phase_) {
    case Phase::Backoff:
      return next_attempt_;
    case Phase::Connecting:
    case Phase::Listening:
      return phase_deadline_;
    case Phase::Ready:
      if (probe_deadline_) return probe_deadline_;
      if (opt_.health_interval_ms > 0) return last_traffic_ + opt_.health_interval_ms * kMs;
      return std::nullopt;
  }
  return std::nullopt;
}

void PgListener::Impl::on_timers(Nanos now) {
  switch (phase_) {
    case Phase::Backoff:
      if (now >= next_attempt_) start_attempt(now);
      break;
    case Phase::Connecting:
    case Phase::Listening:
      if (now >= phase_deadline_) {
        fail(fmt::format("PostgreSQL: {} timed out after {} ms",
                         phase_ == Phase::Connecting ? "connect" : "LISTEN", opt_.connect_timeout_ms));
      }
      break;
    case Phase::Ready:
      if (probe_deadline_ && now >= *probe_deadline_) {
        fail(fmt::format("PostgreSQL: no answer to the health probe within {} ms; connection reset",
                         opt_.health_timeout_ms));
      } else if (!probe_deadline_ && opt_.health_interval_ms > 0 &&
                 now >= last_traffic_ + opt_.health_interval_ms * kMs) {
        send("");  // an empty query: answered with PGRES_EMPTY_QUERY, no side effects
        probe_deadline_ = now + opt_.health_timeout_ms * kMs;
      }
      break;
  }
}

void PgListener::Impl::start_attempt(Nanos now) {
  phase_deadline_ = now + opt_.connect_timeout_ms * kMs;
  // Defaults first, the user's conninfo last: later keywords win, so the DSN can override.
  const char* keywords[] = {"application_name", "keepalives", "keepalives_idle", "dbname", nullptr};
  const char* values[] = {"herdcache-listener", "1", "30", conninfo_.c_str(), nullptr};
  conn_.reset(PQconnectStartParams(keywords, values, /*expand_dbname=*/1));
  if (!conn_ || PQstatus(conn_.get()) == CONNECTION_BAD) {
    fail(fmt::format("PostgreSQL: {}", trimmed_error(conn_.get())));
    return;
  }
  PQsetNoticeProcessor(conn_.get(), ignore_notice, nullptr);
  phase_ = Phase::Connecting;
  connect_events_ = POLLOUT;  // libpq's contract: behave as if PGRES_POLLING_WRITING first
}

void PgListener::Impl::continue_connect(Nanos now) {
  switch (PQconnectPoll(conn_.get())) {
    case PGRES_POLLING_READING:
      connect_events_ = POLLIN;
      return;
    case PGRES_POLLING_WRITING:
      connect_events_ = POLLOUT;
      return;
    case PGRES_POLLING_FAILED:
      fail(fmt::format("PostgreSQL: {}", trimmed_error(conn_.get())));
      return;
    default:  // PGRES_POLLING_OK
      break;
  }
  if (PQsetnonblocking(conn_.get(), 1) != 0) {
    fail(fmt::format("PostgreSQL: {}", trimmed_error(conn_.get())));
    return;
  }
  phase_ = Phase::Listening;
  std::string sql;
  for (const auto& channel : channels_) sql += listen_command(channel) + ";";
  last_traffic_ = now;
  send(sql);
}

void PgListener::Impl::send(const std::string& sql) {
  if (PQsendQuery(conn_.get(), sql.c_str()) != 1) {
    fail(fmt::format("PostgreSQL: {}", trimmed_error(conn_.get())));
    return;
  }
  const int flushed = PQflush(conn_.get());
  if (flushed < 0) fail(fmt::format("PostgreSQL: {}", trimmed_error(conn_.get())));
  wants_write_ = flushed == 1;
}

void PgListener::Impl::on_socket(short revents, Nanos now) {
  if (phase_ == Phase::Connecting) {
    continue_connect(now);
    return;
  }
  if (wants_write_ && (revents & POLLOUT) != 0) {
    const int flushed = PQflush(conn_.get());
    if (flushed < 0) {
      fail(fmt::format("PostgreSQL: {}", trimmed_error(conn_.get())));
      return;
    }
    wants_write_ = flushed == 1;
  }
  if ((revents & (POLLIN | POLLERR | POLLHUP)) != 0) read_input(now);
}

void PgListener::Impl::read_input(Nanos now) {
  if (PQconsumeInput(conn_.get()) != 1) {
    fail(fmt::format("PostgreSQL connection lost: {}", trimmed_error(conn_.get())));
    return;
  }
  last_traffic_ = now;
  // Query results: the LISTENs' (one per statement) or a probe's.
  bool failed = false;
  std::string why;
  bool finished_query = false;
  while (PQisBusy(conn_.get()) == 0) {
    PgResultPtr result(PQgetResult(conn_.get()));
    if (!result) {
      finished_query = true;
      break;
    }
    const ExecStatusType status = PQresultStatus(result.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_EMPTY_QUERY && !failed) {
      failed = true;
      why = PQresultErrorMessage(result.get());
      while (!why.empty() && why.back() == '\n') why.pop_back();
    }
  }
  // Notifications first, even when the query failed: they were delivered.
  while (PGnotify* notify = PQnotifies(conn_.get())) {
    std::string channel = notify->relname ? notify->relname : "";
    std::string payload = notify->extra ? notify->extra : "";
    PQfreemem(notify);
    on_notify_(channel, payload);
  }
  if (failed) {
    fail(fmt::format("PostgreSQL: {}", why));
    return;
  }
  if (finished_query) {
    probe_deadline_.reset();
    if (phase_ == Phase::Listening) {
      phase_ = Phase::Ready;
      backoff_.reset();
      connected_.store(true);
      events_.up(fmt::format("listening on {} channel(s)", channels_.size()));
    }
  }
  if (PQstatus(conn_.get()) == CONNECTION_BAD) {
    fail(fmt::format("PostgreSQL connection lost: {}", trimmed_error(conn_.get())));
  }
}

void PgListener::Impl::fail(const std::string& why) {
  conn_.reset();
  connected_.store(false);
  phase_ = Phase::Backoff;
  wants_write_ = false;
  probe_deadline_.reset();
  next_attempt_ = clock_->monotonic_ns() + backoff_.next_delay_ns();
  events_.down(why);
}


PgListener::PgListener(std::string conninfo, std::vector<std::string> channels, PgListenerOptions options,
                       NotifyCallback on_notify, EventCallback on_event, std::shared_ptr<const Clock> clock)
    : impl_(std::make_unique<Impl>(std::move(conninfo), std::move(channels), options, std::move(on_notify),
                                   std::move(on_event), clock ? std::move(clock) : system_clock())) {}

PgListener::~PgListener() = default;

bool PgListener::connected() const noexcept { return impl_->connected(); }
void PgListener::close() { impl_->close(); }

std::vector<PgRow> pg_query(const std::string& conninfo, const std::string& sql,
                            const std::vector<std::string>& params, std::int64_t connect_timeout_ms) {
  validate_conninfo(conninfo);
  const std::string timeout_s = std::to_string((connect_timeout_ms + 999) / 1000);
  const char* keywords[] = {"application_name", "connect_timeout", "dbname", nullptr};
  const char* values[] = {"herdcache", timeout_s.c_str(), conninfo.c_str(), nullptr};
  PgConnPtr conn(PQconnectdbParams(keywords, values, /*expand_dbname=*/1));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    throw Error(fmt::format("PostgreSQL: {}", trimmed_error(conn.get())));
  }
  PQsetNoticeProcessor(conn.get(), ignore_notice, nullptr);
  std::vector<const char*> values_ptrs;
  for (const auto& p : params) values_ptrs.push_back(p.c_str());
  PgResultPtr result(params.empty()
                         ? PQexec(conn.get(), sql.c_str())
                         : PQexecParams(conn.get(), sql.c_str(), static_cast<int>(params.size()), nullptr,
                                        values_ptrs.data(), nullptr, nullptr, 0));
  const ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    std::string why = result ? PQresultErrorMessage(result.get()) : trimmed_error(conn.get());
    while (!why.empty() && why.back() == '\n') why.pop_back();
    throw Error(fmt::format("PostgreSQL: {}", why));
  }
  std::vector<PgRow> rows;
  const int nrows = PQntuples(result.get());
  const int ncols = PQnfields(result.get());
  rows.reserve(static_cast<std::size_t>(nrows));
  for (int r = 0; r < nrows; ++r) {
    PgRow row;
    for (int c = 0; c < ncols; ++c) {
      if (PQgetisnull(result.get(), r, c)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(PQgetvalue(result.get(), r, c),
                                     static_cast<std::size_t>(PQgetlength(result.get(), r, c))));
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace herdcache
