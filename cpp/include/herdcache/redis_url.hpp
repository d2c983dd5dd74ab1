// Where a Redis server is and how to log in: parsed from a URL.
//
//   redis://[[user]:password@]host[:port][/db][?db=N]   TCP; port 6379 and db 0 by default
//   redis://[::1]:6380/2                                IPv6 literal in brackets
//   unix:///path/to/redis.sock[?db=N]                   Unix socket (also redis+unix://)
//   unix://[[user]:password@]/path/to/redis.sock?db=N
//
// User and password are percent-decoded (so '@', ':' and '/' can be written as %40, %3A,
// %2F); so is a socket path. The query accepts `db`, `username` and `password` (the
// redis-py spellings), nothing else: an unknown parameter is an error, not silently
// ignored. TLS (rediss://) is not supported.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace herdcache {

struct RedisUrl {
  enum class Transport : std::uint8_t { Tcp, Unix };

  Transport transport = Transport::Tcp;
  std::string host = "127.0.0.1";  // Tcp: name or address literal (no brackets)
  std::uint16_t port = 6379;       // Tcp
  std::string path;                // Unix: socket path
  std::string username;            // empty: AUTH <password> (the "default" user)
  std::string password;            // empty: no AUTH
  int db = 0;                      // SELECT on connect when not 0
  // ?socket_timeout=S / ?socket_connect_timeout=S (seconds, as redis-py spells them):
  // override RedisOptions' command_timeout_ms / connect_timeout_ms; 0 = not given.
  std::int64_t command_timeout_ms = 0;
  std::int64_t connect_timeout_ms = 0;

  // The address without credentials, for logs: "redis://host:6379/0", "unix:///p?db=1".
  std::string describe() const;
};

// Throws InvalidArgument naming what is wrong ("redis url: port must be 1..65535: 'x'").
RedisUrl parse_redis_url(std::string_view url);

}  // namespace herdcache
