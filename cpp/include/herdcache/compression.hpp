// Payload compression (zstd) for the shared tier: a resource whose policy sets
// compress_min_bytes stores payloads at least that big as kCompressedHeader + one zstd
// frame of the body (codes.hpp), when that is smaller. Only what Redis holds is
// compressed: the memory tier keeps values, and every reader sees the codec's plain
// payload ("HC\x00" + body), decompressed as the entry is decoded (entry_codec.hpp).
//
// A frame comes from Redis, so it is not trusted: one that does not declare its content
// size, declares more than the reader's limit, is not exactly one frame, or does not
// decompress to the size it declares is refused before anything that size is allocated
// (a zstd bomb costs nothing). No I/O, no state: tested with byte strings.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace herdcache {

inline constexpr int kCompressionLevel = 3;  // zstd's default: ~3 ms per MB of JSON, ratio ~6-10x
// What a frame may decompress to, by default: far above any value a cache should hold,
// and a bound on what one corrupt or hostile entry can make a reader allocate.
inline constexpr std::size_t kMaxDecompressedBytes = std::size_t{256} << 20;

// One zstd frame of `body`, its content size recorded.
std::string zstd_compress(std::string_view body, int level = kCompressionLevel);
// The frame's content, or nullopt when it is refused (see the top).
std::optional<std::string> zstd_decompress(std::string_view frame, std::size_t max_bytes = kMaxDecompressedBytes);

// The payload to store for the codec's `payload` under a policy's compress_min_bytes
// (< 0: never): kCompressedHeader + frame when the payload is a plain one at least that
// big and the frame makes it smaller, else `payload` as it is. Deterministic for one
// zstd version, which is what a compare-and-set against a compressed entry relies on.
std::string compress_payload(std::string payload, long long min_bytes);
// Replaces a compressed payload by its plain one; false (and `payload` unchanged) when its
// frame is refused. A payload that is not compressed is left as it is (true).
bool decompress_payload(std::string& payload, std::size_t max_bytes = kMaxDecompressedBytes);

}  // namespace herdcache
