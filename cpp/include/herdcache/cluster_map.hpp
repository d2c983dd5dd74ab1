// Redis Cluster's slot map and redirections (docs/cluster.md, "Routing"): which master
// serves a key, from a CLUSTER SLOTS reply, and where a MOVED or ASK error reply sends a
// command. No I/O: the router that asks and follows uses these; tested on replies built
// by hand from the cluster specification.
//
// CLUSTER SLOTS answers an array of ranges, each [start, end, master, replica...], a node
// being [endpoint, port, node id, metadata] (Redis 3 sends the first two only, Redis 4-6
// three; metadata is a flat array of name/value pairs, "ip" and "hostname"). The endpoint
// is an IP, a hostname, "?" (a hostname is preferred but the node has none: its "ip"
// metadata is used), empty (the node does not know its own address) or nil (its endpoint
// is unknown on purpose, behind a load balancer); the last two mean the host the command
// was sent to. A redirection is "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>",
// the host bare even when it is an IPv6 literal ("::1:7000"; "[::1]:7000" is accepted too)
// and empty, as in "MOVED 3999 :7000", for the host the command was sent to.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "herdcache/cluster_slot.hpp"
#include "herdcache/master_address.hpp"
#include "herdcache/resp.hpp"

namespace herdcache {

// Which master serves each of the 16384 slots.
class ClusterMap {
 public:
  ClusterMap();  // no slot served

  // Each distinct master once, in the order the reply first names them.
  const std::vector<MasterAddress>& masters() const noexcept { return masters_; }
  // The index in masters() of the slot's master; nullopt when no master serves it (a
  // cluster that is down or not fully set up).
  std::optional<std::size_t> master_of_slot(std::uint16_t slot) const;
  std::optional<std::size_t> master_for(std::string_view key) const { return master_of_slot(cluster_slot(key)); }
  std::size_t slots_served() const noexcept { return served_; }
  bool complete() const noexcept { return served_ == kClusterSlots; }

  friend bool operator==(const ClusterMap&, const ClusterMap&) = default;

 private:
  friend ClusterMap parse_cluster_slots(const Reply& reply, std::string_view asked_host);
  static constexpr std::uint16_t kNone = 0xFFFF;
  std::vector<MasterAddress> masters_;
  std::array<std::uint16_t, kClusterSlots> slot_master_;
  std::size_t served_ = 0;
};

// CLUSTER SLOTS' reply, sent to `asked_host`. Throws ProtocolError naming what is wrong:
// an error reply (its text), a range or node of the wrong shape, a slot outside
// 0..16383, a port outside 1..65535, a node with no usable endpoint, a slot claimed by two
// masters.
ClusterMap parse_cluster_slots(const Reply& reply, std::string_view asked_host);

struct Redirect {
  enum class Kind : std::uint8_t { Moved, Ask };
  Kind kind = Kind::Moved;
  std::uint16_t slot = 0;
  MasterAddress to;  // never an empty host: `asked_host` stands in for one
  friend bool operator==(const Redirect&, const Redirect&) = default;
};

// The redirection an error reply's text says, with the command sent to `asked_host`;
// nullopt when the text is not MOVED or ASK. Throws ProtocolError for a MOVED or ASK that
// is malformed (a redirection we cannot follow must not pass for another error).
std::optional<Redirect> parse_redirect(std::string_view error, std::string_view asked_host);

}  // namespace herdcache
