// Where a Redis server is and how to log in: parsed from a URL.
//
//   redis://[[user]:password@]host[:port][/db][?db=N]   TCP; port 6379 and db 0 by default
//   redis://[::1]:6380/2                                IPv6 literal in brackets
//   rediss://[[user]:password@]host[:port][/db]         TLS (query: the ssl_* parameters)
//   unix:///path/to/redis.sock[?db=N]                   Unix socket (also redis+unix://)
//   unix://[[user]:password@]/path/to/redis.sock?db=N
//   redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db]
//                                                       the master Sentinel names for service_name;
//                                                       a sentinel's port is 26379 by default
//   rediss+sentinel://...                               the same over TLS (sentinels and master)
//   redis+cluster://[[user]:password@]host:port[,host:port...][/0]
//                                                       a Redis Cluster, from any of these seeds
//                                                       (port 6379 by default); db 0 only
//   rediss+cluster://...                                the same over TLS
//
// User and password are percent-decoded (so '@', ':' and '/' can be written as %40, %3A,
// %2F); so is a socket path. The query accepts `db`, `username`, `password`,
// `socket_timeout` and `socket_connect_timeout`, and with rediss:// `ssl_ca_certs`,
// `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs=required|none` and
// `ssl_check_hostname=true|false` (the redis-py spellings), and with a sentinel URL
// `sentinel_username` and `sentinel_password` (the sentinels' own AUTH; the userinfo is the
// master's), nothing else: an unknown
// parameter is an error, not silently ignored, and so is an ssl_* one on a plain URL.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "herdcache/master_address.hpp"

namespace herdcache {

struct RedisUrl {
  enum class Transport : std::uint8_t { Tcp, Unix };
  // One server (host:port or path), a master found through sentinels, or a cluster.
  enum class Topology : std::uint8_t { Single, Sentinel, Cluster };

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

  // rediss://: TLS over the TCP connection. The peer's certificate is verified against
  // ssl_ca_certs (a PEM file), or the system CA store when empty, unless ssl_cert_reqs=none;
  // its name (or IP address) must match host unless ssl_check_hostname=false. SNI is host
  // when host is a name. ssl_certfile/ssl_keyfile: a client certificate (PEM; the key may
  // be in the certificate's file, as redis-py allows).
  bool tls = false;
  std::string tls_ca_file;     // ?ssl_ca_certs=PATH; empty: the system CA store
  std::string tls_cert_file;   // ?ssl_certfile=PATH; empty: no client certificate
  std::string tls_key_file;    // ?ssl_keyfile=PATH; empty: the key is in tls_cert_file
  bool tls_verify_peer = true;     // ?ssl_cert_reqs=required (default) | none
  bool tls_check_hostname = true;  // ?ssl_check_hostname=true (default) | false

  // redis+sentinel:// / rediss+sentinel://: host and port above are unused until a
  // SentinelResolver (sentinel.hpp) fills them in with the master it resolved (master_url).
  std::vector<MasterAddress> sentinels;  // in the URL's order; empty: not a sentinel URL
  std::string sentinel_service;     // the name the sentinels monitor the master under
  std::string sentinel_username;    // ?sentinel_username=; empty: AUTH <password>
  std::string sentinel_password;    // ?sentinel_password=; empty: no AUTH to the sentinels
  bool uses_sentinel() const noexcept { return !sentinels.empty(); }

  // redis+cluster:// / rediss+cluster://: the nodes to ask for the slot map, tried in turn;
  // host and port above are unused. Credentials, timeouts and TLS settings apply to every
  // node; db is always 0 (a cluster has no other).
  std::vector<MasterAddress> cluster_seeds;  // in the URL's order; empty: not a cluster URL
  bool uses_cluster() const noexcept { return !cluster_seeds.empty(); }

  Topology topology() const noexcept {
    if (uses_cluster()) return Topology::Cluster;
    return uses_sentinel() ? Topology::Sentinel : Topology::Single;
  }

  // This URL aimed at one server: host:port, the sentinel and cluster fields dropped (credentials, db,
  // timeouts and TLS settings kept). For the resolved master and for each sentinel.
  RedisUrl at(const std::string& host, std::uint16_t port) const;

  // The address without credentials, for logs: "redis://host:6379/0", "rediss://host:6380/0",
  // "unix:///p?db=1", "redis+sentinel://s1:26379,s2:26379/mymaster/0",
  // "redis+cluster://n1:7000,n2:7001/0".
  std::string describe() const;
};

// Throws InvalidArgument naming what is wrong ("redis url: port must be 1..65535: 'x'").
RedisUrl parse_redis_url(std::string_view url);

}  // namespace herdcache
