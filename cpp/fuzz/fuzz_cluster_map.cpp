// Cluster slot maps and redirections from arbitrary bytes: the bytes as a MOVED/ASK error
// text, and as RESP for a CLUSTER SLOTS reply. Checked: each is a result or ProtocolError;
// a redirection has a slot in range, a usable host and a port, and its own text parses
// back to it; a map's every served slot names one of its masters, which are distinct,
// each serves a slot, and slots_served() counts what master_of_slot() says.
#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "fuzz_check.hpp"
#include "herdcache/cluster_map.hpp"
#include "herdcache/resp.hpp"

using namespace herdcache;

namespace {

void check_redirect(std::string_view text) {
  std::optional<Redirect> r;
  try {
    r = parse_redirect(text, "seed");
  } catch (const ProtocolError&) {
    FUZZ_CHECK(text.starts_with("MOVED ") || text.starts_with("ASK "));
    return;
  }
  if (!r) return;
  FUZZ_CHECK(r->slot < kClusterSlots && r->to.port >= 1 && !r->to.host.empty());
  for (char c : r->to.host) FUZZ_CHECK(static_cast<unsigned char>(c) > 0x20 && c != 0x7f);
  const char* kind = r->kind == Redirect::Kind::Moved ? "MOVED" : "ASK";
  FUZZ_CHECK(parse_redirect(fmt::format("{} {} {}", kind, r->slot, r->to.str()), "other") == r);
}

void check_slots(std::string_view bytes) {
  RespParser parser;
  std::optional<Reply> reply;
  try {
    parser.feed(bytes);
    reply = parser.next();
  } catch (const ProtocolError&) {
    return;
  }
  if (!reply) return;
  ClusterMap map;
  try {
    map = parse_cluster_slots(*reply, "seed");
  } catch (const ProtocolError&) {
    return;
  }
  std::vector<bool> serves(map.masters().size());
  std::size_t served = 0;
  for (std::uint32_t slot = 0; slot < kClusterSlots; ++slot) {
    const auto master = map.master_of_slot(static_cast<std::uint16_t>(slot));
    if (!master) continue;
    FUZZ_CHECK(*master < map.masters().size());
    serves[*master] = true;
    ++served;
  }
  FUZZ_CHECK(served == map.slots_served());
  FUZZ_CHECK(std::all_of(serves.begin(), serves.end(), [](bool b) { return b; }));
  std::set<std::string> distinct;
  for (const auto& m : map.masters()) {
    FUZZ_CHECK(m.port >= 1 && !m.host.empty());
    distinct.insert(m.str());
  }
  FUZZ_CHECK(distinct.size() == map.masters().size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check_redirect(bytes);
  check_slots(bytes);
  return 0;
}
