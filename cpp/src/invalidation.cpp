#include "herdcache/invalidation.hpp"

#include <charconv>

#include <fmt/format.h>

namespace herdcache {

namespace {
constexpr std::string_view kMagic = "HCI1";
constexpr std::size_t kMaxVersionKeyTail = 200;  // longer prefixes/tags are hashed

std::size_t expected_fields(Invalidation::Kind kind) {
  switch (kind) {
    case Invalidation::Kind::Key: return 1;
    case Invalidation::Kind::Prefix: return 2;
    case Invalidation::Kind::Pattern: return 1;
    case Invalidation::Kind::Clear: return 0;
    case Invalidation::Kind::Tags: return 0;  // any number >= 1, checked separately
  }
  return 0;
}

std::string bounded(std::string_view text) {
  // Version keys travel '\n'-separated inside entries: a tag with a newline is hashed.
  if (text.size() <= kMaxVersionKeyTail && text.find('\n') == std::string_view::npos) {
    return std::string(text);
  }
  return fmt::format("{}#{:016x}", text.substr(0, 64), hash_bytes(text));
}
}  // namespace

Invalidation Invalidation::key(std::string origin, std::string key) {
  return {Kind::Key, std::move(origin), {std::move(key)}};
}
Invalidation Invalidation::prefix(std::string origin, std::string resource, std::string canonical_prefix) {
  return {Kind::Prefix, std::move(origin), {std::move(resource), std::move(canonical_prefix)}};
}
Invalidation Invalidation::tags(std::string origin, std::vector<std::string> tags) {
  return {Kind::Tags, std::move(origin), std::move(tags)};
}
Invalidation Invalidation::pattern(std::string origin, std::string pattern) {
  return {Kind::Pattern, std::move(origin), {std::move(pattern)}};
}
Invalidation Invalidation::clear(std::string origin) { return {Kind::Clear, std::move(origin), {}}; }

std::size_t Invalidation::apply(MemoryTier& memory) const {
  switch (kind) {
    case Kind::Key: return erase_key(memory, targets[0], hash_bytes(targets[0]));
    case Kind::Prefix: return erase_prefix(memory, targets[0], targets[1]);
    case Kind::Tags: return memory.erase_tags(targets);
    case Kind::Pattern: return erase_pattern(memory, targets[0]);
    case Kind::Clear: return memory.clear();
  }
  return 0;
}

// The entries built from what an invalidation removes go with it, uncounted: the count
// says how many entries the invalidation named (delete() answers whether the key existed).
std::size_t erase_key(MemoryTier& memory, std::string_view key, std::uint64_t hash) {
  std::size_t removed = memory.erase(key, hash) ? 1 : 0;
  memory.erase_tags({fmt::format("{}{}", kKeyDependency, key)});
  return removed;
}

std::size_t erase_prefix(MemoryTier& memory, std::string_view resource, std::string_view canonical_prefix) {
  std::size_t removed = memory.erase_prefix(resource, canonical_prefix);
  memory.erase_tags({fmt::format("{}{}", kPrefixDependency, canonical_prefix)});
  return removed;
}

std::size_t erase_pattern(MemoryTier& memory, std::string_view pattern) {
  std::size_t removed = memory.erase_pattern(pattern);
  memory.erase_tagged_by_pattern(kKeyDependency, pattern);
  return removed;
}

std::vector<std::string> dependency_tags(std::string_view key, std::string_view canonical) {
  std::vector<std::string> tags{fmt::format("{}{}", kKeyDependency, key)};
  for (const auto& level : prefix_levels(canonical)) tags.push_back(fmt::format("{}{}", kPrefixDependency, level));
  return tags;
}

std::string encode_invalidation(const Invalidation& inv) {
  std::string out(kMagic);
  out.push_back(static_cast<char>(inv.kind));
  auto field = [&](std::string_view f) { fmt::format_to(std::back_inserter(out), "{}:{}", f.size(), f); };
  field(inv.origin);
  for (const auto& t : inv.targets) field(t);
  return out;
}

std::optional<std::vector<std::string>> decode_fields(std::string_view rest) {
  std::vector<std::string> fields;
  while (!rest.empty()) {
    std::size_t colon = rest.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon > 10) return std::nullopt;
    std::size_t len = 0;
    auto [end, ec] = std::from_chars(rest.data(), rest.data() + colon, len);
    if (ec != std::errc() || end != rest.data() + colon || len > rest.size() - colon - 1) return std::nullopt;
    fields.emplace_back(rest.substr(colon + 1, len));
    rest.remove_prefix(colon + 1 + len);
  }
  return fields;
}

std::optional<Invalidation> decode_invalidation(std::string_view bytes) {
  if (bytes.size() < kMagic.size() + 1 || bytes.substr(0, kMagic.size()) != kMagic) return std::nullopt;
  Invalidation inv;
  char kind = bytes[kMagic.size()];
  if (kind != 'k' && kind != 'p' && kind != 't' && kind != 'g' && kind != 'c') return std::nullopt;
  inv.kind = static_cast<Invalidation::Kind>(kind);
  auto decoded = decode_fields(bytes.substr(kMagic.size() + 1));
  if (!decoded) return std::nullopt;
  std::vector<std::string> fields = std::move(*decoded);
  if (fields.empty()) return std::nullopt;  // no origin
  inv.origin = std::move(fields.front());
  inv.targets.assign(std::make_move_iterator(fields.begin() + 1), std::make_move_iterator(fields.end()));
  if (inv.kind == Invalidation::Kind::Tags ? inv.targets.empty()
                                           : inv.targets.size() != expected_fields(inv.kind)) {
    return std::nullopt;
  }
  return inv;
}

std::vector<std::string> prefix_levels(std::string_view canonical) {
  // Tokens are separated by ':' at bracket depth 0 (strings escape ':' ',' '=' and
  // brackets). The first two tokens are namespace and resource; a token with '=' at
  // depth 0 is a keyword parameter, and parameters are not part of any prefix.
  std::vector<std::string> levels;
  int depth = 0;
  int separators = 0;
  for (std::size_t i = 0; i <= canonical.size(); ++i) {
    char c = i < canonical.size() ? canonical[i] : ':';
    if (c == '[' || c == '{') ++depth;
    else if (c == ']' || c == '}') --depth;
    else if (depth == 0 && c == '=') break;  // reached the parameters
    else if (depth == 0 && c == ':') {
      if (++separators >= 2) levels.emplace_back(canonical.substr(0, i));
    }
  }
  return levels;
}

std::string prefix_version_key(std::string_view ns, std::string_view canonical_prefix) {
  std::string_view tail = canonical_prefix.substr(std::min(canonical_prefix.size(), ns.size() + 1));
  return fmt::format("{}#p:{}", ns, bounded(tail));
}

std::string tag_version_key(std::string_view ns, std::string_view tag) {
  return fmt::format("{}#t:{}", ns, bounded(tag));
}

}  // namespace herdcache
