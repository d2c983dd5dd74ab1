// The Lua scripts cannot include codes.hpp, so where they restate a code it is pinned here:
// the write script's body() skips the payload headers by their lengths.
#include <catch2/catch.hpp>

#include <string>

#include <fmt/format.h>

#include "herdcache/codes.hpp"
#include "herdcache/entry.hpp"
#include "herdcache/scripts.hpp"

using namespace herdcache;

TEST_CASE("codes: the payload headers differ only in their flags byte") {
  for (std::string_view header : {kSignedHeader, kCompressedHeader, kSignedCompressedHeader}) {
    REQUIRE(kPayloadHeader.size() == header.size());
    CHECK(kPayloadHeader.substr(0, 2) == header.substr(0, 2));
  }
  CHECK(kPayloadHeader.back() == '\0');
  CHECK(kSignedHeader.back() == '\1');
}

TEST_CASE("codes: the write script reads payload bodies at the headers' offsets") {
  const std::string_view script = scripts::kWrite;
  // Lua strings count from 1: the flags byte, then the first byte of each body.
  CHECK(script.find(fmt::format("string.byte(p, {}) % 2 == {}", kSignedHeader.size(), int(kSignedFlag))) !=
        std::string_view::npos);
  // Every header's flags byte says "signed" exactly where the script takes it to.
  CHECK((kSignedHeader.back() & kSignedFlag) == kSignedFlag);
  CHECK((kSignedCompressedHeader.back() & kSignedFlag) == kSignedFlag);
  CHECK((kPayloadHeader.back() & kSignedFlag) == 0);
  CHECK((kCompressedHeader.back() & kSignedFlag) == 0);
  CHECK(script.find(fmt::format("string.sub(p, {})", kSignedHeader.size() + EntrySigner::kMacBytes + 1)) !=
        std::string_view::npos);
  CHECK(script.find(fmt::format("string.sub(p, {})", kPayloadHeader.size() + 1)) != std::string_view::npos);
}
