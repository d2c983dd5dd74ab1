// CLUSTER SLOTS and MOVED/ASK parsing (cluster_map.hpp has the formats). Every element is
// checked before it is used, so any reply, however odd, is a map or a ProtocolError.
#include "herdcache/cluster_map.hpp"

#include <algorithm>
#include <charconv>
#include <string>

#include <fmt/format.h>

namespace herdcache {

namespace {

// A host we would connect to: not empty, no spaces, control bytes or brackets.
bool usable_host(std::string_view host) {
  return !host.empty() && std::none_of(host.begin(), host.end(), [](char c) {
    return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '[' || c == ']';
  });
}

std::optional<std::uint16_t> parse_slot(std::string_view text) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value >= kClusterSlots) return {};
  return static_cast<std::uint16_t>(value);
}

std::uint16_t slot_bound(const Reply& r, std::size_t range, const char* which) {
  if (!r.is_integer() || r.as_int() < 0 || r.as_int() >= kClusterSlots) {
    throw ProtocolError(fmt::format("CLUSTER SLOTS: range {}: {} slot is not 0..16383: {}", range, which,
                                    r.debug_string()));
  }
  return static_cast<std::uint16_t>(r.as_int());
}

// The value of `name` in a node's metadata (a flat [name, value, ...] array); empty if none.
std::string_view metadata(const std::vector<Reply>& node, std::string_view name) {
  if (node.size() < 4 || !node[3].is_array()) return {};
  const auto& m = node[3].elements();
  for (std::size_t i = 0; i + 1 < m.size(); i += 2) {
    if (m[i].is_bulk() && m[i].str() == name && m[i + 1].is_bulk()) return m[i + 1].str();
  }
  return {};
}

MasterAddress master_of_range(const Reply& node, std::size_t range, std::string_view asked_host) {
  const auto& e = node.elements();
  if (!node.is_array() || e.size() < 2 || !(e[0].is_bulk() || e[0].is_nil()) || !e[1].is_integer()) {
    throw ProtocolError(fmt::format("CLUSTER SLOTS: range {}: not a node: {}", range, node.debug_string()));
  }
  if (e[1].as_int() < 1 || e[1].as_int() > 65535) {
    throw ProtocolError(fmt::format("CLUSTER SLOTS: range {}: not a port: {}", range, e[1].as_int()));
  }
  std::string_view host = e[0].str();  // empty for nil
  if (host == "?") host = metadata(e, "ip");  // preferred hostname unknown: its IP, if sent
  else if (host.empty()) host = asked_host;
  if (!usable_host(host)) {
    throw ProtocolError(fmt::format("CLUSTER SLOTS: range {}: no usable endpoint: {}", range, node.debug_string()));
  }
  return MasterAddress{std::string(host), static_cast<std::uint16_t>(e[1].as_int())};
}

}  // namespace

ClusterMap::ClusterMap() { slot_master_.fill(kNone); }

std::optional<std::size_t> ClusterMap::master_of_slot(std::uint16_t slot) const {
  if (slot >= kClusterSlots || slot_master_[slot] == kNone) return {};
  return slot_master_[slot];
}

ClusterMap parse_cluster_slots(const Reply& reply, std::string_view asked_host) {
  if (reply.is_error()) throw ProtocolError(fmt::format("CLUSTER SLOTS: {}", reply.str()));
  if (!reply.is_array()) throw ProtocolError(fmt::format("CLUSTER SLOTS: not an array: {}", reply.debug_string()));
  ClusterMap map;
  const auto& ranges = reply.elements();
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    const auto& r = ranges[i].elements();
    if (!ranges[i].is_array() || r.size() < 3) {
      throw ProtocolError(fmt::format("CLUSTER SLOTS: range {}: not [start, end, master, ...]: {}", i,
                                      ranges[i].debug_string()));
    }
    const std::uint16_t start = slot_bound(r[0], i, "start"), end = slot_bound(r[1], i, "end");
    if (start > end) throw ProtocolError(fmt::format("CLUSTER SLOTS: range {}: start {} > end {}", i, start, end));
    MasterAddress master = master_of_range(r[2], i, asked_host);
    auto found = std::find(map.masters_.begin(), map.masters_.end(), master);
    const auto index = static_cast<std::uint16_t>(found - map.masters_.begin());
    if (found == map.masters_.end()) map.masters_.push_back(std::move(master));
    for (std::uint32_t slot = start; slot <= end; ++slot) {
      auto& owner = map.slot_master_[slot];
      if (owner == index) continue;  // named twice for the same master: harmless
      if (owner != ClusterMap::kNone) {
        throw ProtocolError(fmt::format("CLUSTER SLOTS: slot {} claimed by {} and {}", slot,
                                        map.masters_[owner].str(), map.masters_[index].str()));
      }
      owner = index;
      ++map.served_;
    }
  }
  return map;
}

std::optional<Redirect> parse_redirect(std::string_view error, std::string_view asked_host) {
  Redirect out;
  std::string_view rest;
  if (error.starts_with("MOVED ")) {
    out.kind = Redirect::Kind::Moved;
    rest = error.substr(6);
  } else if (error.starts_with("ASK ")) {
    out.kind = Redirect::Kind::Ask;
    rest = error.substr(4);
  } else {
    return {};
  }
  const auto bad = [&](const char* what) {
    return ProtocolError(fmt::format("{}: '{}'", what, error.substr(0, 200)));
  };
  const auto space = rest.find(' ');
  if (space == std::string_view::npos) throw bad("redirection without an address");
  const auto slot = parse_slot(rest.substr(0, space));
  if (!slot) throw bad("redirection to a slot not in 0..16383");
  out.slot = *slot;
  std::string_view address = rest.substr(space + 1);
  std::string_view host, port;
  if (address.starts_with('[')) {  // [v6]:port
    const auto close = address.find("]:");
    if (close == std::string_view::npos) throw bad("redirection to a malformed [host]:port");
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {  // host:port, the host bare (an IPv6 literal has colons of its own) or empty
    const auto colon = address.rfind(':');
    if (colon == std::string_view::npos) throw bad("redirection without a port");
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  const auto number = parse_port(port);
  if (!number) throw bad("redirection to a port not in 1..65535");
  if (host.empty()) host = asked_host;
  if (host == "?" || !usable_host(host)) throw bad("redirection to no usable host");
  out.to = MasterAddress{std::string(host), *number};
  return out;
}

}  // namespace herdcache
