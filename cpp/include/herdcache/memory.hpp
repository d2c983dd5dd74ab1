// The memory tier: a sharded LRU bounded in bytes.
//
// Values are opaque handles (Python objects in production, anything in tests); the tier
// never looks inside them. Each entry is charged key + canonical key + value bytes +
// kEntryOverhead, and per tag its name + kTagOverhead, against max_bytes. The overheads
// are what an entry really costs (memory.cpp checks them against its layout). The budget is global: an insert that pushes the total
// over it evicts least-recently-used entries (its own shard first, then the others) until
// the total fits again, so the budget is exceeded by at most the entries being inserted
// concurrently. An entry larger than the whole budget (or charged 4 GiB or more) is not stored.
//
// Entries move fresh -> stale -> expired by the clock; an expired entry is a miss and is
// removed when found. get/put/erase are O(1). Secondary indexes (per resource and per
// tag, per shard) make invalidation by prefix of args, by tag and by glob pattern cost the
// entries concerned rather than the whole tier.
//
// Handles released by a removal are destroyed after the shard lock is dropped, so a
// handle's destructor may call back into the tier.
//
// Every removal through erase/erase_*/clear is an invalidation and is recorded in the
// tier's write fence (write_fence.hpp) first: a put that passes the sequence its load
// began at is refused when one of them covered the key since.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "herdcache/clock.hpp"
#include "herdcache/handle.hpp"
#include "herdcache/keys.hpp"
#include "herdcache/write_fence.hpp"
#include "herdcache/policy.hpp"

namespace herdcache {

struct EntryData {
  Handle value;
  std::size_t value_bytes = 0;    // size the value is charged for (its serialized size)
  Lifetime life;
  Nanos load_ns = 0;              // how long the load that produced it took (XFetch delta); kept
                                  // to the microsecond, rounded up, at most 71 minutes
  std::vector<std::string> tags;
};

// What a lookup saw, passed to the visitor while the entry is pinned.
struct EntryMeta {
  Lifetime life;
  Nanos load_ns;
};

enum class Lookup : std::uint8_t { Miss, Fresh, Stale };

struct MemoryStats {
  std::size_t bytes = 0;
  std::size_t entries = 0;
  std::size_t max_bytes = 0;
  std::uint64_t evictions = 0;      // removed to stay within the budget
  std::uint64_t expirations = 0;    // removed because found expired
  std::uint64_t rejected = 0;       // not stored: larger than the whole budget
  std::uint64_t fenced = 0;         // not stored: invalidated while it loaded
};

class MemoryTier {
 public:
  struct Options {
    std::size_t max_bytes = 64u << 20;  // byte budget for all shards together
    std::size_t shards = 8;             // power of two
  };
  static constexpr std::size_t kEntryOverhead = 104;  // entry, allocation, index slot
  static constexpr std::size_t kTagOverhead = 24;     // the entry's link in the tag's ring

  // A visitor runs under the shard lock: it must only copy/pin what it needs.
  using Visitor = void (*)(void* ctx, const Handle& value, const EntryMeta& meta);

  MemoryTier(Options options, std::shared_ptr<const Clock> clock);
  ~MemoryTier();
  MemoryTier(const MemoryTier&) = delete;
  MemoryTier& operator=(const MemoryTier&) = delete;

  // Fresh or Stale: `visit` was called with the value. Miss: absent or expired (removed).
  Lookup get(std::string_view key, std::uint64_t hash, Visitor visit, void* ctx);
  // What became of a put; true when stored.
  struct Put {
    enum Outcome : std::uint8_t {
      Stored,
      Fenced,   // an invalidation recorded after `since` (WriteFence::sequence()) covers it
      NotKept,  // larger than the budget, or the tier is suspended: not out of date, only not kept
    } outcome;
    explicit operator bool() const noexcept { return outcome == Stored; }
  };
  // Stores (replacing any entry under the same key, which a value not kept removes too).
  Put put(const Key& key, EntryData data, WriteFence::Seq since = WriteFence::kUnfenced);
  bool erase(std::string_view key, std::uint64_t hash);
  // Every entry of `resource` whose canonical key is `prefix` or starts with `prefix` + ':'.
  std::size_t erase_prefix(std::string_view resource, std::string_view prefix);
  std::size_t erase_tags(const std::vector<std::string>& tags);
  // Glob over the key without its "<namespace>:" (e.g. "courses:*").
  std::size_t erase_pattern(std::string_view pattern);
  // Every entry carrying a tag "<marker><ns>:<rest>" whose <rest> matches the glob
  // `pattern`: the entries built from keys a pattern invalidation removes (dependency
  // tags, invalidation.hpp). Costs the shard's tag names, not its entries.
  std::size_t erase_tagged_by_pattern(std::string_view marker, std::string_view pattern);
  // The tags of the entry under `key` (empty when absent). Finding a tag's name walks its
  // ring to the sentinel: for dependency tracking, which runs beside a load, not a hit.
  std::vector<std::string> tags_of(std::string_view key, std::uint64_t hash) const;
  std::size_t clear();

  // While suspended nothing is served (get() misses) or kept (put() refuses); what the
  // tier holds stays, for the owner to clear() or serve again after resume(). The owner
  // cannot vouch for it meanwhile (the subscriber-loss rule, redis_tier.hpp).
  void suspend() noexcept;
  void resume() noexcept;
  bool suspended() const noexcept { return suspended_.load(std::memory_order_acquire); }

  MemoryStats stats() const;
  const WriteFence& fence() const noexcept { return fence_; }
  // The fence's verdict on a value loaded since `since` that is not put here (a resource
  // that keeps nothing in memory), counted as put() counts it.
  bool admits(WriteFence::Seq since, const Key& key, const std::vector<std::string>& tags);

 private:
  struct Shard;
  Shard& shard_for(std::uint64_t hash) const noexcept;
  void enforce_budget(std::size_t first_shard);

  Options options_;
  std::shared_ptr<const Clock> clock_;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<std::size_t> bytes_{0};
  std::atomic<std::size_t> entries_{0};
  std::atomic<std::uint64_t> evictions_{0};
  std::atomic<std::uint64_t> expirations_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> fenced_{0};
  std::atomic<bool> suspended_{false};
  WriteFence fence_;
};

}  // namespace herdcache
