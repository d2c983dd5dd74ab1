// The entry codec: a shared-tier entry between the text Redis keeps and the TierResult
// the engine sees. An entry is a hash of text fields (v payload, f fresh-until ms,
// s stale-until ms, d load ms, t '\n'-joined tags, x dependency record: scripts.hpp); it
// reaches this instance three ways, all decoded here: an HMGET reply, the read script's
// reply, and a fill notice on the fill channel ("<len>:<bytes>" fields: key, then after a
// write v f s d t x). With a signing key every entry is sealed on its way in and opened on
// its way out (entry.hpp); one that does not open is reported forged, never served. No
// I/O and no counters: the caller counts and logs what is forged, so all of this is
// tested with byte strings. Compressed payloads are decompressed here, on the thread that
// decodes the reply (a Redis I/O thread, which never holds the GIL), so neither the event
// loop nor Python ever sees a compressed payload.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "herdcache/clock.hpp"
#include "herdcache/compression.hpp"
#include "herdcache/entry.hpp"
#include "herdcache/resp.hpp"
#include "herdcache/tier_result.hpp"

namespace herdcache {

// The fields' text forms. parse_int reads a decimal prefix (0 when there is none).
std::int64_t parse_int(std::string_view text);
// A millisecond field (f, s, d) in nanoseconds, saturated at the range of Nanos: the
// fields come from Redis, and a value past it must not overflow.
Nanos parse_ms_as_ns(std::string_view text) noexcept;
std::vector<std::string> split_lines(std::string_view text);  // "a\nb" -> {a, b}; "" -> {}
std::string join_lines(const std::vector<std::string>& parts);

// A fill notice as the waiters of its key get it.
struct FillNotice {
  std::string key;
  // Hit with the entry the filler wrote, or Done with nothing: a release, or a notice
  // whose entry was forged (the waiters then read for themselves).
  TierResult filled;
  bool forged = false;  // the notice carried an entry whose signature did not verify
};

class EntryCodec {
 public:
  // A non-empty `signing_key` seals and opens every entry (EntrySigner; InvalidArgument
  // when it is too short); empty: entries are stored as the codec's payload is. A
  // compressed payload is decompressed as it is decoded, up to `max_payload_bytes`
  // (compression.hpp); one that is refused is handed on as stored, which no reader decodes.
  explicit EntryCodec(std::string signing_key = {}, std::size_t max_payload_bytes = kMaxDecompressedBytes);

  bool signs() const noexcept { return signer_ != nullptr; }

  // The v to store for `payload` under `key` with these fields (x as the script will
  // store it): the payload itself, or sealed.
  std::string seal(std::string_view key, std::string payload, const StoredFields& fields) const;

  // A hit from an entry's fields, `v` moved from; a signed entry that does not open is
  // TierResult::miss() marked forged.
  TierResult hit(std::string_view key, std::string& v, const StoredFields& fields) const;
  // The same from a reply: e[at..at+4] are the stored v f s d t, `x` the stored record.
  TierResult hit(std::string_view key, std::vector<Reply>& e, std::size_t at, std::string_view x) const;

  // nullopt when the bytes are not a fill notice (counted as malformed by the caller).
  std::optional<FillNotice> fill_notice(std::string_view payload) const;

 private:
  std::unique_ptr<const EntrySigner> signer_;  // null: entries unsigned
  std::size_t max_payload_bytes_;
};

}  // namespace herdcache
