// The numbers and bytes that cross a boundary, defined once: result statuses and lease
// states that Python compares against (herdcache._ops), the payload
// header the Python codec writes and the engine reads (herdcache.serializers, entry.hpp),
// and the levels of the engine's log lines. The bindings export each as an attribute of
// herdcache._native (register_codes.cpp) and Python imports it from there. Two kinds of
// restatement cannot import anything: the Lua scripts (scripts.hpp) return the lease
// states as literals and skip the payload headers by their lengths (those offsets are
// pinned by test_codes.cpp), and the log levels are Python logging's own numbers (pinned
// by tests/test_codes.py).
#pragma once
#include <cstdint>
#include <string_view>

namespace herdcache {

// A shared-tier result's status (TierResult::status).
enum class TierStatus : std::uint8_t {
  Hit = 0,       // payload + lifetimes
  Miss = 1,      // generation + versions: the key's guard, for a later write
  Done = 2,      // count: what the operation reports (1 written, n removed, ...)
  Refused = 3,   // a write whose dependencies moved while it loaded: not stored
  Fault = 4,     // Redis unavailable / timed out / error reply: error says which
  Conflict = 5,  // a conditional write whose condition did not hold: not stored
};

// A key's lease as a read reports it (TierResult::lease); the read script returns the
// same numbers (scripts.hpp).
enum class LeaseState : std::uint8_t { None = 0, Granted = 1, HeldElsewhere = 2 };

// Payload header: the codec's payloads are kPayloadHeader + the serializer's bytes; a
// signed entry's stored v is kSignedHeader + MAC + body (entry.hpp). The third byte is
// flags: 1 signed, 2 compressed (the body is one zstd frame of the serializer's bytes:
// compression.hpp). Python only ever sees kPayloadHeader payloads.
inline constexpr std::string_view kPayloadHeader{"HC\x00", 3};
inline constexpr std::string_view kSignedHeader{"HC\x01", 3};
inline constexpr std::string_view kCompressedHeader{"HC\x02", 3};
inline constexpr std::string_view kSignedCompressedHeader{"HC\x03", 3};
inline constexpr char kSignedFlag = 1;

// Levels of the engine's log lines (RedisTier::LogCallback): Python logging's numbers,
// which the manager hands to logging.log as they are.
inline constexpr int kLogInfo = 20;
inline constexpr int kLogWarning = 30;

}  // namespace herdcache
