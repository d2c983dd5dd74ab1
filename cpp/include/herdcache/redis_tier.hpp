// The shared tier: entries in Redis, read and written through Lua scripts (scripts.hpp),
// invalidations broadcast on the namespace's pub/sub channel.
//
// Every operation is asynchronous: it submits to the RedisClient's I/O thread and calls
// its callback there, once, with a TierResult. Callbacks never see Python; the bindings
// forward results to the event loop (or to a blocked sync caller).
//
// Messages from other instances are applied to the memory tier on the subscriber's I/O
// thread (the memory tier is thread-safe, and the handles it releases there are not
// destroyed on that thread: see the bindings' handle deleter). From the moment the
// subscriber is lost while Redis still answers, the memory tier is suspended: it serves
// and keeps nothing, reads go to Redis. When the subscriber is back the tier starts over
// empty (the rule Redis' client-side caching documents); see update_memory_trust().
//
// Reads are plain HMGETs when they can be: an entry whose dependency versions this
// instance already knows (version_cache.hpp) needs no script to be judged current, so it
// costs Redis what a GET costs. Anything else (a miss with a lease wanted, a stale entry,
// an unknown or moved version, the invalidation channel down) goes through the read
// script, which also teaches the instance the versions it saw.
//
// Invalidations made while Redis is unreachable are kept in a bounded journal and
// replayed on reconnect. If the journal overflows, the replay is a whole-namespace clear.
//
// Error replies are answers, so the connection stays up through them; the outcome of
// every write feeds the writes-failing rule (reply_errors.hpp), which stats() reports and
// the log announces once per change of state.
// With a sentinel URL both connections follow the master one SentinelResolver names; a
// failover is a reconnect like any other (the journal replays on the new master, the
// subscriber's move to it flushes the memory tier: the new master may not carry every
// invalidation the old one saw).
//
// This class is the protocol: which command or script each operation sends, what its
// reply means, and when the memory tier is trusted. The pieces it composes have no I/O
// and are their own files: the entry codec (entry_codec.hpp: stored fields, replies and
// fill notices to TierResults, signing included), the fill waiters (fill_waiters.hpp)
// and the invalidation journal (journal.hpp).
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "herdcache/entry_codec.hpp"
#include "herdcache/fill_waiters.hpp"
#include "herdcache/invalidation.hpp"
#include "herdcache/journal.hpp"
#include "herdcache/keys.hpp"
#include "herdcache/memory.hpp"
#include "herdcache/redis.hpp"
#include "herdcache/redis_subscriber.hpp"
#include "herdcache/reply_errors.hpp"
#include "herdcache/sentinel.hpp"
#include "herdcache/tier_result.hpp"
#include "herdcache/version_cache.hpp"

namespace herdcache {

struct TierStats {
  std::uint64_t messages_received = 0;   // invalidations from other instances applied
  std::uint64_t messages_malformed = 0;
  std::uint64_t memory_flushes = 0;      // L1 flushed after a subscriber reconnect
  std::uint64_t writes_refused = 0;      // stale writes refused (dependencies moved)
  std::uint64_t journal_pending = 0;     // invalidations waiting for Redis
  std::uint64_t journal_overflows = 0;
  std::uint64_t reads_plain = 0;         // answered by one HMGET, checked against known versions
  std::uint64_t reads_scripted = 0;      // answered by the read script
  std::uint64_t entries_forged = 0;      // entries whose signature did not verify (misses)
  std::uint64_t versions_known = 0;      // dependency versions this instance holds
  std::uint64_t memory_suspensions = 0;   // times the subscriber-loss rule suspended L1
  std::uint64_t scripts_reloaded = 0;     // NOSCRIPT answers: the script re-run by source, reloaded
  bool subscriber_connected = false;
  bool memory_suspended = false;         // L1 not served now (the subscriber-loss rule)
  // The writes-failing rule (reply_errors.hpp): error replies to writes, not faults.
  bool writes_failing = false;
  std::uint64_t write_errors_in_a_row = 0;
  std::uint64_t writes_failing_episodes = 0;  // times writes began failing
  std::string last_write_error;               // the latest error reply to a write
};

class RedisTier {
 public:
  static constexpr std::size_t kCallbackBytes = kTierCallbackBytes;
  using Callback = TierCallback;
  using LogCallback = std::function<void(int level, const std::string& message)>;  // I/O thread
  static constexpr std::size_t kJournalMax = InvalidationJournal::kDefaultCapacity;
  static constexpr int kScanCount = 500;  // keys per SCAN step / UNLINK batch

