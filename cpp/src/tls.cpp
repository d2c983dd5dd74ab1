#include "herdcache/tls.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace herdcache {

namespace {

// The most specific text OpenSSL's error queue holds ("certificate verify failed",
// "tlsv13 alert certificate required"), or `fallback`. Empties the queue.
std::string queued_error(std::string_view fallback) {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    if (!text.empty()) continue;  // the first is the cause; drain the rest
    const char* reason = ERR_reason_error_string(code);
    char buffer[256];
    if (reason == nullptr) ERR_error_string_n(code, buffer, sizeof(buffer));
    text = reason != nullptr ? reason : buffer;
  }
  return text.empty() ? std::string(fallback) : text;
}

bool is_ip_literal(const std::string& host) {
  unsigned char address[16];
  return ::inet_pton(AF_INET, host.c_str(), address) == 1 || ::inet_pton(AF_INET6, host.c_str(), address) == 1;
}

// --- the BIO: the session's socket I/O, with MSG_NOSIGNAL ----------------------------

using BioSocket = TlsSession::Socket;

int bio_write(BIO* bio, const char* data, int size) {
  auto* socket = static_cast<BioSocket*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  for (;;) {
    const ssize_t n = ::send(socket->fd, data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
    if (n >= 0) return static_cast<int>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(bio);
    return -1;
  }
}

int bio_read(BIO* bio, char* data, int size) {
  auto* socket = static_cast<BioSocket*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  for (;;) {
    const ssize_t n = ::recv(socket->fd, data, static_cast<std::size_t>(size), 0);
    if (n > 0) return static_cast<int>(n);
    if (n == 0) {
      socket->eof = true;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_read(bio);
    return -1;
  }
}

long bio_ctrl(BIO* bio, int command, long, void*) {
  switch (command) {
    case BIO_CTRL_FLUSH:  // every write goes straight to the socket
      return 1;
    case BIO_CTRL_EOF:
      return static_cast<BioSocket*>(BIO_get_data(bio))->eof ? 1 : 0;
    default:
      return 0;
  }
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

BIO_METHOD* socket_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "herdcache socket");
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    return m;
  }();
  return method;
}

}  // namespace

// --- TlsContext --------------------------------------------------------------------------

void TlsContext::Free::operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }

TlsContext::TlsContext(const RedisUrl& url) : ctx_(SSL_CTX_new(TLS_client_method())) {
  ERR_clear_error();
  if (!ctx_) throw TlsError(queued_error("cannot create a TLS context"));
  SSL_CTX* ctx = ctx_.get();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Partial writes: flush() sends what it can and keeps the rest. Moving buffer: the
  // output buffer may be reallocated (appended to) between a WANT_WRITE and the retry.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (url.tls_verify_peer) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (url.tls_ca_file.empty()) {
      if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        throw TlsError(fmt::format("cannot load the system CA store: {}", queued_error("unknown error")));
      }
    } else if (SSL_CTX_load_verify_locations(ctx, url.tls_ca_file.c_str(), nullptr) != 1) {
      throw TlsError(fmt::format("ssl_ca_certs: cannot load '{}': {}", url.tls_ca_file,
                                 queued_error("not a PEM certificate file")));
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (url.tls_cert_file.empty()) {
    // Called when the server asks for a client certificate and there is none: with TLS 1.3
    // the server's refusal comes after the handshake, often as a reset that loses its
    // alert, so the session remembers the request to say what is missing.
    SSL_CTX_set_client_cert_cb(ctx, [](SSL* ssl, X509**, EVP_PKEY**) {
      static_cast<TlsSession*>(SSL_get_app_data(ssl))->note_certificate_request();
      return 0;  // none
    });
  } else {
    const std::string& key = url.tls_key_file.empty() ? url.tls_cert_file : url.tls_key_file;
    if (SSL_CTX_use_certificate_chain_file(ctx, url.tls_cert_file.c_str()) != 1) {
      throw TlsError(fmt::format("ssl_certfile: cannot load '{}': {}", url.tls_cert_file,
                                 queued_error("not a PEM certificate file")));
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
      throw TlsError(fmt::format("{}: cannot load the private key '{}': {}",
                                 url.tls_key_file.empty() ? "ssl_certfile" : "ssl_keyfile", key,
                                 queued_error("not a PEM private key")));
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      throw TlsError(fmt::format("ssl_keyfile: the key '{}' does not match the certificate '{}'", key,
                                 url.tls_cert_file));
    }
  }
}

