// The Redis client: one connection, one I/O thread, auto-pipelining.
//
// Pipelining. submit() may be called from any thread. It appends the request to an inbox
// (a WakeQueue: the I/O thread is woken through an eventfd only when the inbox goes from
// empty to non-empty). Each time the I/O thread wakes it takes the whole inbox, encodes
// every request into one output buffer and writes it with as few send() calls as the
// socket allows. Replies come back in order, so they are matched to requests FIFO. The
// batch size follows concurrency: a lone caller gets a round trip of its own, a hundred
// concurrent callers share one write and one read. There are no batching timers.
//
// Callbacks. Every accepted request's callback is called exactly once, on the I/O thread,
// within about command_timeout_ms of submit(). A request refused up front (circuit open,
// too many pending, client closed) has its callback called inline, before submit()
// returns; close() may answer the last few (Disconnected) on the closing thread.
// Callbacks must be short and must not throw (an exception escaping one terminates: it
// would otherwise leave a request unanswered). They may call submit(), but not close(),
// execute() or the destructor.
//
// Errors. A Redis error reply ("-ERR", "-WRONGTYPE", "-NOSCRIPT") is a successful
// RedisResult holding a Reply of type Error: it is that request's answer, the connection
// is fine and the breaker does not count it. RedisErrorKind is for faults: the request
// got no answer.
//
// Timeouts. A request that has no reply command_timeout_ms after submit() completes with
// Timeout. If it was already written, its slot stays in the FIFO as a tombstone and its
// reply is read and dropped when it comes, so replies stay aligned and the requests
// around it are unaffected (resetting the connection at every timeout would turn one slow
// command into failures for everything in flight and a reconnect storm under load). A
// connection on which a reply is overdue and nothing at all has been read for a further
// command_timeout_ms is presumed dead (a black-holed peer never sends RST) and is reset.
//
// Connection loss. Everything in flight fails with Disconnected (Protocol if the stream
// was malformed); nothing is retried, because a write may or may not have been applied.
// Reconnects follow exponential backoff with full jitter. While a connection attempt is
// in progress requests wait for it (within their deadline); while waiting out a backoff
// delay they fail at once with Disconnected: nobody waits for a server that is down.
//
// Circuit breaker. Failures (a failed connect, a lost connection, a batch of timeouts
// found in one pass, a protocol error) count; successes (a connect, any reply) reset the
// count. After breaker_failures consecutive ones the circuit opens: submit() fails fast
// with CircuitOpen, nothing is queued or sent. After breaker_open_ms the I/O thread
// itself sends one probe (a connect attempt, or a PING on a live connection); user
// requests are not used as probes and keep failing fast until the probe succeeds.
//
// Health. While connected and the circuit is closed, a PING every health_interval_ms
// measures latency; its timeout counts as a failure like any other.
//
// Sentinel. With a redis+sentinel:// URL the client connects to the master a
// SentinelResolver names (sentinel.hpp): every attempt asks it where the master is now,
// a change of master drops a connection to any other address (what was in flight fails
// with Disconnected) and reconnects at once, and a failed connection or a READONLY reply
// makes the resolver ask the sentinels again. Until the resolver's first round ends,
// requests wait for it as they wait for a connect.
//
// Time comes from the injected Clock, but the I/O thread waits with poll(), so the
// client needs a clock that moves by itself (SystemClock); ManualClock is for the pure
// pieces (breaker, backoff).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "herdcache/clock.hpp"
#include "herdcache/connection_state.hpp"
#include "herdcache/errors.hpp"
#include "herdcache/inline_function.hpp"
#include "herdcache/redis_url.hpp"
#include "herdcache/resp.hpp"

namespace herdcache {

class SentinelResolver;  // sentinel.hpp

struct RedisOptions {
  std::int64_t connect_timeout_ms = 2000;  // TCP connect + AUTH/SELECT/PING handshake
  std::int64_t command_timeout_ms = 1000;  // submit() to reply; then Timeout
  std::int64_t backoff_initial_ms = 25;    // reconnect delay ceiling of the first retry
  std::int64_t backoff_max_ms = 2000;      // reconnect delay ceiling, at most
  int breaker_failures = 5;                // consecutive failures that open the circuit
  std::int64_t breaker_open_ms = 1000;     // time open before one probe
  std::size_t max_pending = 65536;         // requests queued or in flight; then Overloaded
  std::int64_t health_interval_ms = 1000;  // PING period while connected; 0 = no PING