  // A non-empty `signing_key` signs every entry written and refuses every entry read that
  // it does not verify (entry.hpp).
  RedisTier(std::string ns, std::string instance_id, const RedisUrl& url, RedisOptions options,
            MemoryTier& memory, std::shared_ptr<const Clock> clock, LogCallback log = {},
            std::string signing_key = {});
  ~RedisTier();

  // What a write that follows a read must prove: its lease, and the versions the read saw.
  struct WriteGuard {
    std::string lease_token;             // "" = no lease held
    std::string generation;              // "" = unchecked
    std::vector<std::string> versions;   // one per dependency, or empty = unchecked
    enum class Condition : std::uint8_t { None, Absent, Equals };
    Condition condition = Condition::None;  // else Conflict
    std::string expected_payload;           // Equals: the payload that must be stored now
    Nanos now_wall = 0;                     // Absent: an entry stale by then counts as absent
    bool announce = false;  // it replaces a value others may hold in memory: the write tells them
  };

  // Reads an entry; `tags` are the tags a later write would carry (for a miss's versions).
  // With a lease token, a miss or an entry not fresh at `refresh_before_wall` grants the
  // lease (or reports it held elsewhere) in the same round trip as the script's read. An
  // entry stale by `now_wall` (the engine's clock) is a miss, whatever Redis' own clock
  // says. An entry that may be served as it is costs one HMGET (see the top), tried first
  // unless `plain_first` is false: for a lease read of a key that is likely missing, the
  // HMGET would only put a round trip before the script's.
  void read(const Key& key, const std::vector<std::string>& tags, const std::string& lease_token,
            Nanos lease_ns, Nanos refresh_before_wall, Nanos now_wall, Callback cb, bool plain_first = true);
  // Done with one version per tag (an entry built from something carrying `tags`
  // depends on these versions): the ones this instance knows, the others read from Redis
  // now. A load records what its loader read this way, so that its write is refused when
  // any of them moved since (the guard, below).
  void versions(const std::vector<std::string>& tags, Callback cb);
  // How long a deleted key's dependency version lives at least (scripts::kDelete): a
  // load that read the key and wrote later than this after the delete would not be
  // refused by it, so a load whose loader read other entries does not write to Redis
  // once it has run for half of this (_ops._lead); its value still serves its callers and
  // this instance's memory. Short, because every delete leaves one such key behind.
  static constexpr std::int64_t kKeyVersionKeepMs = 10 * 60 * 1000;
  // Writes an entry; refused (Refused) when the guard no longer holds.
  void write(const Key& key, std::string payload, Nanos fresh_until_wall, Nanos stale_until_wall,
             Nanos load_ns, const std::vector<std::string>& tags, const WriteGuard& guard,
             Callback cb);
  // Done (or a Hit carrying the entry) when another process fills `key`: its lease
  // holder wrote it or released it. A waiter whose deadline passed is called once with a
  // Fault when a later waiter is added (fill_waiters.hpp); the caller stops waiting on its
  // own at the deadline either way.
  void wait_fill(const Key& key, Nanos timeout_ns, Callback cb);
  // Adds `delta` to the integer `key` holds, atomically (scripts::kIncr): Done with
  // count = the new value; Conflict with error = the stored body when it is not an
  // integer (nothing changed; count 1: it is, but the sum leaves +-(2^53 - 1); count 2: it
  // is stored signed or compressed, which the caller compare-and-sets); Fault on a signed tier (the caller compare-and-sets) or
  // when Redis cannot answer. `fresh_until_wall`/`stale_until_wall`: a new entry's
  // lifetime, or every entry's when `set_lifetime`; `now_wall`: the caller's clock, which
  // decides whether the stored entry is still alive.
  void incr(const Key& key, std::int64_t delta, Nanos fresh_until_wall, Nanos stale_until_wall, bool set_lifetime,
            const std::vector<std::string>& tags, Nanos now_wall, Callback cb);
  bool signs() const noexcept;
  // Gives a lease back (a failed load) and wakes whoever waits for the key.
  void release(const Key& key, const std::string& lease_token, Callback cb);
  // Takes "<ns>#c:<name>" for `ttl_ms` unless someone holds it (one scheduled warm of a
  // key per period across instances). Done with count 1 when taken, 0 when held elsewhere.
  void claim(const std::string& name, const std::string& token, std::int64_t ttl_ms, Callback cb);

