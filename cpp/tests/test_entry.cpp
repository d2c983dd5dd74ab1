// Signed entries: a MAC over the key and every stored field, so that any edit, any copy
// to another key and any other signing key is refused, and an intact entry opens to the
// codec's unsigned payload.
#include <catch2/catch.hpp>

#include <string>

#include "herdcache/entry.hpp"
#include "herdcache/errors.hpp"

using namespace herdcache;

TEST_CASE("a sealed entry opens to the codec's payload for its key and fields only") {
  const EntrySigner signer(std::string(32, 'k'));
  const std::string payload("HC\x00{\"admin\":false}", 18);
  const StoredFields fields{"1700000060000", "1700000090000", "12", "org:1", "ns#t:org:1\n3\n"};
  const std::string v = signer.seal("ns:rooms:1", payload, fields);
  CHECK(v.substr(0, 3) == std::string("HC\x01", 3));
  CHECK(v.size() == 3 + EntrySigner::kMacBytes + payload.size() - 3);
  CHECK(signer.open("ns:rooms:1", v, fields) == payload);

  CHECK_FALSE(signer.open("ns:rooms:2", v, fields));  // copied to another key
  StoredFields edited = fields;
  SECTION("fresher") { edited.f = "1800000060000"; }
  SECTION("staler") { edited.s = "1800000090000"; }
  SECTION("load time") { edited.d = "0"; }
  SECTION("tags emptied") { edited.t = ""; }
  SECTION("dependencies cleared") { edited.x = ""; }
  SECTION("dependencies edited") { edited.x = "ns#t:org:1\n4\n"; }
  CHECK_FALSE(signer.open("ns:rooms:1", v, edited));

  std::string flipped = v;
  flipped.back() ^= 1;
  CHECK_FALSE(signer.open("ns:rooms:1", flipped, fields));                     // the body
  CHECK_FALSE(EntrySigner(std::string(32, 'x')).open("ns:rooms:1", v, fields));  // another key
  CHECK_FALSE(signer.open("ns:rooms:1", payload, fields));                     // unsigned
  CHECK_FALSE(signer.open("ns:rooms:1", v.substr(0, 20), fields));             // truncated
}

TEST_CASE("fields cannot be shifted into one another") {
  const EntrySigner signer(std::string(16, 'k'));
  const std::string payload("HC\x00x", 4);
  const std::string v = signer.seal("k", payload, {"1", "2", "3", "ab", "c"});
  CHECK_FALSE(signer.open("k", v, {"1", "2", "3", "a", "bc"}));
}

TEST_CASE("a signing key shorter than 16 bytes is refused") {
  CHECK_THROWS_AS(EntrySigner("short"), InvalidArgument);
}
