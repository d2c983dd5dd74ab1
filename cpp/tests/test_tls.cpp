// rediss://: RedisClient and RedisSubscriber over TLS to a real redis-server (--tls-port),
// with a throwaway CA that each test makes with the openssl CLI in a temporary directory.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "herdcache/redis.hpp"
#include "herdcache/redis_subscriber.hpp"
#include "redis_server.hpp"

using herdcache::ConnectionEvent;
using herdcache::parse_redis_url;
using herdcache::RedisClient;
using herdcache::RedisOptions;
using herdcache::RedisResult;
using herdcache::RedisSubscriber;
using herdcache::Reply;
using herdcache::testing::free_port;
using herdcache::testing::Observed;
using herdcache::testing::RedisServer;
using herdcache::testing::TempDir;
using namespace std::chrono_literals;

namespace {

RedisOptions fast_options() {
  RedisOptions options;
  options.connect_timeout_ms = 2000;
  options.command_timeout_ms = 5000;
  options.backoff_initial_ms = 5;
  options.backoff_max_ms = 50;
  options.health_interval_ms = 100;
  return options;
}

// A CA, a server certificate for 'localhost' signed by it, a client certificate, and a
// second CA that signed nothing (tests/servers.py's TlsFiles, in C++).
class Certificates {
 public:
  Certificates() {
    ca("ca", "herdcache test CA");
    ca("other-ca", "herdcache other CA");
    leaf("server", "localhost", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth");
    leaf("client", "herdcache client", "extendedKeyUsage=clientAuth");
  }
  std::string path(const std::string& name) const { return (dir_.path() / name).string(); }

 private:
  void openssl(const std::string& args) const {
    const std::string command = "cd '" + dir_.path().string() + "' && openssl " + args + " >/dev/null 2>&1";
    if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
  }
  void key(const std::string& name) const {
    openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " + name + ".key");
  }
  void ca(const std::string& name, const std::string& common_name) const {
    key(name);
    openssl("req -x509 -new -key " + name + ".key -out " + name + ".crt -days 2 -subj '/CN=" + common_name + "'");
  }
  void leaf(const std::string& name, const std::string& common_name, const std::string& extensions) const {
    key(name);
    openssl("req -new -key " + name + ".key -out " + name + ".csr -subj '/CN=" + common_name + "'");
    std::ofstream(dir_.path() / (name + ".ext")) << extensions << "\n";
    openssl("x509 -req -in " + name + ".csr -CA ca.crt -CAkey ca.key -CAcreateserial -out " + name +
            ".crt -days 2 -extfile " + name + ".ext");
  }

  TempDir dir_;
};

// redis-server with TLS on a port of its own (plain TCP on server.port() too).
struct TlsServer {
  explicit TlsServer(const Certificates& certs, bool auth_clients = false)
      : tls_port(free_port()),
        server({"--tls-port", std::to_string(tls_port), "--tls-cert-file", certs.path("server.crt"),
                "--tls-key-file", certs.path("server.key"), "--tls-ca-cert-file", certs.path("ca.crt"),
                "--tls-auth-clients", auth_clients ? "yes" : "no"}) {}

  std::string url(const std::string& host, const std::string& query) const {
    return "rediss://" + host + ":" + std::to_string(tls_port) + "/0?" + query;
  }

