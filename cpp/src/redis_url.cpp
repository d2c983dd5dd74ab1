#include "herdcache/redis_url.hpp"

#include <fmt/format.h>

#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <vector>

#include "herdcache/errors.hpp"

namespace herdcache {

namespace {

[[noreturn]] void bad(std::string_view what, std::string_view detail) {
  throw InvalidArgument(fmt::format("redis url: {}: '{}'", what, detail));
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view text, std::string_view what) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    const bool complete = i + 2 < text.size();
    const int hi = complete ? hex_digit(text[i + 1]) : -1;
    const int lo = complete ? hex_digit(text[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      // Never echo credentials into an error message (they end up in logs).
      const bool secret = what != "path";
      bad(fmt::format("bad percent escape in {}", what), secret ? "<redacted>" : text);
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

bool control_or_space(char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; }

std::optional<long long> to_integer(std::string_view text) {
  long long value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return {};
  return value;
}

int parse_db(std::string_view text) {
  const auto value = to_integer(text);
  if (!value || *value < 0 || *value > INT32_MAX) {
    bad("db must be a non-negative integer", text);
  }
  return static_cast<int>(*value);
}

// user:password, :password, or password-less user. Decoded into `url`.
void parse_userinfo(std::string_view userinfo, RedisUrl& url) {
  const auto colon = userinfo.find(':');
  if (colon == std::string_view::npos) {
    // redis-py reads a lone userinfo as a username without password; AUTH needs a
    // password, so that would be silently ignored: refuse it instead.
    bad("credentials need a password ('user:password@' or ':password@')", "<redacted>");
  }
  url.username = percent_decode(userinfo.substr(0, colon), "username");
  url.password = percent_decode(userinfo.substr(colon + 1), "password");
  if (url.password.empty()) bad("empty password", "<redacted>");
}

void parse_host_port(std::string_view hostport, RedisUrl& url) {
  std::string_view host = hostport;
  std::string_view port;
  if (hostport.starts_with('[')) {  // [v6]:port
    const auto close = hostport.find(']');
    if (close == std::string_view::npos) bad("unterminated '[' in host", hostport);
    host = hostport.substr(1, close - 1);
    const auto rest = hostport.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') bad("expected ':port' after ']'", hostport);
      port = rest.substr(1);
      if (port.empty()) bad("empty port", hostport);
    }
  } else {
    const auto colon = hostport.rfind(':');
    if (colon != std::string_view::npos) {
      host = hostport.substr(0, colon);
      port = hostport.substr(colon + 1);
      if (port.empty()) bad("empty port", hostport);
    }
  }
  if (host.empty()) bad("missing host", hostport);
  // The host reaches the resolver as a C string: a NUL would cut it short (the URL names
  // one host, the connection goes to another), and no host name holds spaces or controls.
  if (std::any_of(host.begin(), host.end(), control_or_space)) {
    throw InvalidArgument(fmt::format("redis url: host must not contain spaces or control characters: {:?}",
                                      std::string(host)));
  }
  url.host = std::string(host);
  if (!port.empty()) {
    const auto value = to_integer(port);
    if (!value || *value < 1 || *value > 65535) bad("port must be 1..65535", port);
    url.port = static_cast<std::uint16_t>(*value);
  }
}

// Seconds (a decimal, > 0 and at most a day) as whole milliseconds, at least 1.
std::int64_t parse_timeout_ms(std::string_view value, std::string_view what) {
  double seconds = 0;
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (value.empty() || error != std::errc() || end != value.data() + value.size() || !(seconds > 0) ||
      seconds > 86400) {
    bad(fmt::format("{} must be seconds in (0, 86400]", what), value);
  }
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(seconds * 1000));
}

bool parse_bool(std::string_view value, std::string_view what) {
  std::string lower(value);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower == "true" || lower == "1" || lower == "yes") return true;
  if (lower == "false" || lower == "0" || lower == "no") return false;
  bad(fmt::format("{} must be true or false", what), value);
}

// A file path for OpenSSL: percent-decoded, not empty, no NUL (it reaches fopen as a C string).
std::string parse_file(std::string_view value, std::string_view what) {
  std::string path = percent_decode(value, "path");
  if (path.empty()) bad(fmt::format("{} needs a file path", what), value);
  if (path.find('\0') != std::string::npos) {
    throw InvalidArgument(fmt::format("redis url: {} must not contain NUL: {:?}", what, path));
  }
  return path;
}

