// A PostgreSQL LISTEN connection on its own I/O thread (libpq, non-blocking).
//
// It LISTENs on a set of channels and hands each notification (channel, payload) to a
// callback on its I/O thread. Everything waits on the socket with poll() and a deadline:
// connecting (PQconnectPoll) and the LISTEN must finish within connect_timeout_ms, and an
// idle connection is probed with an empty query every health_interval_ms, which must be
// answered within health_timeout_ms. Any failure closes the connection and a new attempt
// starts after an exponential backoff with full jitter (Backoff, breaker.hpp).
//
// NOTIFY is fire-and-forget: whatever was sent while nobody was listening is gone. So when
// listening is (re)established after a failure the event callback gets
// ConnectionEvent{connected = true, after_loss = true}: "notifications may have been
// missed"; the layer above then invalidates everything the notifications could have named.
// The first successful LISTEN after start has after_loss = false unless earlier attempts
// failed.
//
// The pure pieces (options and DSN validation, LISTEN quoting, poll timeouts) are free
// functions so they can be tested without a server.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "herdcache/clock.hpp"
#include "herdcache/redis.hpp"  // ConnectionEvent

struct pg_conn;
struct pg_result;

namespace herdcache {

// RAII for libpq handles: PQfinish / PQclear appear only in these deleters.
struct PgConnDeleter {
  void operator()(pg_conn* conn) const noexcept;
};
struct PgResultDeleter {
  void operator()(pg_result* result) const noexcept;
};
using PgConnPtr = std::unique_ptr<pg_conn, PgConnDeleter>;
using PgResultPtr = std::unique_ptr<pg_result, PgResultDeleter>;

struct PgListenerOptions {
  std::int64_t connect_timeout_ms = 5000;   // connect + LISTEN must be done by then; >= 1
  std::int64_t health_interval_ms = 10000;  // idle this long -> probe; 0 = never
  std::int64_t health_timeout_ms = 5000;    // the probe's answer must come by then; >= 1
  std::int64_t backoff_initial_ms = 50;     // first reconnect delay ceiling; >= 1
  std::int64_t backoff_max_ms = 5000;       // reconnect delay ceiling; >= backoff_initial_ms
  void validate() const;                    // InvalidArgument naming the field
};

// Throws InvalidArgument (with libpq's reason) unless `conninfo` parses as a libpq
// connection string or URI. No I/O.
void validate_conninfo(const std::string& conninfo);

// A channel name LISTEN accepts: 1..63 bytes, no NUL. Throws InvalidArgument otherwise.
void validate_channel(std::string_view channel);

// `LISTEN "chan"` with the identifier quoted ("" doubles a quote). No I/O.
std::string listen_command(std::string_view channel);

class PgListener {
 public:
  // Called on the I/O thread, in arrival order; must not throw.
  using NotifyCallback = std::function<void(const std::string& channel, const std::string& payload)>;
  using EventCallback = std::function<void(const ConnectionEvent&)>;

  // Validates everything (InvalidArgument), then starts the I/O thread, which connects
  // and LISTENs at once. The Connected event is reported after every LISTEN succeeded.
  PgListener(std::string conninfo, std::vector<std::string> channels, PgListenerOptions options,
             NotifyCallback on_notify, EventCallback on_event = {},
             std::shared_ptr<const Clock> clock = system_clock());
  ~PgListener();  // close()
  PgListener(const PgListener&) = delete;
  PgListener& operator=(const PgListener&) = delete;

  // Listening right now (any thread).
  bool connected() const noexcept;

  // Stops and joins the I/O thread. Idempotent; not from a callback.
  void close();

  class Impl;  // pg_listener.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

// One blocking query on a connection of its own (install() runs DDL with it; callers
// release the GIL). Parameters are text ($1, $2, ...); returns the rows as text, NULL as
// nullopt. Throws Error with the server's message on failure; connecting is bounded by
// connect_timeout_ms.
using PgRow = std::vector<std::optional<std::string>>;
std::vector<PgRow> pg_query(const std::string& conninfo, const std::string& sql,
                            const std::vector<std::string>& params, std::int64_t connect_timeout_ms);

}  // namespace herdcache
