// A shared-tier entry as Redis stores it, and its signature.
//
// An entry is a hash of fields, each kept as the text Redis holds (scripts.hpp):
//   v payload   f fresh-until ms   s stale-until ms   d load ms   t tags   x dependencies
// Everything a read trusts is in those fields and in the entry's own key. With a signing
// key, v is "HC\x01" + HMAC-SHA256 + body, the MAC taken over the key and every field
// (the body included), each length-prefixed, so none of these pass: a payload copied to
// another key, a lifetime pushed forward, the tag list emptied, the dependency record
// cleared or edited to match newer versions. Without one, v is the codec's payload as it
// is ("HC\x00" + body). A compressed payload ("HC\x02" + zstd frame: compression.hpp)
// is signed as it is stored, "HC\x03" + MAC + frame, under a MAC domain of its own: the
// signature is checked before anything is decompressed. Either way what the rest of the
// engine and Python see is the codec's unsigned, uncompressed payload.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace herdcache {

struct StoredFields {
  std::string_view f, s, d, t, x;
};

class EntrySigner {
 public:
  static constexpr std::size_t kMacBytes = 32;
  static constexpr std::size_t kMinKeyBytes = 16;

  explicit EntrySigner(std::string key);  // InvalidArgument when shorter than kMinKeyBytes

  // The v to store for the codec's unsigned payload ("HC\x00" + body, or compressed).
  std::string seal(std::string_view entry_key, std::string_view payload, const StoredFields& fields) const;
  // The codec's unsigned payload of a stored v (still compressed if it was), or nullopt when v is not signed by this
  // key for exactly this entry key and these fields.
  std::optional<std::string> open(std::string_view entry_key, std::string_view v, const StoredFields& fields) const;

 private:
  void mac(std::string_view entry_key, std::string_view body, const StoredFields& fields, bool compressed,
           unsigned char* out) const;
  std::string key_;
};

}  // namespace herdcache
