// zstd frames of payload bodies, and their bounded decompression (compression.hpp).
#include "herdcache/compression.hpp"

#include <zstd.h>

#include "herdcache/codes.hpp"

namespace herdcache {

namespace {

// One context per thread, kept: a context costs a few allocations and, at level 3, about a
// megabyte of tables, which a one-shot ZSTD_compress would redo for every payload.
struct Contexts {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~Contexts() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
};
Contexts& contexts() {
  thread_local Contexts mine;
  return mine;
}

// `prefix` + one frame of `body`; "" only for a bad level (compressBound always fits).
std::string compress_after(std::string_view prefix, std::string_view body, int level) {
  ZSTD_CCtx* c = contexts().c;
  ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  // A checksum of the content: an unsigned entry changed in Redis fails to decompress
  // instead of decoding to other bytes. The content size is recorded (the default).
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
  std::string out(prefix.size() + ZSTD_compressBound(body.size()), '\0');
  out.replace(0, prefix.size(), prefix);
  const std::size_t n =
      ZSTD_compress2(c, out.data() + prefix.size(), out.size() - prefix.size(), body.data(), body.size());
  if (ZSTD_isError(n)) return {};
  out.resize(prefix.size() + n);
  return out;
}

// `prefix` + the frame's content, in one allocation of exactly the declared size.
std::optional<std::string> decompress_after(std::string_view prefix, std::string_view frame, std::size_t max_bytes) {
  const unsigned long long declared = ZSTD_getFrameContentSize(frame.data(), frame.size());
  // Unknown (a streamed frame), an error, or over the limit: refused before allocating.
  if (declared == ZSTD_CONTENTSIZE_UNKNOWN || declared == ZSTD_CONTENTSIZE_ERROR || declared > max_bytes) {
    return std::nullopt;
  }
  // Exactly one frame: trailing bytes (a second frame, skippable or not) are not ours.
  if (ZSTD_findFrameCompressedSize(frame.data(), frame.size()) != frame.size()) return std::nullopt;
  std::string out(prefix.size() + static_cast<std::size_t>(declared), '\0');
  out.replace(0, prefix.size(), prefix);
  // The output buffer is the declared size: a frame that would write more fails here.
  const std::size_t n =
      ZSTD_decompressDCtx(contexts().d, out.data() + prefix.size(), declared, frame.data(), frame.size());
  if (ZSTD_isError(n) || n != declared) return std::nullopt;
  return out;
}

}  // namespace

std::string zstd_compress(std::string_view body, int level) { return compress_after({}, body, level); }

std::optional<std::string> zstd_decompress(std::string_view frame, std::size_t max_bytes) {
  return decompress_after({}, frame, max_bytes);
}

std::string compress_payload(std::string payload, long long min_bytes) {
  if (min_bytes < 0 || payload.size() < static_cast<unsigned long long>(min_bytes) ||
      !std::string_view(payload).starts_with(kPayloadHeader)) {
    return payload;
  }
  std::string compressed =
      compress_after(kCompressedHeader, std::string_view(payload).substr(kPayloadHeader.size()), kCompressionLevel);
  // Kept only when it is smaller: small or incompressible payloads stay as they are.
  if (compressed.empty() || compressed.size() >= payload.size()) return payload;
  return compressed;
}

bool decompress_payload(std::string& payload, std::size_t max_bytes) {
  if (!std::string_view(payload).starts_with(kCompressedHeader)) return true;
  auto plain = decompress_after(kPayloadHeader, std::string_view(payload).substr(kCompressedHeader.size()), max_bytes);
  if (!plain) return false;
  payload = std::move(*plain);
  return true;
}

}  // namespace herdcache
