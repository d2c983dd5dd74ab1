// A reply as it comes off the wire: RESP bytes through the real parser (for the tests of
// the parsers that read replies: sentinel, cluster_map).
#pragma once
#include <catch2/catch.hpp>

#include <string_view>
#include <utility>

#include "herdcache/resp.hpp"

inline herdcache::Reply parse_reply(std::string_view bytes) {
  herdcache::RespParser parser;
  parser.feed(bytes);
  auto reply = parser.next();
  REQUIRE(reply);
  return std::move(*reply);
}
