#include "herdcache/entry_codec.hpp"

#include <charconv>
#include <limits>

#include "herdcache/compression.hpp"
#include "herdcache/invalidation.hpp"

namespace herdcache {

std::int64_t parse_int(std::string_view text) {
  std::int64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

Nanos parse_ms_as_ns(std::string_view text) noexcept {
  constexpr Nanos kMax = std::numeric_limits<Nanos>::max(), kMin = std::numeric_limits<Nanos>::min();
  const std::int64_t ms = parse_int(text);
  if (ms > kMax / kNanosPerMs) return kMax;
  if (ms < kMin / kNanosPerMs) return kMin;
  return ms * kNanosPerMs;
}

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    out.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string join_lines(const std::vector<std::string>& parts) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) out.push_back('\n');
    out += parts[i];
  }
  return out;
}

EntryCodec::EntryCodec(std::string signing_key, std::size_t max_payload_bytes)
    : signer_(signing_key.empty() ? nullptr : new EntrySigner(std::move(signing_key))),
      max_payload_bytes_(max_payload_bytes) {}

std::string EntryCodec::seal(std::string_view key, std::string payload, const StoredFields& fields) const {
  return signer_ ? signer_->seal(key, payload, fields) : std::move(payload);
}

TierResult EntryCodec::hit(std::string_view key, std::string& v, const StoredFields& fields) const {
  TierResult out;
  if (signer_) {
    auto opened = signer_->open(key, v, fields);
    if (!opened) {
      out = TierResult::miss();
      out.forged = true;
      return out;
    }
    v = std::move(*opened);
  }
  out.status = TierResult::Status::Hit;
  // Opened first, decompressed after. A frame that is refused is passed on as it is
  // stored: no reader decodes it, so it is an unusable payload, logged and counted
  // where every other one is (herdcache.serializers), and a loader replaces it.
  decompress_payload(v, max_payload_bytes_);
  out.payload = std::move(v);
  out.fresh_until_wall = parse_ms_as_ns(fields.f);
  out.stale_until_wall = parse_ms_as_ns(fields.s);
  out.load_ns = parse_ms_as_ns(fields.d);
  out.tags = split_lines(fields.t);
  return out;
}

TierResult EntryCodec::hit(std::string_view key, std::vector<Reply>& e, std::size_t at, std::string_view x) const {
  return hit(key, e[at].str(), {e[at + 1].str(), e[at + 2].str(), e[at + 3].str(), e[at + 4].str(), x});
}

std::optional<FillNotice> EntryCodec::fill_notice(std::string_view payload) const {
  auto fields = decode_fields(payload);
  if (!fields || (fields->size() != 1 && fields->size() != 7)) return std::nullopt;
  auto& f = *fields;
  FillNotice notice{std::move(f[0]), {}, false};
  notice.filled.status = TierResult::Status::Done;
  if (f.size() == 7) {
    TierResult entry = hit(notice.key, f[1], {f[2], f[3], f[4], f[5], f[6]});
    if (entry.forged) {
      notice.forged = true;  // its waiters are woken all the same, to read for themselves
    } else {
      notice.filled = std::move(entry);
    }
  }
  return notice;
}

}  // namespace herdcache
