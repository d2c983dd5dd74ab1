// Redis Cluster hash slots (the cluster specification's "Keys distribution model"):
// a key's slot is CRC16-CCITT (XMODEM) of the key modulo 16384, or of the part between
// its first '{' and the first '}' after it when that part is not empty (a hash tag).
//
// slot_tag(slot) is the shortest string whose own slot is `slot`: "{<tag>}" in a key
// sends that key to the slot. docs/cluster.md puts an entry's lease and waiters flag in
// the entry's slot this way, so one script can touch all three on a cluster node.
// No I/O; tested against the specification's values.
#pragma once
#include <cstdint>
#include <string_view>

namespace herdcache {

inline constexpr std::uint16_t kClusterSlots = 16384;

std::uint16_t crc16(std::string_view bytes) noexcept;
std::uint16_t cluster_slot(std::string_view key) noexcept;
// At most 3 characters of [0-9A-Za-z]; the table is built once, on first use.
std::string_view slot_tag(std::uint16_t slot);

}  // namespace herdcache