// The ssl_* parameters, which only rediss:// accepts. False: not one of them.
bool parse_tls_param(std::string_view name, std::string_view value, RedisUrl& url,
                     std::optional<bool>& check_hostname) {
  if (!name.starts_with("ssl_")) return false;
  if (name != "ssl_ca_certs" && name != "ssl_certfile" && name != "ssl_keyfile" &&
      name != "ssl_cert_reqs" && name != "ssl_check_hostname") {
    return false;
  }
  if (!url.tls) bad("ssl_* parameters need a rediss:// url", name);
  if (name == "ssl_ca_certs") {
    url.tls_ca_file = parse_file(value, name);
  } else if (name == "ssl_certfile") {
    url.tls_cert_file = parse_file(value, name);
  } else if (name == "ssl_keyfile") {
    url.tls_key_file = parse_file(value, name);
  } else if (name == "ssl_cert_reqs") {
    if (value == "required") {
      url.tls_verify_peer = true;
    } else if (value == "none") {
      url.tls_verify_peer = false;
    } else {
      bad("ssl_cert_reqs must be required or none", value);
    }
  } else {
    check_hostname = parse_bool(value, name);
  }
  return true;
}

void parse_query(std::string_view query, RedisUrl& url, bool& db_given) {
  std::optional<bool> check_hostname;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    const auto name = pair.substr(0, eq);
    const auto value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (name == "db") {
      if (db_given) bad("db given twice", pair);
      url.db = parse_db(value);
      db_given = true;
    } else if (name == "password") {
      url.password = percent_decode(value, "password");
    } else if (name == "username") {
      url.username = percent_decode(value, "username");
    } else if (name == "socket_timeout") {
      url.command_timeout_ms = parse_timeout_ms(value, "socket_timeout");
    } else if (name == "socket_connect_timeout") {
      url.connect_timeout_ms = parse_timeout_ms(value, "socket_connect_timeout");
    } else if (name == "sentinel_password" || name == "sentinel_username") {
      if (!url.uses_sentinel()) bad("sentinel_* parameters need a redis+sentinel:// url", name);
      auto& field = name == "sentinel_password" ? url.sentinel_password : url.sentinel_username;
      field = percent_decode(value, name);
    } else if (!parse_tls_param(name, value, url, check_hostname)) {
      bad("unknown query parameter (accepted: db, username, password, socket_timeout, "
          "socket_connect_timeout, with rediss:// ssl_ca_certs, ssl_certfile, ssl_keyfile, "
          "ssl_cert_reqs, ssl_check_hostname, with redis+sentinel:// sentinel_username, "
          "sentinel_password)",
          name);
    }
  }
  // Without verification there is no certificate whose name could be checked: asking for
  // both is a contradiction (Python's ssl refuses it too), not something to ignore.
  if (!url.tls_verify_peer && check_hostname.value_or(false)) {
    bad("ssl_check_hostname=true needs ssl_cert_reqs=required", "ssl_cert_reqs=none");
  }
  url.tls_check_hostname = url.tls && url.tls_verify_peer && check_hostname.value_or(true);
  if (!url.tls_key_file.empty() && url.tls_cert_file.empty()) {
    bad("ssl_keyfile needs ssl_certfile", url.tls_key_file);
  }
  if (!url.sentinel_username.empty() && url.sentinel_password.empty()) {
    bad("sentinel_username needs sentinel_password", url.sentinel_username);
  }
}

// host:port[,host:port...]: a sentinel URL's sentinels or a cluster URL's seeds, which
// `what` names in errors; a host without a port gets `default_port`.
std::vector<MasterAddress> parse_address_list(std::string_view hosts, std::uint16_t default_port,
                                              std::string_view what) {
  if (hosts.empty()) bad(fmt::format("needs at least one {} (host:port[,host:port...])", what), hosts);
  std::vector<MasterAddress> out;
  while (true) {
    const auto comma = hosts.find(',');
    const auto one = hosts.substr(0, comma);
    if (one.empty()) bad(fmt::format("empty {} address in the host list", what), hosts);
    RedisUrl parsed;
    parsed.port = default_port;
    parse_host_port(one, parsed);
    out.push_back(MasterAddress{std::move(parsed.host), parsed.port});
    if (comma == std::string_view::npos) break;
    hosts = hosts.substr(comma + 1);
  }
  return out;
}

// host:port[,host:port...]/service_name[/db]: the sentinels and the service they watch.
void parse_sentinel_target(std::string_view hosts, std::string_view path, RedisUrl& url, bool& db_given) {
  url.sentinels = parse_address_list(hosts, 26379, "sentinel");
  const auto slash = path.find('/');
  const auto service = path.substr(0, slash);
  if (service.empty()) bad("a sentinel url needs a service name (redis+sentinel://host:port/service_name)", path);
  url.sentinel_service = percent_decode(service, "path");
  if (std::any_of(url.sentinel_service.begin(), url.sentinel_service.end(), control_or_space)) {
    throw InvalidArgument(fmt::format("redis url: service name must not contain spaces or control characters: {:?}",
                                      url.sentinel_service));
  }
  if (slash != std::string_view::npos) {
    const auto db = path.substr(slash + 1);
    if (db.empty()) bad("empty db after the service name", path);
    url.db = parse_db(db);
    db_given = true;
  }
}

}  // namespace