// --- TlsSession --------------------------------------------------------------------------

void TlsSession::Free::operator()(SSL* ssl) const noexcept { SSL_free(ssl); }

TlsSession::TlsSession(const TlsContext& context, int fd, const RedisUrl& url)
    : socket_{fd, false}, ssl_(SSL_new(context.get())) {
  ERR_clear_error();
  if (!ssl_) throw TlsError(queued_error("cannot create a TLS session"));
  BIO* bio = BIO_new(socket_method());
  if (bio == nullptr) throw TlsError(queued_error("cannot create a TLS socket BIO"));
  BIO_set_data(bio, &socket_);
  SSL_set_bio(ssl_.get(), bio, bio);  // the session owns the BIO from here
  SSL_set_connect_state(ssl_.get());
  SSL_set_app_data(ssl_.get(), this);

  const bool ip = is_ip_literal(url.host);
  // SNI carries host names only (RFC 6066): never an address literal.
  if (!ip && SSL_set_tlsext_host_name(ssl_.get(), url.host.c_str()) != 1) {
    throw TlsError(fmt::format("cannot send SNI '{}': {}", url.host, queued_error("invalid name")));
  }
  if (url.tls_check_hostname) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str())
                      : X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), 0);
    if (ok != 1) throw TlsError(fmt::format("cannot check the certificate against '{}'", url.host));
  }
}

TlsSession::~TlsSession() = default;

TlsSession::Status TlsSession::status_of(int rc, const char* doing) {
  try {
    return classify(rc, doing);
  } catch (const TlsError& e) {
    if (!certificate_requested_) throw;
    throw TlsError(fmt::format("{} (the server asked for a client certificate and none is configured: "
                               "ssl_certfile, ssl_keyfile)",
                               e.what()));
  }
}

TlsSession::Status TlsSession::classify(int rc, const char* doing) {
  switch (SSL_get_error(ssl_.get(), rc)) {
    case SSL_ERROR_WANT_READ:
      return Status::WantRead;
    case SSL_ERROR_WANT_WRITE:
      return Status::WantWrite;
    case SSL_ERROR_ZERO_RETURN:  // close_notify
      return Status::Closed;
    case SSL_ERROR_SYSCALL: {
      const int err = errno;
      if (ERR_peek_error() == 0) {
        if (socket_.eof || err == 0) return Status::Closed;
        throw TlsError(fmt::format("{}: {}", doing, std::strerror(err)));
      }
      break;
    }
    default:
      break;
  }
  // Verification failures carry their own reason (an unknown CA, a wrong name, expired).
  const long verify = SSL_get_verify_result(ssl_.get());
  if (!established_ && verify != X509_V_OK) {
    ERR_clear_error();
    throw TlsError(fmt::format("{}: certificate verify failed: {}", doing, X509_verify_cert_error_string(verify)));
  }
  if (ERR_peek_error() == 0 && socket_.eof) return Status::Closed;
  throw TlsError(fmt::format("{}: {}", doing, queued_error("TLS protocol error")));
}

TlsSession::Status TlsSession::handshake() {
  ERR_clear_error();
  const int rc = SSL_do_handshake(ssl_.get());
  if (rc == 1) {
    established_ = true;
    return Status::Done;
  }
  const Status status = status_of(rc, "TLS handshake failed");
  if (status == Status::Closed) throw TlsError("TLS handshake failed: connection closed by the server");
  return status;
}

TlsSession::Io TlsSession::read(char* buffer, std::size_t size) {
  ERR_clear_error();
  const int rc = SSL_read(ssl_.get(), buffer, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
  if (rc > 0) return {static_cast<std::size_t>(rc), Status::Done};
  return {0, status_of(rc, "TLS read failed")};
}

TlsSession::Io TlsSession::write(const char* data, std::size_t size) {
  ERR_clear_error();
  const int rc = SSL_write(ssl_.get(), data, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
  if (rc > 0) return {static_cast<std::size_t>(rc), Status::Done};
  return {0, status_of(rc, "TLS write failed")};
}

bool TlsSession::pending() const noexcept { return SSL_pending(ssl_.get()) > 0; }

void TlsSession::shutdown() noexcept {
  if (!established_ || socket_.eof) return;
  ERR_clear_error();
  SSL_shutdown(ssl_.get());  // one try: close_notify if the socket takes it, no waiting
  ERR_clear_error();
}

}  // namespace herdcache
