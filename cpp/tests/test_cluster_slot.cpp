#include <string>

#include <catch2/catch.hpp>

#include "herdcache/cluster_slot.hpp"

using namespace herdcache;

TEST_CASE("cluster slot: crc16 is the cluster specification's XMODEM CRC") {
  CHECK(crc16("123456789") == 0x31C3);  // the specification's check value
  CHECK(crc16("") == 0);
}

TEST_CASE("cluster slot: a key hashes whole, or by its first non-empty hash tag") {
  CHECK(cluster_slot("foo") == 12182);  // CLUSTER KEYSLOT foo
  CHECK(cluster_slot("{user1000}.following") == cluster_slot("{user1000}.followers"));
  CHECK(cluster_slot("{user1000}.following") == cluster_slot("user1000"));
  // The specification's edge cases: the first '{' and the first '}' after it.
  CHECK(cluster_slot("foo{{bar}}zap") == cluster_slot("{bar"));
  CHECK(cluster_slot("foo{bar}{zap}") == cluster_slot("bar"));
  // An empty tag, or an unclosed one, hashes the whole key.
  CHECK(cluster_slot("foo{}{bar}") == crc16("foo{}{bar}") % kClusterSlots);
  CHECK(cluster_slot("foo{bar") == crc16("foo{bar") % kClusterSlots);
}

TEST_CASE("cluster slot: slot_tag gives each slot a short tag that hashes to it") {
  for (std::uint32_t slot = 0; slot < kClusterSlots; ++slot) {
    std::string_view tag = slot_tag(static_cast<std::uint16_t>(slot));
    REQUIRE(!tag.empty());
    REQUIRE(tag.size() <= 3);
    REQUIRE(cluster_slot(tag) == slot);
    // As a hash tag inside any key, it sends the key to that slot.
    REQUIRE(cluster_slot("ns#l:{" + std::string(tag) + "}rooms:42") == slot);
  }
  CHECK_THROWS(slot_tag(kClusterSlots));
}
