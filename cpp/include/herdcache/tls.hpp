// TLS for a RedisConnection (rediss://): an OpenSSL context made from a URL's ssl_*
// parameters, and one session over a non-blocking socket. Nothing here loops or waits:
// each call does what it can now and, when it cannot finish, says which readiness the
// socket must be polled for (OpenSSL's WANT_READ / WANT_WRITE), so that TLS runs inside
// the I/O loops that drive plain connections.
//
// The session does its socket I/O through a BIO of its own that sends with MSG_NOSIGNAL:
// OpenSSL's socket BIO write()s, and a peer that has gone away would SIGPIPE the process.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "herdcache/errors.hpp"
#include "herdcache/redis_url.hpp"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace herdcache {

// The context's files could not be loaded, the handshake failed, the peer's certificate
// did not verify, or the session broke. The message says why, e.g. "certificate verify
// failed: unable to get local issuer certificate".
class TlsError : public Error {
 public:
  using Error::Error;
};

// What every connection to one URL shares: protocol versions, the CAs to verify against,
// the client certificate.
class TlsContext {
 public:
  // Loads ssl_ca_certs (or the system CA store) and ssl_certfile/ssl_keyfile.
  // Throws TlsError naming the parameter and the file.
  explicit TlsContext(const RedisUrl& url);
  SSL_CTX* get() const noexcept { return ctx_.get(); }

 private:
  struct Free {
    void operator()(SSL_CTX* ctx) const noexcept;
  };
  std::unique_ptr<SSL_CTX, Free> ctx_;
};

class TlsSession {
 public:
  enum class Status { Done, WantRead, WantWrite, Closed };
  struct Io {
    std::size_t bytes = 0;  // > 0 only with Done
    Status status = Status::Done;
  };
  // The state of the session's BIO (tls.cpp's socket functions read it).
  struct Socket {
    int fd = -1;
    bool eof = false;  // recv() returned 0
  };

  // A client session over a connected non-blocking socket (which stays the caller's).
  // Sends SNI when url.host is a name; checks the certificate's name (or IP address)
  // against url.host when url.tls_check_hostname.
  TlsSession(const TlsContext& context, int fd, const RedisUrl& url);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // The handshake as far as it goes now: Done, or what to poll for before calling again.
  // Throws TlsError (a certificate that does not verify: its reason).
  Status handshake();
  // Up to `size` decrypted bytes. Throws TlsError.
  Io read(char* buffer, std::size_t size);
  // Bytes of data taken (at most one TLS record's worth). After WantRead/WantWrite, call
  // again with the same bytes at the start of `data` (it may have moved and grown).
  // Throws TlsError.
  Io write(const char* data, std::size_t size);
  // Decrypted bytes already held by the session: poll() will not report them.
  bool pending() const noexcept;
  // Sends close_notify if the socket takes it now; never waits.
  void shutdown() noexcept;
  // The server asked for a client certificate and the URL has none (failures say so).
  void note_certificate_request() noexcept { certificate_requested_ = true; }

 private:
  struct Free {
    void operator()(SSL* ssl) const noexcept;
  };

  Status status_of(int rc, const char* doing);
  Status classify(int rc, const char* doing);

  Socket socket_;
  std::unique_ptr<SSL, Free> ssl_;
  bool established_ = false;
  bool certificate_requested_ = false;
};

}  // namespace herdcache
