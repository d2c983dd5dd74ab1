// Payload compression: what is compressed and what is not, round trips, and every frame a
// reader must refuse (corrupt, truncated, trailing bytes, no or a lying content size, a
// bomb over the limit) refused without allocating what it declares.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>

#include "herdcache/codes.hpp"
#include "herdcache/compression.hpp"

using namespace herdcache;

namespace {

std::string json_rows(int rows) {
  std::string out = "[";
  for (int i = 0; i < rows; ++i) {
    if (i) out += ",";
    out += "{\"id\":" + std::to_string(i) + ",\"room\":\"B" + std::to_string(i % 40) +
           "\",\"capacity\":" + std::to_string(20 + i % 7) + ",\"building\":\"north\"}";
  }
  return out + "]";
}

std::string plain(std::string_view body) { return std::string(kPayloadHeader).append(body); }

// A frame header declaring `content_size` (single segment, 8-byte size field), then one
// RLE block of `block` bytes of 'a': a frame that claims much more than it carries.
std::string frame_declaring(std::uint64_t content_size, std::uint32_t block) {
  std::string f("\x28\xb5\x2f\xfd", 4);  // the magic number, little-endian
  f.push_back(static_cast<char>(0xE0));  // FCS 8 bytes, single segment, no checksum
  for (int i = 0; i < 8; ++i) f.push_back(static_cast<char>((content_size >> (8 * i)) & 0xff));
  const std::uint32_t header = 1u | (1u << 1) | (block << 3);  // last block, RLE
  for (int i = 0; i < 3; ++i) f.push_back(static_cast<char>((header >> (8 * i)) & 0xff));
  f.push_back('a');
  return f;
}

}  // namespace

TEST_CASE("compression: a large JSON payload is stored compressed and reads back equal") {
  const std::string payload = plain(json_rows(5000));
  const std::string stored = compress_payload(payload, 1024);
  REQUIRE(stored.starts_with(kCompressedHeader));
  CHECK(stored.size() * 4 < payload.size());  // JSON rows compress several times over
  std::string read = stored;
  REQUIRE(decompress_payload(read));
  CHECK(read == payload);
  CHECK(compress_payload(payload, 1024) == stored);  // deterministic: compare-and-set relies on it
}

TEST_CASE("compression: what stays as it is") {
  const std::string big = plain(json_rows(200));
  CHECK(compress_payload(big, -1) == big);                 // the policy does not compress
  CHECK(compress_payload(big, static_cast<long long>(big.size()) + 1) == big);  // below the threshold
  CHECK(compress_payload(big, static_cast<long long>(big.size())).starts_with(kCompressedHeader));  // at it
  // A frame would be bigger: counters stay digits, which the increment script reads.
  for (const char* n : {"7", "1111111111111111", "9007199254740991", "-9007199254740991", "1000000000000000"}) {
    CHECK(compress_payload(plain(n), 0) == plain(n));
  }
  std::mt19937 random(7);
  std::string noise(4096, '\0');
  for (char& c : noise) c = static_cast<char>(random());
  CHECK(compress_payload(plain(noise), 0) == plain(noise));            // incompressible
  const std::string foreign = "not a payload of the codec, however long it is: " + json_rows(100);
  CHECK(compress_payload(foreign, 0) == foreign);                      // not the codec's
  std::string uncompressed = big;
  CHECK(decompress_payload(uncompressed));                             // old entries read as before
  CHECK(uncompressed == big);
}

TEST_CASE("compression: frames a reader refuses leave the payload as stored") {
  const std::string payload = plain(json_rows(500));
  const std::string stored = compress_payload(payload, 0);
  REQUIRE(stored.starts_with(kCompressedHeader));
  std::string bad;
  SECTION("a changed byte (the content checksum)") {
    bad = stored;
    bad[bad.size() / 2] ^= 0x20;
  }
  SECTION("truncated") { bad = stored.substr(0, stored.size() - 5); }
  SECTION("trailing bytes") { bad = stored + "x"; }
  SECTION("a second frame") { bad = stored + stored.substr(kCompressedHeader.size()); }
  SECTION("no frame at all") { bad = std::string(kCompressedHeader) + "{\"plain\":1}"; }
  SECTION("a header only") { bad = std::string(kCompressedHeader); }
  SECTION("a content size smaller than the content") {
    bad = std::string(kCompressedHeader) + frame_declaring(10, 100);
  }
  std::string read = bad;
  CHECK_FALSE(decompress_payload(read));
  CHECK(read == bad);
}

TEST_CASE("compression: a bomb over the limit is refused before it is decompressed") {
  // 1 TiB declared: refused from the header alone (nothing near that size is allocated).
  CHECK_FALSE(zstd_decompress(frame_declaring(std::uint64_t{1} << 40, 1000)));
  // A real frame of 1 MiB of zeros (a few hundred bytes) over a 64 KiB limit.
  const std::string zeros(1 << 20, '\0');
  const std::string frame = zstd_compress(zeros);
  REQUIRE(frame.size() < 1000);
  CHECK_FALSE(zstd_decompress(frame, 64 * 1024));
  CHECK(zstd_decompress(frame, 1 << 20) == zeros);  // at the limit: read
  std::string payload = std::string(kCompressedHeader) + frame;
  CHECK_FALSE(decompress_payload(payload, 64 * 1024));
  CHECK(payload.size() == kCompressedHeader.size() + frame.size());
}