  int tls_port;
  RedisServer server;
};

// The client's first connection outcome, with its reason.
ConnectionEvent first_event(Observed<std::vector<ConnectionEvent>>& events) {
  REQUIRE(events.wait_for([](const auto& all) { return !all.empty(); }, 10s));
  return events.get().front();
}

RedisClient::EventCallback record(Observed<std::vector<ConnectionEvent>>& events) {
  return [&events](const ConnectionEvent& e) { events.update([&](auto& all) { all.push_back(e); }); };
}

}  // namespace

TEST_CASE("tls: pipelined traffic and an 8 MB value over rediss://", "[redis][tls]") {
  Certificates certs;
  TlsServer tls(certs);
  Observed<std::pair<int, int>> tally;  // done, wrong; outlives the client, whose thread updates it
  RedisClient client(parse_redis_url(tls.url("localhost", "ssl_ca_certs=" + certs.path("ca.crt"))),
                     fast_options());

  // Large enough that writes and reads take many TLS records and fill the socket buffers.
  std::string big(8u << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + (i >> 13));
  REQUIRE(client.execute({"SET", "big", big}).reply() == Reply::status("OK"));
  const RedisResult got = client.execute({"GET", "big"});
  REQUIRE(got.ok());
  CHECK(got.reply().str() == big);

  constexpr int kRequests = 5000;
  for (int i = 0; i < kRequests; ++i) {
    const std::string key = "k" + std::to_string(i);
    client.submit({"SET", key, key + "-value"}, [](RedisResult) {});
    client.submit({"GET", key}, [&tally, key](RedisResult r) {
      const bool right = r.ok() && r.reply() == Reply::bulk(key + "-value");
      tally.update([&](auto& t) {
        ++t.first;
        t.second += right ? 0 : 1;
      });
    });
  }
  REQUIRE(tally.wait_for([](const auto& t) { return t.first == kRequests; }, 20s));
  CHECK(tally.get().second == 0);
  // The connection really is TLS: the plain port holds the same data, and the TLS port
  // does not speak plain RESP.
  RedisClient plain(parse_redis_url(tls.server.url()), fast_options());
  CHECK(plain.execute({"GET", "k42"}).reply() == Reply::bulk("k42-value"));
}

TEST_CASE("tls: the subscriber listens over rediss://", "[redis][tls][subscriber]") {
  Certificates certs;
  TlsServer tls(certs);
  const auto url = parse_redis_url(tls.url("localhost", "ssl_ca_certs=" + certs.path("ca.crt")));
  Observed<std::vector<std::string>> messages;
  Observed<std::vector<ConnectionEvent>> events;
  RedisSubscriber subscriber(
      url, fast_options(), {"herd:inval"},
      [&messages](std::string_view, std::string_view payload) {
        messages.update([&](auto& all) { all.emplace_back(payload); });
      },
      record(events));
  REQUIRE(first_event(events).connected);
  RedisClient client(url, fast_options());
  CHECK(client.execute({"PUBLISH", "herd:inval", "over tls"}).reply() == Reply::integer(1));
  REQUIRE(messages.wait_for([](const auto& all) { return !all.empty(); }, 5s));
  CHECK(messages.get() == std::vector<std::string>{"over tls"});
}

TEST_CASE("tls: a certificate that does not verify is a connection failure that says why", "[redis][tls]") {
  Certificates certs;
  TlsServer tls(certs);
  auto refused_because = [&](const std::string& url) {
    CAPTURE(url);
    Observed<std::vector<ConnectionEvent>> events;
    RedisClient client(parse_redis_url(url), fast_options(), record(events));
    const ConnectionEvent event = first_event(events);
    CHECK_FALSE(event.connected);
    const RedisResult r = client.execute({"PING"});
    CHECK_FALSE(r.ok());
    CHECK_FALSE(client.health().connected);
    return client.health().last_error;
  };
  const std::string ca = "ssl_ca_certs=" + certs.path("ca.crt");

  CHECK_THAT(refused_because(tls.url("localhost", "ssl_ca_certs=" + certs.path("other-ca.crt"))),
             Catch::Contains("TLS handshake failed: certificate verify failed"));
  // The default is the system CA store, which does not know the test CA.
  CHECK_THAT(refused_because(tls.url("localhost", "")), Catch::Contains("certificate verify failed"));
  // The certificate is for 'localhost', not for 127.0.0.1.
  CHECK_THAT(refused_because(tls.url("127.0.0.1", ca)), Catch::Contains("IP address mismatch"));
  CHECK_THAT(refused_because(tls.url("localhost", "ssl_ca_certs=/nonexistent/ca.pem")),
             Catch::Contains("ssl_ca_certs: cannot load '/nonexistent/ca.pem'"));
  // TLS to a plain port: the server never answers the handshake, the connect timeout ends it.
  CHECK_THAT(refused_because("rediss://127.0.0.1:" + std::to_string(tls.server.port()) + "?ssl_cert_reqs=none"),
             Catch::Contains("TLS handshake timed out"));

  // What the options turn off does connect.
  for (const std::string& url : {tls.url("127.0.0.1", ca + "&ssl_check_hostname=false"),
                                 tls.url("127.0.0.1", "ssl_cert_reqs=none")}) {
    CAPTURE(url);
    RedisClient client(parse_redis_url(url), fast_options());
    CHECK(client.execute({"PING"}).reply() == Reply::status("PONG"));
  }
}

TEST_CASE("tls: --tls-auth-clients yes wants the client certificate", "[redis][tls]") {
  Certificates certs;
  TlsServer tls(certs, /*auth_clients=*/true);
  const std::string ca = "ssl_ca_certs=" + certs.path("ca.crt");

  RedisClient with(parse_redis_url(tls.url("localhost", ca + "&ssl_certfile=" + certs.path("client.crt") +
                                                          "&ssl_keyfile=" + certs.path("client.key"))),
                   fast_options());
  CHECK(with.execute({"PING"}).reply() == Reply::status("PONG"));

  Observed<std::vector<ConnectionEvent>> events;
  RedisClient without(parse_redis_url(tls.url("localhost", ca)), fast_options(), record(events));
  CHECK_FALSE(first_event(events).connected);
  CHECK_FALSE(without.execute({"PING"}).ok());
  CHECK_THAT(without.health().last_error, Catch::Contains("the server asked for a client certificate"));
}