  // Invalidations: applied in Redis and broadcast to every instance. Done.count is what
  // Redis reports (entries removed, or version keys bumped).
  void invalidate(const Invalidation& inv, Callback cb);

  // Sends what this thread queued under RedisClient::DeferWakeups.
  void wake() { client_->wake(); }

  RedisHealth health() const;
  TierStats stats() const;
  // While writes are failing, one probe write (an INCR of the namespace's probe key, by
  // script like every write) at most every kWriteProbeNs: an instance that gets no
  // traffic (a load balancer took it out on its 503) makes no writes of its own, yet must
  // see them succeed again. Called where health is read (the bindings' redis_stats).
  static constexpr Nanos kWriteProbeNs = 1'000'000'000;
  void probe_writes();
  // With a sentinel URL, the resolver both connections follow; null otherwise.
  const SentinelResolver* sentinel() const noexcept { return sentinel_.get(); }
  const std::string& instance_id() const noexcept { return instance_id_; }
  const std::string& channel() const noexcept { return channel_; }
  void close();

 private:
  struct Script;
  void eval(const Script& script, std::vector<std::string> keys, std::vector<std::string> args,
            RedisClient::Callback done);
  void scan_unlink(std::string match, std::string cursor, std::int64_t removed, Invalidation inv,
                   Callback cb);
  struct ReadArgs;
  void read_plain(ReadArgs args, Callback cb);
  void read_scripted(const ReadArgs& args, Callback cb);
  TierResult entry_hit(std::string_view key, std::vector<Reply>& e, std::size_t v, std::string_view x);
  void note_forged(std::string_view key);
  void note_write(const RedisResult& result);
  std::string version_key(std::string_view tag) const;  // a dependency tag's version key
  std::vector<std::string> dependencies(std::string_view canonical, const std::vector<std::string>& tags) const;
  std::vector<std::string> bumped_version_keys(const Invalidation& inv) const;
  void replay_journal();
  void on_message(const std::string& channel, const std::string& payload);
  std::string lease_key(std::string_view key) const { return std::string(ns_).append("#l:").append(key); }
  std::string waiters_key(std::string_view key) const { return std::string(ns_).append("#w:").append(key); }

  FillWaiters fill_waiters_;
  void on_subscriber_event(const ConnectionEvent& event);
  void on_client_event(const ConnectionEvent& event);
  void on_connected();
  void update_memory_trust();

  std::string ns_;
  std::string instance_id_;
  std::string channel_;
  std::string fill_channel_;
  std::string generation_key_;
  MemoryTier& memory_;
  std::shared_ptr<const Clock> clock_;
  LogCallback log_;
  std::unique_ptr<Script> read_, write_, bump_, delete_, release_, incr_, unlink_batch_;
  EntryCodec codec_;  // seals what is written, opens what is read
  std::shared_ptr<SentinelResolver> sentinel_;  // before the connections that use it
  std::unique_ptr<RedisClient> client_;
  std::unique_ptr<RedisSubscriber> subscriber_;

  InvalidationJournal journal_;

  VersionCache versions_;
  WriteHealth write_health_;

  std::atomic<std::uint64_t> messages_received_{0}, messages_malformed_{0}, memory_flushes_{0},
      writes_refused_{0}, reads_plain_{0}, reads_scripted_{0}, forged_{0}, scripts_reloaded_{0};
  std::atomic<bool> subscriber_connected_{false};
  std::atomic<bool> client_connected_{false};
  std::mutex trust_mutex_;
  std::atomic<std::uint64_t> memory_suspensions_{0};
  std::atomic<bool> subscriber_seen_{false};
  std::atomic<bool> started_{false}, connected_once_{false};
  std::atomic<Nanos> last_probe_ns_{0};  // probe_writes(): monotonic time of the last probe
};

}  // namespace herdcache
