// The engine composes keys, policies, the clock, the memory tier, flights and metrics.
// It is the only class the bindings expose as "the cache"; everything a cache decides
// (freshness, lifetimes, jitter, accounting, what an invalidation removes) is decided here.
#pragma once
#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "herdcache/clock.hpp"
#include "herdcache/flights.hpp"
#include "herdcache/keys.hpp"
#include "herdcache/memory.hpp"
#include "herdcache/metrics.hpp"
#include "herdcache/policy.hpp"
#include "herdcache/redis_tier.hpp"

namespace herdcache {

struct EngineOptions {
  std::string ns = "app";                    // key namespace; no ':'
  std::size_t memory_max_bytes = 64u << 20;  // memory tier budget in bytes
  std::size_t memory_shards = 8;
  Policy default_policy{};                   // for resources without their own policy
};

// One resource: its policy and its metrics. Addresses are stable for the engine's life.
struct Resource {
  std::string name;
  Policy policy;
  Counters counters;
  Histogram load_latency;   // loader (database) durations
  Histogram miss_latency;   // get_or_load on a miss, end to end
  Handle decoder;           // the bindings': how this resource's payload bodies decode, if not as the rest
};

class Engine {
 public:
  Engine(EngineOptions options, std::shared_ptr<const Clock> clock);

  const std::string& ns() const noexcept { return options_.ns; }
  const Clock& clock() const noexcept { return *clock_; }
  MemoryTier& memory() noexcept { return memory_; }
  FlightTable<Handle>& flights() noexcept { return flights_; }

  // Policies: set before or during use; a later set replaces the earlier one.
  void set_policy(std::string_view resource, const Policy& policy);
  const Policy& default_policy() const noexcept { return options_.default_policy; }
  // Registered on first use with the default policy. Throws InvalidArgument on a bad name.
  Resource& resource(std::string_view name);
  std::vector<Resource*> resources() const;

  // Starts a key for `resource` in `builder` (the namespace comes from the engine).
  void begin_key(KeyBuilder& builder, std::string_view resource) const;

  // Memory lookup with accounting. Counts a memory hit (and a hit) when fresh; a stale
  // value is visited but counted by the caller once it decides to serve it.
  Lookup lookup(std::string_view key, std::uint64_t hash, Resource& resource,
                MemoryTier::Visitor visit, void* ctx);

  // Stores a value produced now. ttl_override_s < 0 uses the resource's policy. Returns
  // the lifetime given to it; stores in memory unless the policy says memory=false.
  // nullopt when an invalidation covering the key happened after `since` (the memory
  // tier's write_sequence() when its load began): the value is out of date, and must not
  // be written to the shared tier either.
  std::optional<Lifetime> store(const Key& key, Resource& resource, Handle value, std::size_t value_bytes,
                                std::vector<std::string> tags, double ttl_override_s, Nanos load_ns,
                                WriteFence::Seq since = WriteFence::kUnfenced);
  // Where a load begins: what its store passes as `since`.
  WriteFence::Seq write_sequence() const noexcept { return memory_.fence().sequence(); }

  // Invalidation; each returns how many memory entries it removed.
  std::size_t invalidate_key(const Key& key);
  std::size_t invalidate_prefix(std::string_view resource, std::string_view canonical_prefix);
  std::size_t invalidate_tags(const std::vector<std::string>& tags);
  std::size_t invalidate_pattern(std::string_view pattern);
  std::size_t clear();

  // XFetch (early refresh): true when this read should refresh a still-fresh entry early.
  bool should_refresh_early(const Policy& policy, const EntryMeta& meta, Nanos now);

  // The shared tier. Without it the engine is memory-only (the embedded default).
  // A non-empty `signing_key` signs the shared tier's entries (entry.hpp).
  void connect_redis(const RedisUrl& url, RedisOptions options, std::string instance_id,
                     std::string signing_key, RedisTier::LogCallback log);
  RedisTier* redis() noexcept { return redis_.get(); }

  // Stores a value read from the shared tier in memory, for what remains of its lifetime
  // there (wall-clock deadlines, as other processes wrote them).
  // nullopt as for store(): fenced.
  std::optional<Lifetime> store_shared(const Key& key, Resource& resource, Handle value, std::size_t value_bytes,
                                       std::vector<std::string> tags, Nanos fresh_until_wall,
                                       Nanos stale_until_wall, Nanos load_ns,
                                       WriteFence::Seq since = WriteFence::kUnfenced);
  // A memory lifetime as wall-clock deadlines, for writing to the shared tier.
  Lifetime to_wall(const Lifetime& life) const noexcept;

  void close() noexcept;
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  void check_open() const;  // throws ClosedError

  double random_unit() noexcept;  // uniform in [0, 1); thread-local generator

 private:
  bool keep(const Key& key, Resource& res, Handle value, std::size_t value_bytes, std::vector<std::string> tags,
            const Lifetime& life, Nanos load_ns, WriteFence::Seq since);

  EngineOptions options_;
  std::shared_ptr<const Clock> clock_;
  MemoryTier memory_;
  FlightTable<Handle> flights_;
  mutable std::mutex resources_mutex_;
  std::deque<Resource> resource_store_;
  std::unordered_map<std::string, Resource*> resources_;
  std::unordered_map<std::string, Policy> policies_;
  std::atomic<bool> closed_{false};
  std::unique_ptr<RedisTier> redis_;  // after memory_: destroyed first, it applies to memory_
};

}  // namespace herdcache
