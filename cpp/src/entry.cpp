#include "herdcache/entry.hpp"

#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include <fmt/format.h>

#include "herdcache/codes.hpp"
#include "herdcache/errors.hpp"

namespace herdcache {

namespace {
constexpr std::string_view kDomain = "herdcache entry 1";  // what the MAC is of, versioned
// A compressed body is MACed under a domain of its own: flipping the stored flags byte
// between "signed" and "signed, compressed" makes the entry a forgery.
constexpr std::string_view kCompressedDomain = "herdcache entry 1 zstd";
}  // namespace

EntrySigner::EntrySigner(std::string key) : key_(std::move(key)) {
  if (key_.size() < kMinKeyBytes) {
    throw InvalidArgument(fmt::format("signing_key must be at least {} bytes, got {}", kMinKeyBytes, key_.size()));
  }
}

void EntrySigner::mac(std::string_view entry_key, std::string_view body, const StoredFields& fields,
                      bool compressed, unsigned char* out) const {
  const std::string_view domain = compressed ? kCompressedDomain : kDomain;
  std::string message;
  message.reserve(domain.size() + entry_key.size() + body.size() + fields.t.size() + fields.x.size() + 96);
  message.append(domain);
  for (std::string_view part : {entry_key, fields.f, fields.s, fields.d, fields.t, fields.x, body}) {
    fmt::format_to(std::back_inserter(message), "{}:", part.size());
    message.append(part);
  }
  unsigned int length = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), reinterpret_cast<const unsigned char*>(message.data()),
       message.size(), out, &length);
}

std::string EntrySigner::seal(std::string_view entry_key, std::string_view payload, const StoredFields& fields) const {
  // The codec's payloads all start "HC\x00" or, compressed, "HC\x02"; anything else is
  // signed whole, as a body. The compressed bytes are what is signed.
  const bool compressed = payload.starts_with(kCompressedHeader);
  const std::string_view body =
      compressed || payload.starts_with(kPayloadHeader) ? payload.substr(kPayloadHeader.size()) : payload;
  const std::string_view header = compressed ? kSignedCompressedHeader : kSignedHeader;
  std::string out;
  out.reserve(header.size() + kMacBytes + body.size());
  out.append(header);
  out.resize(header.size() + kMacBytes);
  mac(entry_key, body, fields, compressed, reinterpret_cast<unsigned char*>(out.data() + header.size()));
  out.append(body);
  return out;
}

std::optional<std::string> EntrySigner::open(std::string_view entry_key, std::string_view v,
                                             const StoredFields& fields) const {
  const bool compressed = v.starts_with(kSignedCompressedHeader);
  if (!(compressed || v.starts_with(kSignedHeader)) || v.size() < kSignedHeader.size() + kMacBytes) return std::nullopt;
  const std::string_view body = v.substr(kSignedHeader.size() + kMacBytes);
  unsigned char expected[kMacBytes];
  mac(entry_key, body, fields, compressed, expected);
  if (CRYPTO_memcmp(expected, v.data() + kSignedHeader.size(), kMacBytes) != 0) return std::nullopt;
  const std::string_view header = compressed ? kCompressedHeader : kPayloadHeader;
  std::string payload;
  payload.reserve(header.size() + body.size());
  payload.append(header).append(body);
  return payload;
}

}  // namespace herdcache
