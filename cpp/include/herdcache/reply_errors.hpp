// Redis error replies: what kind each one is, how many of each came back, and whether the
// shared tier's writes are failing.
//
// An error reply ("-READONLY You can't write against a read only replica") is an answer,
// not a fault: the connection is fine, the breaker does not see it (redis.hpp), and a
// socket-level health check says all is well. Yet a cluster node answering CROSSSLOT to
// every script, a replica answering READONLY after a failover, or a server at maxmemory
// answering OOM means nothing the cache writes reaches Redis, and every instance quietly
// runs from its memory tier alone. These pieces make that visible.
//
// Kinds are the error reply's first word, out of a fixed list (Redis' own error codes);
// any other first word is "other". The list is fixed so the counts stay bounded whatever
// a server (or a script) answers.
//
// Writes failing. The rule, in one sentence: writes are failing from the moment
// kFailingAfter writes in a row were answered with an error reply, until a write succeeds.
// A write is a command or script that changes Redis (an entry stored, a counter
// incremented, an invalidation applied, a lease released); its outcome counts once it is
// final (a NOSCRIPT answered by re-running the script by source counts as the re-run's
// outcome). A fault (a timeout, a lost connection) is neither: the connection state
// already reports it. Reads never count, whatever they are answered. While writes are
// failing the shared tier sends a probe write of its own now and then (RedisTier::
// probe_writes), so the state can end on an instance that makes no writes.
//
// No I/O and no clock here: the shared tier feeds outcomes in, and tests feed strings.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herdcache {

enum class ReplyError : std::uint8_t {
  CrossSlot,    // keys of one command in different cluster slots
  ReadOnly,     // a replica: writes refused
  Oom,          // maxmemory reached with a noeviction policy
  NoScript,     // EVALSHA of a script the server does not hold (it is reloaded)
  WrongType,    // a key holds another type than the command works on
  Moved,        // cluster: the slot lives on another node
  Ask,          // cluster: the slot is migrating
  TryAgain,     // cluster: a multi-key command during resharding
  ClusterDown,
  MasterDown,   // a replica that lost its master (replica-serve-stale-data no)
  Loading,      // the server is loading its dataset
  Busy,         // a script runs too long
  Misconf,      // persistence failing (stop-writes-on-bgsave-error)
  NoReplicas,   // min-replicas-to-write not met
  NoAuth,
  NoPerm,       // ACL
  Err,          // the generic "ERR ..." (syntax, a script's own error, ...)
  Other,        // any other first word
  kCount
};

ReplyError classify_reply_error(std::string_view message) noexcept;  // "READONLY You ..." -> ReadOnly
std::string_view reply_error_name(ReplyError kind) noexcept;          // "READONLY", ..., "other"

// How many error replies of each kind arrived. Lock-free: count() is a relaxed add.
class ReplyErrorCounts {
 public:
  void count(std::string_view message) noexcept;
  std::uint64_t get(ReplyError kind) const noexcept;
  // The kinds seen at least once, by name, in enum order.
  std::vector<std::pair<std::string, std::uint64_t>> snapshot() const;

 private:
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(ReplyError::kCount)> counts_{};
};

// The writes-failing state (the rule at the top). Any thread; the tier feeds it from its
// I/O thread.
class WriteHealth {
 public:
  static constexpr int kFailingAfter = 3;  // writes in a row answered with an error reply

  enum class Change : std::uint8_t { None, Failing, Recovered };  // what a call just did

  Change on_error_reply(std::string_view message);
  Change on_success();

  struct Snapshot {
    bool failing = false;
    int errors_in_a_row = 0;         // writes answered with an error since the last success
    std::uint64_t episodes = 0;      // times the state began
    std::string last_error;          // the latest error reply to a write ("" before one)
  };
  Snapshot snapshot() const;
  bool failing() const noexcept { return failing_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mutex_;
  std::atomic<bool> failing_{false};
  std::atomic<int> errors_in_a_row_{0};  // read without the lock by on_success's fast path
  std::uint64_t episodes_ = 0;
  std::string last_error_;
};

}  // namespace herdcache
