// The messages other instances publish on the invalidation and fill channels, from
// arbitrary bytes (anyone who can PUBLISH on the Redis server can send them). Checked: a
// message decodes or is refused (nullopt), never more; a decoded invalidation encodes to
// a message that decodes to it again; fields round-trip through their framing.
#include <cstdint>
#include <string>
#include <vector>
#include <string_view>

#include "fuzz_check.hpp"
#include "herdcache/invalidation.hpp"

using namespace herdcache;

namespace {
std::string frame(const std::vector<std::string>& fields) {
  std::string out;
  for (const auto& f : fields) out += std::to_string(f.size()) + ":" + f;
  return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (auto fields = decode_fields(bytes)) {
    auto again = decode_fields(frame(*fields));
    FUZZ_CHECK(again && *again == *fields);
  }
  if (auto inv = decode_invalidation(bytes)) {
    auto again = decode_invalidation(encode_invalidation(*inv));
    FUZZ_CHECK(again && *again == *inv);
  }
  (void)prefix_levels(bytes);
  return 0;
}
