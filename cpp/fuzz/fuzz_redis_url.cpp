// Redis URLs from arbitrary bytes (a URL comes from settings, often from the environment).
// Every input either throws InvalidArgument or parses to an address that can be used:
// a TCP port in 1..65535 and a host without spaces or control bytes, or a socket path
// without NUL; db and timeouts not negative; and describe(), which goes to logs, says
// nothing of the password. TLS only over TCP, with no name check without verification,
// and file paths without NUL. A cluster URL has seeds that are all usable addresses, db 0,
// and is not a sentinel URL too.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "herdcache/errors.hpp"
#include "herdcache/redis_url.hpp"

using namespace herdcache;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  RedisUrl url;
  try {
    url = parse_redis_url(text);
  } catch (const InvalidArgument&) {
    return 0;
  }
  if (url.transport == RedisUrl::Transport::Tcp) {
    FUZZ_CHECK(url.port >= 1);
    FUZZ_CHECK(!url.host.empty());
  } else {
    FUZZ_CHECK(!url.path.empty());
  }
  FUZZ_CHECK(url.db >= 0);
  FUZZ_CHECK(url.command_timeout_ms >= 0 && url.connect_timeout_ms >= 0);
  for (char c : url.host) FUZZ_CHECK(static_cast<unsigned char>(c) > 0x20 && c != 0x7f);
  FUZZ_CHECK(url.path.find('\0') == std::string::npos);
  FUZZ_CHECK(!url.tls || url.transport == RedisUrl::Transport::Tcp);
  FUZZ_CHECK(!url.tls_check_hostname || (url.tls && url.tls_verify_peer));
  FUZZ_CHECK(url.tls || (url.tls_ca_file.empty() && url.tls_cert_file.empty() && url.tls_key_file.empty()));
  FUZZ_CHECK(url.tls_key_file.empty() || !url.tls_cert_file.empty());
  for (const auto* file : {&url.tls_ca_file, &url.tls_cert_file, &url.tls_key_file}) {
    FUZZ_CHECK(file->find('\0') == std::string::npos);
  }
  FUZZ_CHECK(!(url.uses_cluster() && url.uses_sentinel()));
  for (const auto& seed : url.cluster_seeds) {
    FUZZ_CHECK(seed.port >= 1 && !seed.host.empty());
    for (char c : seed.host) FUZZ_CHECK(static_cast<unsigned char>(c) > 0x20 && c != 0x7f);
  }
  FUZZ_CHECK(!url.uses_cluster() || (url.db == 0 && url.transport == RedisUrl::Transport::Tcp));
  RedisUrl other = url;
  other.password = url.password == "x" ? "y" : "x";
  FUZZ_CHECK(other.describe() == url.describe());  // the log form says nothing of the password
  return 0;
}