RedisUrl parse_redis_url(std::string_view text) {
  const auto scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) {
    bad("expected redis://host:port/db or unix:///path", text);
  }
  const auto scheme = text.substr(0, scheme_end);
  std::string_view rest = text.substr(scheme_end + 3);
  if (rest.find('#') != std::string_view::npos) bad("fragments ('#') are not allowed", text);

  RedisUrl url;
  if (scheme == "unix" || scheme == "redis+unix") {
    url.transport = RedisUrl::Transport::Unix;
  } else if (scheme == "rediss" || scheme == "rediss+sentinel" || scheme == "rediss+cluster") {
    url.tls = true;
  } else if (scheme != "redis" && scheme != "redis+sentinel" && scheme != "redis+cluster") {
    bad("unknown scheme (expected redis, rediss, unix, redis+unix, redis+sentinel, rediss+sentinel, "
        "redis+cluster or rediss+cluster)",
        scheme);
  }
  const bool sentinel = scheme.ends_with("+sentinel");
  const bool cluster = scheme.ends_with("+cluster");

  std::string_view query;
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }

  bool db_given = false;
  if (url.transport == RedisUrl::Transport::Unix) {
    // unix://[userinfo@]/path: the path starts at the first '/'.
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos) bad("missing socket path", text);
    const auto authority = rest.substr(0, slash);
    if (!authority.empty()) {
      if (!authority.ends_with('@')) bad("unix urls have no host (use unix:///path)", authority);
      parse_userinfo(authority.substr(0, authority.size() - 1), url);
    }
    url.path = percent_decode(rest.substr(slash), "path");
    if (url.path == "/") bad("missing socket path", text);
    // The path reaches the kernel as a C string: a NUL (%00) would cut it short.
    if (url.path.find('\0') != std::string::npos) {
      throw InvalidArgument(fmt::format("redis url: socket path must not contain NUL: {:?}", url.path));
    }
    if (url.path.size() >= sizeof(sockaddr_un::sun_path)) {
      bad(fmt::format("socket path longer than {} bytes", sizeof(sockaddr_un::sun_path) - 1),
          url.path);
    }
  } else {
    const auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    const std::string_view path =
        slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
      parse_userinfo(authority.substr(0, at), url);
      authority = authority.substr(at + 1);
    }
    if (sentinel) {
      parse_sentinel_target(authority, path, url, db_given);
    } else {
      if (cluster) {
        url.cluster_seeds = parse_address_list(authority, 6379, "cluster seed");
      } else {
        parse_host_port(authority, url);
      }
      if (!path.empty()) {
        url.db = parse_db(path);
        db_given = true;
      }
    }
  }
  parse_query(query, url, db_given);
  // SELECT is refused on a cluster node: a db other than 0 could never be honoured.
  if (cluster && url.db != 0) {
    throw InvalidArgument(fmt::format("redis url: a Redis Cluster has only db 0, not db {}", url.db));
  }
  return url;
}

RedisUrl RedisUrl::at(const std::string& to_host, std::uint16_t to_port) const {
  RedisUrl out = *this;
  out.transport = Transport::Tcp;
  out.host = to_host;
  out.port = to_port;
  out.sentinels.clear();
  out.sentinel_service.clear();
  out.sentinel_username.clear();
  out.sentinel_password.clear();
  out.cluster_seeds.clear();
  return out;
}

namespace {
std::string join_addresses(const std::vector<MasterAddress>& addresses) {
  std::string out;
  for (const auto& a : addresses) out.append(out.empty() ? "" : ",").append(a.str());
  return out;
}
}  // namespace

std::string RedisUrl::describe() const {
  if (transport == Transport::Unix) return fmt::format("unix://{}?db={}", path, db);
  if (uses_sentinel()) {
    return fmt::format("{}://{}/{}/{}", tls ? "rediss+sentinel" : "redis+sentinel", join_addresses(sentinels),
                       sentinel_service, db);
  }
  if (uses_cluster()) {
    return fmt::format("{}://{}/{}", tls ? "rediss+cluster" : "redis+cluster", join_addresses(cluster_seeds), db);
  }
  return fmt::format("{}://{}/{}", tls ? "rediss" : "redis", MasterAddress{host, port}.str(), db);
}

}  // namespace herdcache
