// RESP encoding and parsing, with byte strings only: no sockets here.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "herdcache/resp.hpp"

using herdcache::ProtocolError;
using herdcache::Reply;
using herdcache::RespParser;

namespace {

using namespace std::string_literals;

// Parses `bytes` fed in one piece; expects exactly one reply.
Reply parse_one(const std::string& bytes) {
  RespParser parser;
  parser.feed(bytes);
  auto reply = parser.next();
  REQUIRE(reply.has_value());
  REQUIRE_FALSE(parser.next().has_value());
  return std::move(*reply);
}

// A reply that uses every type, nesting, an empty and a binary bulk string.
const std::string kComposite =
    "*7\r\n"
    "+OK\r\n"
    "-ERR wrong number of arguments\r\n"
    ":-42\r\n"
    "$5\r\na\r\n\0b\r\n"s
    "$0\r\n\r\n"
    "$-1\r\n"
    "*3\r\n*0\r\n*-1\r\n*2\r\n:1\r\n$2\r\nhi\r\n";

Reply composite_expected() {
  return Reply::array({
      Reply::status("OK"),
      Reply::error("ERR wrong number of arguments"),
      Reply::integer(-42),
      Reply::bulk("a\r\n\0b"s),
      Reply::bulk(""),
      Reply::nil(),
      Reply::array({Reply::array({}), Reply::nil(),
                    Reply::array({Reply::integer(1), Reply::bulk("hi")})}),
  });
}

}  // namespace

TEST_CASE("resp: every reply type parses to its owned value", "[resp]") {
  CHECK(parse_one("+OK\r\n") == Reply::status("OK"));
  CHECK(parse_one("+\r\n") == Reply::status(""));
  CHECK(parse_one("-WRONGTYPE Operation against a key\r\n") ==
        Reply::error("WRONGTYPE Operation against a key"));
  CHECK(parse_one(":0\r\n") == Reply::integer(0));
  CHECK(parse_one(":9223372036854775807\r\n") == Reply::integer(INT64_MAX));
  CHECK(parse_one(":-9223372036854775807\r\n") == Reply::integer(-INT64_MAX));
  CHECK(parse_one("$3\r\nabc\r\n") == Reply::bulk("abc"));
  CHECK(parse_one("$0\r\n\r\n") == Reply::bulk(""));
  CHECK(parse_one("$-1\r\n") == Reply::nil());
  CHECK(parse_one("*-1\r\n") == Reply::nil());
  CHECK(parse_one("*0\r\n") == Reply::array({}));

  const Reply empty_bulk = parse_one("$0\r\n\r\n");
  CHECK(empty_bulk.is_bulk());  // empty string and nil stay distinct
  CHECK_FALSE(empty_bulk.is_nil());
}

TEST_CASE("resp: nested arrays, binary and empty bulk strings", "[resp]") {
  const Reply reply = parse_one(kComposite);
  CHECK(reply == composite_expected());
  REQUIRE(reply.elements().size() == 7);
  CHECK(reply.elements()[3].str().size() == 5);  // the NUL and CRLF are data
  CHECK(reply.elements()[6].elements()[2].elements()[1].str() == "hi");
}

TEST_CASE("resp: all 256 byte values survive a bulk string", "[resp]") {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  const Reply reply = parse_one("$256\r\n" + bytes + "\r\n");
  CHECK(reply == Reply::bulk(bytes));
}

TEST_CASE("resp: one reply split at every byte boundary", "[resp]") {
  const Reply expected = composite_expected();
  for (std::size_t cut = 0; cut <= kComposite.size(); ++cut) {
    CAPTURE(cut);
    RespParser parser;
    parser.feed(std::string_view(kComposite).substr(0, cut));
    auto early = parser.next();
    if (cut < kComposite.size()) {
      REQUIRE_FALSE(early.has_value());
      parser.feed(std::string_view(kComposite).substr(cut));
      early = parser.next();
    }
    REQUIRE(early.has_value());
    CHECK(*early == expected);
    CHECK_FALSE(parser.next().has_value());
  }
}

TEST_CASE("resp: one reply fed byte by byte", "[resp]") {
  RespParser parser;
  std::optional<Reply> got;
  for (std::size_t i = 0; i < kComposite.size(); ++i) {
    REQUIRE_FALSE(got.has_value());  // nothing before the last byte
    parser.feed(std::string_view(kComposite).substr(i, 1));
    got = parser.next();
  }
  REQUIRE(got.has_value());
  CHECK(*got == composite_expected());
}

TEST_CASE("resp: several replies in one feed come out in order", "[resp]") {
  RespParser parser;
  parser.feed("+OK\r\n:1\r\n$1\r\nx\r\n$-1\r\n-ERR no\r\n*1\r\n+in\r\n+partial");
  CHECK(parser.next() == Reply::status("OK"));
  CHECK(parser.next() == Reply::integer(1));
  CHECK(parser.next() == Reply::bulk("x"));
  CHECK(parser.next() == Reply::nil());
  CHECK(parser.next() == Reply::error("ERR no"));
  CHECK(parser.next() == Reply::array({Reply::status("in")}));
  CHECK_FALSE(parser.next().has_value());
  parser.feed("\r\n");
  CHECK(parser.next() == Reply::status("partial"));
}

