#include "herdcache/version_cache.hpp"

namespace herdcache {

namespace {

// Calls f(name, version) for each "<name>\n<version>\n" pair; false if `deps` is not
// exactly a sequence of such pairs.
template <class F>
bool for_each_pair(std::string_view deps, F&& f) {
  while (!deps.empty()) {
    auto name_end = deps.find('\n');
    if (name_end == std::string_view::npos) return false;
    auto version_end = deps.find('\n', name_end + 1);
    if (version_end == std::string_view::npos) return false;
    if (!f(deps.substr(0, name_end), deps.substr(name_end + 1, version_end - name_end - 1))) return true;
    deps.remove_prefix(version_end + 1);
  }
  return true;
}

}  // namespace

VersionCache::Check VersionCache::check(std::string_view deps) const {
  Check result = Check::Valid;
  std::lock_guard lock(mu_);
  bool well_formed = for_each_pair(deps, [&](std::string_view name, std::string_view version) {
    // Heterogeneous lookup needs C++20 transparent hashing; names are short, copy them.
    auto it = versions_.find(std::string(name));
    if (it == versions_.end()) {
      result = Check::Unknown;
    } else if (it->second != version) {
      result = Check::Invalid;
      return false;  // one moved dependency settles it
    }
    return true;
  });
  return well_formed ? result : Check::Unknown;
}

std::optional<std::string> VersionCache::find(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = versions_.find(name);
  if (it == versions_.end()) return std::nullopt;
  return it->second;
}

std::uint64_t VersionCache::epoch() const {
  std::lock_guard lock(mu_);
  return epoch_;
}

bool VersionCache::learn(std::string_view deps, std::uint64_t epoch) {
  std::lock_guard lock(mu_);
  if (epoch != epoch_) return false;
  return for_each_pair(deps, [&](std::string_view name, std::string_view version) {
    put(name, version);
    return true;
  });
}

bool VersionCache::learn(const std::vector<std::string>& names, const std::vector<std::string>& versions,
                         std::uint64_t epoch) {
  std::lock_guard lock(mu_);
  if (epoch != epoch_ || names.size() != versions.size()) return false;
  for (std::size_t i = 0; i < names.size(); ++i) put(names[i], versions[i]);
  return true;
}

void VersionCache::put(std::string_view name, std::string_view version) {
  if (versions_.size() >= capacity_ && versions_.find(std::string(name)) == versions_.end()) {
    versions_.clear();  // start over rather than track recency: relearning costs one read
  }
  versions_.insert_or_assign(std::string(name), std::string(version));
}

void VersionCache::forget(const std::vector<std::string>& names) {
  if (names.empty()) return;  // a key-only broadcast: nothing a read in flight could learn goes stale
  std::lock_guard lock(mu_);
  ++epoch_;
  for (const auto& name : names) versions_.erase(name);
}

void VersionCache::clear() {
  std::lock_guard lock(mu_);
  ++epoch_;
  versions_.clear();
}

std::size_t VersionCache::size() const {
  std::lock_guard lock(mu_);
  return versions_.size();
}

}  // namespace herdcache
