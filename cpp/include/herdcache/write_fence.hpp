// The write fence: what keeps a load that began before an invalidation from storing its
// result after it.
//
// Every invalidation the memory tier applies (local or broadcast from another instance,
// a key, a prefix of a resource, tags, a pattern, everything) is recorded here under a
// sequence number before it removes anything. A load notes the sequence when it begins
// (`sequence()`); its store passes that number back, and is refused when an invalidation
// recorded since then covers the key. The last kRemembered invalidations are kept; a
// store older than all of them cannot be checked and is refused too (it loses nothing:
// the value is still returned to its callers, only not cached). The check is one atomic
// load when nothing was invalidated since the load began.
//
// The memory tier checks under the shard lock it inserts under, and an invalidation is
// recorded before it takes that lock to remove, so either the store sees the record or
// the removal sees the stored entry.
#pragma once
#include <atomic>
#include <cstdint>
#include <deque>
#include <limits>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "herdcache/keys.hpp"

namespace herdcache {

class WriteFence {
 public:
  using Seq = std::uint64_t;
  static constexpr Seq kUnfenced = std::numeric_limits<Seq>::max();  // a store no load precedes
  static constexpr std::size_t kRemembered = 1024;

  Seq sequence() const noexcept { return seq_.load(std::memory_order_acquire); }

  void record_key(std::string_view key);
  void record_prefix(std::string_view resource, std::string_view canonical_prefix);
  void record_tags(const std::vector<std::string>& tags);
  void record_pattern(std::string_view pattern);  // glob over the key without "<ns>:"
  void record_all();

  // True when no invalidation recorded after `since` covers `key` (carrying `tags`, sorted
  // or not). kUnfenced is always allowed.
  bool allows(Seq since, const Key& key, const std::vector<std::string>& tags) const;

 private:
  enum class Kind : std::uint8_t { Key, Prefix, Tags, Pattern, All };
  struct Record {
    Seq seq;
    Kind kind;
    std::vector<std::string> targets;  // Key: {key}  Prefix: {resource, prefix}  Tags  Pattern: {glob}
  };
  void record(Kind kind, std::vector<std::string> targets);
  static bool covers(const Record& r, const Key& key, const std::vector<std::string>& tags);

  mutable std::mutex mutex_;
  std::deque<Record> records_;  // oldest first, at most kRemembered
  std::atomic<Seq> seq_{0};
};

}  // namespace herdcache
