// The engine's codes (codes.hpp) as herdcache._native attributes, so that Python imports
// them instead of restating them: plain ints (compared on the request path) and bytes.
#include "bindings.hpp"
#include "herdcache/codes.hpp"
#include "herdcache/redis_tier.hpp"
#include "herdcache/write_fence.hpp"

namespace herdcache::py_bindings {

void register_codes(py::module_& m) {
  auto code = [&m](const char* name, auto value) { m.attr(name) = static_cast<int>(value); };
  code("STATUS_HIT", TierStatus::Hit);
  code("STATUS_MISS", TierStatus::Miss);
  code("STATUS_DONE", TierStatus::Done);
  code("STATUS_REFUSED", TierStatus::Refused);
  code("STATUS_FAULT", TierStatus::Fault);
  code("STATUS_CONFLICT", TierStatus::Conflict);
  code("LEASE_NONE", LeaseState::None);
  code("LEASE_GRANTED", LeaseState::Granted);
  code("LEASE_HELD", LeaseState::HeldElsewhere);
  code("LOG_INFO", kLogInfo);
  code("LOG_WARNING", kLogWarning);
  m.attr("PAYLOAD_HEADER") = py::bytes(kPayloadHeader.data(), kPayloadHeader.size());
  m.attr("SIGNED_HEADER") = py::bytes(kSignedHeader.data(), kSignedHeader.size());
  // What a compressed payload the engine could not decompress still starts with.
  m.attr("COMPRESSED_HEADER") = py::bytes(kCompressedHeader.data(), kCompressedHeader.size());
  m.attr("UNFENCED") = py::int_(WriteFence::kUnfenced);  // a store that no load precedes
  m.attr("KEY_VERSION_KEEP_MS") = py::int_(RedisTier::kKeyVersionKeepMs);
}

}  // namespace herdcache::py_bindings
