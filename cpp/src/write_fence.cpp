#include "herdcache/write_fence.hpp"

#include <algorithm>

namespace herdcache {

void WriteFence::record(Kind kind, std::vector<std::string> targets) {
  std::lock_guard lock(mutex_);
  if (records_.size() == kRemembered) records_.pop_front();
  const Seq seq = seq_.load(std::memory_order_relaxed) + 1;
  records_.push_back(Record{seq, kind, std::move(targets)});
  seq_.store(seq, std::memory_order_release);  // under the lock: records stay in order
}

void WriteFence::record_key(std::string_view key) { record(Kind::Key, {std::string(key)}); }
void WriteFence::record_prefix(std::string_view resource, std::string_view canonical_prefix) {
  record(Kind::Prefix, {std::string(resource), std::string(canonical_prefix)});
}
void WriteFence::record_tags(const std::vector<std::string>& tags) { record(Kind::Tags, tags); }
void WriteFence::record_pattern(std::string_view pattern) { record(Kind::Pattern, {std::string(pattern)}); }
void WriteFence::record_all() { record(Kind::All, {}); }

bool WriteFence::covers(const Record& r, const Key& key, const std::vector<std::string>& tags) {
  switch (r.kind) {
    case Kind::Key: return r.targets[0] == key.str;
    case Kind::Prefix: return r.targets[0] == key.resource && key_has_prefix(key.canonical(), r.targets[1]);
    case Kind::Tags:
      return std::any_of(r.targets.begin(), r.targets.end(), [&](const std::string& t) {
        return std::find(tags.begin(), tags.end(), t) != tags.end();
      });
    case Kind::Pattern: {
      std::string_view canonical = key.canonical();
      std::size_t colon = canonical.find(':');
      return glob_match(r.targets[0], colon == std::string_view::npos ? canonical : canonical.substr(colon + 1));
    }
    case Kind::All: return true;
  }
  return true;
}

bool WriteFence::allows(Seq since, const Key& key, const std::vector<std::string>& tags) const {
  if (since == kUnfenced || since >= sequence()) return true;
  std::lock_guard lock(mutex_);
  if (records_.empty() || records_.front().seq > since + 1) return false;  // forgotten: cannot tell
  for (auto it = records_.rbegin(); it != records_.rend() && it->seq > since; ++it) {
    if (covers(*it, key, tags)) return false;
  }
  return true;
}

}  // namespace herdcache