  void validate() const;  // InvalidArgument naming the field
};

enum class RedisErrorKind : std::uint8_t {
  Timeout,       // no reply within command_timeout_ms
  Disconnected,  // not connected, or the connection was lost with the request in flight
  CircuitOpen,   // refused without being sent: the circuit breaker is open
  Overloaded,    // refused without being sent: max_pending requests already outstanding
  Protocol,      // the server's bytes were not RESP; the connection was reset
};
const char* to_string(RedisErrorKind kind) noexcept;

// A Redis fault as an exception, for callers that prefer throwing (RedisResult::take).
class RedisError : public Error {
 public:
  RedisError(RedisErrorKind kind, const std::string& message);
  RedisErrorKind kind() const noexcept { return kind_; }

 private:
  RedisErrorKind kind_;
};

// A request's outcome: the Reply (which may be a Redis error reply), or a fault.
class RedisResult {
 public:
  static RedisResult success(Reply reply) { return RedisResult(std::move(reply)); }
  static RedisResult failure(RedisErrorKind kind, std::string message) {
    return RedisResult(Failure{kind, std::move(message)});
  }

  bool ok() const noexcept { return std::holds_alternative<Reply>(value_); }
  const Reply& reply() const { return std::get<Reply>(value_); }  // precondition: ok()
  Reply& reply() { return std::get<Reply>(value_); }
  RedisErrorKind error_kind() const { return std::get<Failure>(value_).kind; }  // !ok()
  const std::string& error_message() const { return std::get<Failure>(value_).message; }
  // The reply, moved out; throws RedisError when the request failed.
  Reply take() &&;

  std::string debug_string() const;  // "bulk[3](abc)" or "Timeout: ..."

 private:
  struct Failure {
    RedisErrorKind kind;
    std::string message;
  };
  explicit RedisResult(Reply reply) : value_(std::move(reply)) {}
  explicit RedisResult(Failure failure) : value_(std::move(failure)) {}

  std::variant<Reply, Failure> value_;
};

struct RedisHealth {
  bool connected = false;
  double latency_ms = -1;          // last PING round trip; -1 before the first
  std::string circuit = "closed";  // "closed", "open" or "half_open"
  int consecutive_failures = 0;
  std::uint64_t errors = 0;        // requests that got no answer + failed connects/drops
  std::uint64_t timeouts = 0;      // of which timeouts
  std::uint64_t rejected = 0;      // CircuitOpen + Overloaded refusals
  std::uint64_t reconnects = 0;    // successful connects after the first
  std::size_t pending = 0;         // requests queued or in flight now
  std::string last_error;          // empty until something fails
  // Error replies by kind (reply_errors.hpp), the kinds seen so far: answers, not faults,
  // so none of the counts above includes them.
  std::vector<std::pair<std::string, std::uint64_t>> error_replies;
};

class RedisClient {
 public:
  // A request's callback, kept inline up to kCallbackBytes (inline_function.hpp): the
  // shared tier's read callbacks fit, so a read allocates nothing on the way out.
  static constexpr std::size_t kCallbackBytes = 192;
  using Callback = InlineFunction<void(RedisResult), kCallbackBytes>;
  using EventCallback = std::function<void(const ConnectionEvent&)>;

  // Starts the I/O thread, which connects at once. Throws InvalidArgument on bad options.
  // `sentinel`: the resolver to share with other connections of a sentinel URL (null: one
  // of its own); unused otherwise.
  RedisClient(RedisUrl url, RedisOptions options, EventCallback on_event = {},
              std::shared_ptr<const Clock> clock = system_clock(),
              std::shared_ptr<SentinelResolver> sentinel = nullptr);
  ~RedisClient();  // close()
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Queues one command (the command name and its arguments, any bytes; a braced list or a
  // vector of them converts). Any thread. Throws InvalidArgument when it is empty; every
  // other outcome reaches cb.
  void submit(Command command, Callback cb);

  // While one of these lives on a thread, submit() from that thread queues without waking
  // the I/O thread, and whoever made it calls wake() soon after. The asyncio bridge does,
  // once per event-loop iteration: every request of one iteration goes out as one batch,
  // for one wakeup of the I/O thread instead of one per request. Nests.
  class DeferWakeups {
   public:
    DeferWakeups() noexcept;
    ~DeferWakeups();
    DeferWakeups(const DeferWakeups&) = delete;
    DeferWakeups& operator=(const DeferWakeups&) = delete;
  };
  // Wakes the I/O thread for requests queued under DeferWakeups. Any thread.
  void wake();

  // Blocks the calling thread until the reply or a fault (bounded by the timeouts).
  // Not from the I/O thread (a callback): throws Error there instead of deadlocking.
  RedisResult execute(Command command);

  RedisHealth health() const;  // any thread
  const RedisUrl& url() const noexcept;

  // Fails everything pending with Disconnected, stops and joins the I/O thread.
  // Idempotent; later submits fail with Disconnected. Not from a callback.
  void close();

  class Impl;  // redis_client.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace herdcache
