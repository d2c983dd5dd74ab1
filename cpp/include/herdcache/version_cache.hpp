// The dependency versions one instance has seen, so that a read can be checked without
// asking Redis for them: the plain-read path of the shared tier (redis_tier.hpp).
//
// An entry in Redis records the version of every version key it depends on (its prefix
// levels and tags, scripts.hpp). It is valid while each of those keys still holds that
// version. Versions only change by an invalidation, and every invalidation is broadcast,
// so an instance that knows a version and has received every broadcast since knows it is
// current. Staleness is bounded by the broadcast's delay, as it is for the memory tier.
//
// Two rules keep that true:
//  - forget() and clear() come before anything that could make a known version wrong:
//    this instance's own bumps (before they are sent), every prefix or tag broadcast from
//    others (as it arrives), and any connection loss (a broadcast may have been missed).
//  - learn() takes versions read from Redis only if nothing was forgotten between sending
//    that read and learning its answer (the epoch). Otherwise a version read just before a
//    bump could be learned just after the bump's broadcast was applied, and stay.
//
// Thread-safe: the client's I/O thread learns and checks, the subscriber's forgets.
// Bounded: past `capacity` names it starts over empty (one more read per name).
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace herdcache {

class VersionCache {
 public:
  static constexpr std::size_t kDefaultCapacity = 65536;
  explicit VersionCache(std::size_t capacity = kDefaultCapacity) : capacity_(capacity) {}

  enum class Check : std::uint8_t {
    Valid,    // every dependency known and matching: the entry is current
    Invalid,  // some known dependency moved: the entry is out of date
    Unknown,  // some dependency not known (or `deps` malformed): ask Redis
  };
  // `deps`: an entry's dependency record, "<version key>\n<version>\n" repeated.
  Check check(std::string_view deps) const;

  // The version known for one version key, if any.
  std::optional<std::string> find(const std::string& name) const;

  // The epoch to pass to learn() for a read sent now.
  std::uint64_t epoch() const;
  // Takes `deps` (same form) as current, unless something was forgotten since `epoch`.
  // Returns whether it did.
  bool learn(std::string_view deps, std::uint64_t epoch);
  // `names` as version keys; `versions` one per name (a write's or a miss's view).
  bool learn(const std::vector<std::string>& names, const std::vector<std::string>& versions,
             std::uint64_t epoch);

  void forget(const std::vector<std::string>& names);
  void clear();
  std::size_t size() const;

 private:
  void put(std::string_view name, std::string_view version);  // mu_ held

  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::uint64_t epoch_ = 0;
  std::unordered_map<std::string, std::string> versions_;
};

}  // namespace herdcache
