#include "herdcache/cluster_slot.hpp"

#include <array>
#include <stdexcept>
#include <string>

namespace herdcache {

namespace {
// CRC16-CCITT, polynomial 0x1021, initial value 0, no reflection (XMODEM): the table
// the cluster specification's reference implementation uses, computed at compile time.
constexpr std::array<std::uint16_t, 256> make_crc_table() {
  std::array<std::uint16_t, 256> table{};
  for (unsigned i = 0; i < 256; ++i) {
    auto crc = static_cast<std::uint16_t>(i << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    table[i] = crc;
  }
  return table;
}
constexpr auto kCrcTable = make_crc_table();

constexpr std::string_view kTagAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

struct TagTable {
  std::array<std::string, kClusterSlots> tags;
  TagTable() {
    // Shortest first: every 1-, then 2-, then 3-character string, the first found per slot
    // kept. 62^3 = 238,328 candidates cover all 16384 slots (checked below).
    std::size_t filled = 0;
    std::string candidate;
    auto visit = [&](const std::string& s) {
      auto& tag = tags[crc16(s) % kClusterSlots];
      if (tag.empty()) {
        tag = s;
        ++filled;
      }
    };
    for (char a : kTagAlphabet) visit(std::string{a});
    for (char a : kTagAlphabet)
      for (char b : kTagAlphabet) visit(std::string{a, b});
    for (char a : kTagAlphabet)
      for (char b : kTagAlphabet)
        for (char c : kTagAlphabet) {
          if (filled == kClusterSlots) return;
          visit(std::string{a, b, c});
        }
    if (filled != kClusterSlots) throw std::logic_error("slot_tag: some slot has no tag of 3 characters");
  }
};
}  // namespace

std::uint16_t crc16(std::string_view bytes) noexcept {
  std::uint16_t crc = 0;
  for (unsigned char c : bytes) {
    crc = static_cast<std::uint16_t>((crc << 8) ^ kCrcTable[((crc >> 8) ^ c) & 0xff]);
  }
  return crc;
}

std::uint16_t cluster_slot(std::string_view key) noexcept {
  std::size_t open = key.find('{');
  if (open != std::string_view::npos) {
    std::size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  return crc16(key) % kClusterSlots;
}

std::string_view slot_tag(std::uint16_t slot) {
  static const TagTable table;
  return table.tags.at(slot);
}

}  // namespace herdcache
