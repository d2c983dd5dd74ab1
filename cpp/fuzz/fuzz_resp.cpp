// RESP replies from arbitrary bytes (what a socket hands RespParser). Checked: the bytes
// parse into the same replies, or fail with ProtocolError at the same reply, whether fed
// at once or one byte at a time; after a failure every call throws until reset(); and a
// command encoded from any arguments parses back into exactly those arguments.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "herdcache/resp.hpp"

using herdcache::ProtocolError;
using herdcache::Reply;
using herdcache::RespParser;

namespace {

struct Parsed {
  std::vector<Reply> replies;
  bool failed = false;
};

// Pops every whole reply; true if the parser failed.
bool drain(RespParser& parser, Parsed& out) {
  try {
    while (auto reply = parser.next()) out.replies.push_back(std::move(*reply));
  } catch (const ProtocolError&) {
    return true;
  }
  return false;
}

Parsed parse(std::string_view bytes, std::size_t chunk) {
  RespParser parser;
  Parsed out;
  for (std::size_t at = 0; at < bytes.size() && !out.failed; at += chunk) {
    parser.feed(bytes.substr(at, chunk));
    out.failed = drain(parser, out);
  }
  if (out.failed) {
    FUZZ_CHECK(throws<ProtocolError>([&] { parser.next(); }));
    FUZZ_CHECK(throws<ProtocolError>([&] { parser.feed("+OK\r\n"); }));
    parser.reset();
    parser.feed("+OK\r\n");
    auto ok = parser.next();
    FUZZ_CHECK(ok && ok->is_status() && ok->str() == "OK");
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);

  const Parsed whole = parse(bytes, bytes.size() ? bytes.size() : 1);
  const Parsed bytewise = parse(bytes, 1);
  FUZZ_CHECK(whole.failed == bytewise.failed);
  FUZZ_CHECK(whole.replies == bytewise.replies);
  for (const Reply& r : whole.replies) (void)r.debug_string();

  // The same bytes as the arguments of a command (split at NUL): they come back as sent.
  std::vector<std::string> argv;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= bytes.size() && argv.size() < 16; ++i) {
    if (i == bytes.size() || bytes[i] == '\0') {
      argv.emplace_back(bytes.substr(start, i - start));
      start = i + 1;
    }
  }
  const herdcache::Command command(argv);
  RespParser parser;
  parser.feed(command.bytes());
  auto reply = parser.next();
  FUZZ_CHECK(reply && reply->is_array() && reply->elements().size() == argv.size());
  for (std::size_t i = 0; i < argv.size(); ++i) {
    FUZZ_CHECK(reply->elements()[i].is_bulk() && reply->elements()[i].str() == argv[i]);
  }
  FUZZ_CHECK(!parser.next());
  return 0;
}