TEST_CASE("resp: an 8 MB bulk string, in one feed and in socket-sized chunks", "[resp]") {
  std::string value(8u << 20, '\0');
  for (std::size_t i = 0; i < value.size(); ++i) value[i] = static_cast<char>(i * 131 + 7);
  const std::string wire = "$" + std::to_string(value.size()) + "\r\n" + value + "\r\n:5\r\n";

  SECTION("one feed") {
    RespParser parser;
    parser.feed(wire);
    auto reply = parser.next();
    REQUIRE(reply.has_value());
    CHECK(reply->is_bulk());
    CHECK(reply->str() == value);
    CHECK(parser.next() == Reply::integer(5));
  }
  SECTION("16 KiB chunks") {
    RespParser parser;
    std::vector<Reply> replies;
    for (std::size_t at = 0; at < wire.size(); at += 16384) {
      parser.feed(std::string_view(wire).substr(at, 16384));
      while (auto reply = parser.next()) replies.push_back(std::move(*reply));
    }
    REQUIRE(replies.size() == 2);
    CHECK(replies[0].str() == value);
    CHECK(replies[1] == Reply::integer(5));
  }
}

TEST_CASE("resp: malformed input is a ProtocolError until reset", "[resp]") {
  RespParser parser;
  parser.feed("+OK\r\n!bogus\r\n");
  CHECK(parser.next() == Reply::status("OK"));
  CHECK_THROWS_AS(parser.next(), ProtocolError);
  CHECK_THROWS_AS(parser.next(), ProtocolError);
  CHECK_THROWS_AS(parser.feed("+OK\r\n"), ProtocolError);
  parser.reset();
  parser.feed("+OK\r\n");
  CHECK(parser.next() == Reply::status("OK"));
}

TEST_CASE("resp: a protocol error inside a nested array frees the partial tree", "[resp]") {
  RespParser parser;  // run under ASan: the half-built root must not leak
  parser.feed("*3\r\n$3\r\nabc\r\n*2\r\n:1\r\n?x\r\n");
  CHECK_THROWS_AS(parser.next(), ProtocolError);
}

TEST_CASE("resp: encoding is binary safe and round-trips through the parser", "[resp]") {
  CHECK(herdcache::encode_command({"SET", "k", "v"}) ==
        "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
  CHECK(herdcache::encode_command({"GET", ""}) == "*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
  CHECK_THROWS_AS(herdcache::encode_command({}), herdcache::InvalidArgument);

  const std::vector<std::string> argv = {"SET", "key\r\n\0with\nbytes"s, "",
                                         std::string(70000, 'v'), "\xff\xfe"};
  std::string wire;
  herdcache::append_command(wire, argv);
  herdcache::append_command(wire, argv);  // two commands back to back

  RespParser parser;  // RESP commands are arrays of bulk strings: the reader parses them
  parser.feed(wire);
  std::vector<Reply> expected;
  for (const auto& arg : argv) expected.push_back(Reply::bulk(arg));
  CHECK(parser.next() == Reply::array(expected));
  CHECK(parser.next() == Reply::array(expected));
  CHECK_FALSE(parser.next().has_value());
}

TEST_CASE("resp: a Command holds what append_command writes, inline while small", "[resp]") {
  const herdcache::Command small{"HMGET", "ns:res:key", "v"};
  CHECK(small.bytes() == herdcache::encode_command({"HMGET", "ns:res:key", "v"}));
  CHECK(small.is_inline());
  CHECK_FALSE(small.empty());

  const std::vector<std::string> big = {"SET", "k", std::string(herdcache::Command::kInlineBytes, 'v')};
  herdcache::Command large(big);
  CHECK(large.bytes() == herdcache::encode_command(big));
  CHECK_FALSE(large.is_inline());

  // Moves keep the bytes, inline or not, and leave the source empty.
  herdcache::Command moved(std::move(large));
  CHECK(moved.bytes() == herdcache::encode_command(big));
  CHECK(large.empty());  // NOLINT(bugprone-use-after-move): what a move leaves is the point
  herdcache::Command other{"PING"};
  other = std::move(moved);
  CHECK(other.bytes() == herdcache::encode_command(big));
  other = herdcache::Command{"GET", "k"};
  CHECK(other.bytes() == "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
  CHECK(other.is_inline());

  // Every size across the inline boundary encodes exactly.
  for (std::size_t n = 90; n < 140; ++n) {
    const std::vector<std::string> argv = {"SET", std::string(n, 'x')};
    const herdcache::Command command(argv);
    CHECK(command.bytes() == herdcache::encode_command(argv));
    CHECK(command.is_inline() == (command.bytes().size() <= herdcache::Command::kInlineBytes));
  }
  CHECK_THROWS_AS(herdcache::Command(std::vector<std::string>{}), herdcache::InvalidArgument);
  CHECK(herdcache::Command().empty());
}

TEST_CASE("resp: debug_string abbreviates", "[resp]") {
  CHECK(Reply::array({Reply::integer(1), Reply::nil(), Reply::bulk("a\x01")}).debug_string() ==
        "[int(1), nil, bulk[2](a\\x01)]");
  CHECK(Reply::bulk(std::string(40, 'x')).debug_string() ==
        "bulk[40](" + std::string(32, 'x') + "...)");
}

// Found by fuzz_resp: "*999999992\r\n" made the parser allocate every element the count
// claimed before any arrived (~70 GB for 12 bytes): a server, or anything between it and
// us, could take the process down. Memory now follows the bytes that arrive.
TEST_CASE("resp: an array's count does not allocate its elements before they arrive", "[resp]") {
  RespParser parser;
  parser.feed("*2000000000\r\n:1\r\n$3\r\nabc\r\n");
  CHECK_FALSE(parser.next());  // incomplete, and nothing was refused
  parser.reset();
  parser.feed("*2\r\n*2\r\n:1\r\n*1\r\n$1\r\nx\r\n+OK\r\n");  // nested: appended as they come
  auto reply = parser.next();
  REQUIRE(reply);
  CHECK(*reply == Reply::array({Reply::array({Reply::integer(1), Reply::array({Reply::bulk("x")})}),
                                Reply::status("OK")}));
}
