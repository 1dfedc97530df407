// TLS for net::HttpServer: OpenSSL driven through memory BIOs on the libuv loop thread, so no
// extra threads and no blocking sockets are involved.
//
//   TlsCertificate  a parsed certificate chain + private key (PEM in, X509/EVP_PKEY held),
//                   immutable and shared: a connection that started with it keeps it alive
//                   even after a renewal replaced it in the context.
//   TlsContext      one SSL_CTX (TLS 1.2 and 1.3, Mozilla "intermediate" ciphers, session
//                   tickets for resumption) and the certificates it serves, chosen per
//                   handshake by SNI in a ClientHello callback: exact name, then a "*.parent"
//                   wildcard, then the fallback certificate. ALPN offers "http/1.1"; a client
//                   that offers "acme-tls/1" (RFC 8737, TLS-ALPN-01) gets the challenge
//                   certificate for that name when one is set, and nothing else.
//   TlsSession      one connection's SSL object between two memory BIOs: the connection feeds
//                   it ciphertext from the socket, reads plaintext out, writes plaintext in and
//                   sends whatever ciphertext it produced.
//
// Replacing certificates (SetCertificates) affects new handshakes only; established
// connections are never touched, so a renewal drops nothing.
//
// Thread safety: the loop thread only (TlsCertificate is immutable and may be built anywhere).
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/openssl_ptr.h"
#include "base/status.h"

namespace geysir::net {

class TlsCertificate {
 public:
  // `chain_pem`: the leaf first, then intermediates; `key_pem`: the leaf's key (any type
  // OpenSSL reads). Fails with kInvalidArgument when either does not parse or they do not match.
  static Result<std::shared_ptr<const TlsCertificate>> FromPem(std::string_view chain_pem, std::string_view key_pem);

  // DNS names the leaf is valid for (subjectAltName dNSName entries, lower-case; the subject
  // CN when there are none). "*.example.com" entries are kept as written.
  const std::vector<std::string>& names() const { return names_; }
  const std::string& serial_hex() const { return serial_hex_; }
  int64_t not_before_s() const { return not_before_s_; }
  int64_t not_after_s() const { return not_after_s_; }
  // Whether the leaf covers `host` (exact or by a one-label wildcard).
  bool Covers(std::string_view host) const;

  X509* leaf() const { return leaf_.get(); }
  EVP_PKEY* key() const { return key_.get(); }
  STACK_OF(X509) * chain() const { return chain_.get(); }

 private:
  X509Ptr leaf_;
  EvpPkeyPtr key_;
  X509StackPtr chain_;
  std::vector<std::string> names_;
  std::string serial_hex_;
  int64_t not_before_s_ = 0;
  int64_t not_after_s_ = 0;
};

using TlsCertificatePtr = std::shared_ptr<const TlsCertificate>;

class TlsContext {
 public:
  static Result<std::unique_ptr<TlsContext>> Create();
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Certificates for normal handshakes, indexed by every name they carry. `fallback` (may be
  // null) answers a ClientHello without SNI or with a name nothing covers; without it such a
  // handshake fails with an unrecognized_name alert.
  void SetCertificates(const std::vector<TlsCertificatePtr>& certs, TlsCertificatePtr fallback);
  // TLS-ALPN-01 challenge certificates by exact (lower-case) host name.
  void SetAcmeCertificates(std::map<std::string, TlsCertificatePtr> by_name);

  // The certificate a handshake for `host` gets (nullptr: the handshake fails).
  TlsCertificatePtr Select(std::string_view host) const;
  TlsCertificatePtr SelectAcme(std::string_view host) const;

  SSL_CTX* ssl_ctx() const { return ctx_.get(); }
  size_t certificate_count() const { return by_name_.size(); }

 private:
  TlsContext() = default;
  SslCtxPtr ctx_;
  std::map<std::string, TlsCertificatePtr, std::less<>> by_name_;
  TlsCertificatePtr fallback_;
  std::map<std::string, TlsCertificatePtr, std::less<>> acme_;
};

class TlsSession {
 public:
  // kData: `n` plaintext bytes were read; kWant: nothing more until the peer sends more;
  // kClosed: the peer sent close_notify; kError: the handshake or a record failed (error()).
  enum class ReadResult { kData, kWant, kClosed, kError };

  explicit TlsSession(const TlsContext& context);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Ciphertext received from the peer.
  void Feed(const char* data, size_t len);
  // Drives the handshake and decrypts into out[0..cap).
  ReadResult Read(char* out, size_t cap, size_t* n);
  // Encrypts plaintext; the records wait in the output until TakeOutput.
  bool Write(const char* data, size_t len);
  // Queues close_notify (no-op after an error).
  void Shutdown();

  bool has_output() const;
  // Moves the pending ciphertext into `out` (appending).
  void TakeOutput(std::string& out);

  bool handshake_done() const;
  bool failed() const { return failed_; }
  const std::string& error() const { return error_; }
  // The SNI host name (lower-case, no trailing dot); "" when the client sent none.
  const std::string& server_name() const { return server_name_; }
  // The client asked for acme-tls/1 and got the challenge certificate: no HTTP on this one.
  bool acme_alpn() const { return acme_alpn_; }
  bool resumed() const;

 private:
  friend struct TlsCallbacks;
  SslPtr ssl_;
  BIO* rbio_ = nullptr;  // owned by ssl_
  BIO* wbio_ = nullptr;  // owned by ssl_
  const TlsContext* context_;
  std::string server_name_;
  std::string error_;
  bool acme_alpn_ = false;
  bool failed_ = false;
};

// The OpenSSL error queue as one line (and cleared): "error:0A000086:SSL routines::...".
std::string TakeOpenSslErrors();

}  // namespace geysir::net
