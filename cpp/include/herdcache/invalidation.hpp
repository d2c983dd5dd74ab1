// Invalidations as values: what one removes, how it applies to a memory tier, and the
// wire form broadcast to every instance of a namespace over Redis pub/sub.
//
// Wire form (binary safe, no I/O, tested with byte strings):
//   "HCI1" <kind byte> then length-prefixed fields "<decimal length>:<bytes>", the first
//   field being the sender's instance id (so an instance skips its own messages).
//   k: key          p: resource, canonical prefix     t: tag...
//   g: pattern      c: (nothing)
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "herdcache/memory.hpp"

namespace herdcache {

struct Invalidation {
  enum class Kind : char { Key = 'k', Prefix = 'p', Tags = 't', Pattern = 'g', Clear = 'c' };
  Kind kind = Kind::Clear;
  std::string origin;                // instance id of the sender
  std::vector<std::string> targets;  // k: {key}  p: {resource, prefix}  t: tags  g: {pattern}

  static Invalidation key(std::string origin, std::string key);
  static Invalidation prefix(std::string origin, std::string resource, std::string canonical_prefix);
  static Invalidation tags(std::string origin, std::vector<std::string> tags);
  static Invalidation pattern(std::string origin, std::string pattern);
  static Invalidation clear(std::string origin);

  // Removes what it names from `memory`; returns how many entries went.
  std::size_t apply(MemoryTier& memory) const;

  bool operator==(const Invalidation&) const = default;
};

std::string encode_invalidation(const Invalidation& inv);
// "<decimal length>:<bytes>" fields, the framing of every message on the channels;
// nullopt when the bytes are not exactly a sequence of such fields.
std::optional<std::vector<std::string>> decode_fields(std::string_view bytes);
// nullopt for anything that is not a well-formed message (counted by the caller).
std::optional<Invalidation> decode_invalidation(std::string_view bytes);

// The dependencies of a key, as version-key names: one per prefix level of its positional
// arguments ("<ns>#p:<resource>", "<ns>#p:<resource>:<arg1>", ...), then one per tag
// ("<ns>#t:<tag>"). Invalidating a prefix or a tag increments its version key, which
// invalidates every entry depending on it in O(1) round trips.
std::vector<std::string> prefix_levels(std::string_view canonical_key);  // "ns:res", "ns:res:a1", ...
std::string prefix_version_key(std::string_view ns, std::string_view canonical_prefix);
std::string tag_version_key(std::string_view ns, std::string_view tag);

// Dependencies between entries (an entry loaded while another key's loader ran, or with
// depends_on=) are tags, so they cost nothing new at invalidation time and reach every
// instance the way tags do. An entry built from key K carries:
//   "#k:<K>"            K's own dependency tag: deleting K, or a pattern removing it,
//                       invalidates this tag (its version key "<ns>#t:#k:<K>" is bumped)
//   "#p:<level>"        one per prefix level of K: in Redis the very version key of that
//                       prefix ("<ns>#p:..."), so invalidating K's prefix or resource
//                       moves it; in memory, a prefix invalidation erases this tag too
//   every tag K's entry carries, its own dependency tags included, so that an entry
//   built from an entry built from K depends on K as well: transitivity without a walk.
// A key's own expiry is no invalidation and moves nothing.
inline constexpr std::string_view kKeyDependency = "#k:";
inline constexpr std::string_view kPrefixDependency = "#p:";
// K's dependency tags (the first two kinds above), from its key and canonical form.
std::vector<std::string> dependency_tags(std::string_view key, std::string_view canonical);

// Invalidations as they apply to one memory tier, each with the entries built from what
// it removes. Shared by an instance's own invalidations and the broadcasts it receives.
std::size_t erase_key(MemoryTier& memory, std::string_view key, std::uint64_t hash);
std::size_t erase_prefix(MemoryTier& memory, std::string_view resource, std::string_view canonical_prefix);
std::size_t erase_pattern(MemoryTier& memory, std::string_view pattern);

}  // namespace herdcache
