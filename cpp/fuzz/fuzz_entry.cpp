// The stored entry format from arbitrary bytes: what an HMGET, the read script or a fill
// notice hands the codec comes from Redis, which other processes (or anyone with access to
// it) write. Checked, with and without a signing key: decoding never crashes or overflows;
// a signed entry opens only for the key and fields it was sealed with, and any changed
// byte of its v, key or fields makes it a forgery, never a hit. Compressed entries
// ("HC\x02" + a zstd frame): any bytes after the header either decompress to a plain
// payload within the limit or are handed on as stored, never more than the limit is
// allocated, and a payload the codec compresses reads back as it was, signed or not.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "herdcache/codes.hpp"
#include "herdcache/compression.hpp"
#include "herdcache/entry_codec.hpp"

using namespace herdcache;

namespace {
// A small decompression limit: a frame declaring more is refused, whatever it holds.
constexpr std::size_t kLimit = 1 << 20;
const EntryCodec kPlain({}, kLimit);
const EntryCodec kSigned(std::string(32, 'k'), kLimit);
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const int part = in.ConsumeIntegralInRange(0, 4);
  if (part == 0) {  // a fill notice as it arrives on the fill channel
    const std::string payload = in.ConsumeRemainingBytesAsString();
    for (const EntryCodec* codec : {&kPlain, &kSigned}) {
      if (auto notice = codec->fill_notice(payload)) {
        const bool hit = notice->filled.status == TierResult::Status::Hit;
        FUZZ_CHECK(hit || notice->filled.status == TierResult::Status::Done);
        FUZZ_CHECK(!(hit && notice->forged));
      }
    }
    return 0;
  }
  std::string key = in.ConsumeRandomLengthString(64);
  std::string fields[5];
  for (auto& f : fields) f = in.ConsumeRandomLengthString(48);
  std::string v = in.ConsumeRemainingBytesAsString();
  if (part == 2) v.insert(0, kPayloadHeader);  // what the codec seals: its own payloads
  const StoredFields stored{fields[0], fields[1], fields[2], fields[3], fields[4]};
  if (part == 3) {  // a compressed entry as a read finds it: any bytes after the header
    v.insert(0, kCompressedHeader);
    std::string copy = v;
    TierResult r = kPlain.hit(key, copy, stored);
    FUZZ_CHECK(r.status == TierResult::Status::Hit);
    FUZZ_CHECK(r.payload == v || (r.payload.starts_with(kPayloadHeader) &&
                                  r.payload.size() <= kPayloadHeader.size() + kLimit));
    return 0;
  }
  if (part == 4) {  // the codec's own payload, compressed, stored and read back
    const std::string payload = std::string(kPayloadHeader) + v;
    const std::string compressed = compress_payload(payload, 0);
    FUZZ_CHECK(compressed == payload || compressed.starts_with(kCompressedHeader));
    std::string copy = compressed;
    FUZZ_CHECK(kPlain.hit(key, copy, stored).payload == payload);
    copy = kSigned.seal(key, compressed, stored);
    TierResult opened = kSigned.hit(key, copy, stored);
    FUZZ_CHECK(opened.status == TierResult::Status::Hit && opened.payload == payload);
    return 0;
  }
  if (part == 1) {  // an entry as a read finds it
    std::string copy = v;
    TierResult plain = kPlain.hit(key, copy, stored);
    FUZZ_CHECK(plain.status == TierResult::Status::Hit && plain.payload == v && !plain.forged);
    copy = v;
    TierResult sealed = kSigned.hit(key, copy, stored);
    FUZZ_CHECK(sealed.forged == (sealed.status != TierResult::Status::Hit));
    return 0;
  }
  // Sealed here, then opened as stored, and with one byte of one part changed.
  const std::string sealed = kSigned.seal(key, v, stored);
  std::string copy = sealed;
  TierResult opened = kSigned.hit(key, copy, stored);
  FUZZ_CHECK(opened.status == TierResult::Status::Hit && opened.payload == v);
  const std::size_t which = data[0] % 7;
  std::string parts[7] = {sealed, key, fields[0], fields[1], fields[2], fields[3], fields[4]};
  std::string& target = parts[which];
  if (target.empty()) {
    target.push_back('x');
  } else {
    target[data[size - 1] % target.size()] ^= static_cast<char>(1 + data[size / 2] % 255);
  }
  const StoredFields edited{parts[2], parts[3], parts[4], parts[5], parts[6]};
  TierResult forged = kSigned.hit(parts[1], parts[0], edited);
  FUZZ_CHECK(forged.forged && forged.status != TierResult::Status::Hit);
  return 0;
}
