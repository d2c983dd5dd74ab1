// A master's address as servers name it (Sentinel's get-master-addr-by-name, a cluster's
// CLUSTER SLOTS and MOVED/ASK): a host, bare even when it is an IPv6 literal, and a port.
#pragma once
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace herdcache {

struct MasterAddress {
  std::string host;
  std::uint16_t port = 0;
  // "host:port", "[v6]:port"
  std::string str() const {
    const bool v6 = host.find(':') != std::string::npos;
    return fmt::format("{}{}{}:{}", v6 ? "[" : "", host, v6 ? "]" : "", port);
  }
  friend bool operator==(const MasterAddress&, const MasterAddress&) = default;
};

// A TCP port in decimal, 1..65535, nothing else around it.
inline std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 1 || value > 65535) {
    return {};
  }
  return static_cast<std::uint16_t>(value);
}

}  // namespace herdcache
