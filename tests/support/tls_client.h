// TLS for tests over loopback: self-signed certificates made on the spot (no files, nothing
// committed), and TlsClient, a blocking OpenSSL client connection that offers SNI and ALPN,
// reports what the server chose, and speaks one HTTP/1.1 request at a time.
//
// Thread behaviour: a TlsClient belongs to one thread (a LoopRunner's client thread, since the
// server's loop runs on the test's); the certificate functions are safe from any thread.
#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdint>
#include <string>

#include "base/openssl_ptr.h"
#include "base/unique_fd.h"

namespace geysir::testing {

struct PemPair {
  std::string cert_pem;
  std::string key_pem;
};

// A self-signed P-256 certificate for DNS name `name` (CN and subjectAltName) with `serial`,
// valid from a minute ago for `valid_s` seconds.
PemPair SelfSignedPem(const std::string& name, long serial, long valid_s = 86400);

std::string CertificatePem(X509* cert);
std::string PrivateKeyPem(EVP_PKEY* key);

class TlsClient {
 public:
  // Connects to 127.0.0.1:`port` and shakes hands offering `sni` (none when empty) and the ALPN
  // protocol `alpn`; `resume` offers a session to resume, `max_version` caps the TLS version
  // (0: OpenSSL's highest). handshake_ok() says whether the handshake completed.
  TlsClient(uint16_t port, const std::string& sni, const std::string& alpn = "http/1.1",
            SSL_SESSION* resume = nullptr, int max_version = 0);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  bool connected() const { return connected_; }
  bool handshake_ok() const { return handshake_ok_; }
  SSL* ssl() const { return ssl_.get(); }

  // The serial number of the certificate the server sent (-1 if none).
  long Serial() const;
  // The subject's common name of the certificate the server sent ("" if none).
  std::string CommonName() const;
  // The ALPN protocol the server selected ("" if none).
  std::string Alpn() const;
  // Sends one POST of `body` to `path` and reads one Content-Length response; returns its body
  // ("" on failure).
  std::string Get(const std::string& path, const std::string& body = "");
  // Sends `request` as is and reads one Content-Length response whole (head and body; "" on failure).
  std::string Exchange(const std::string& request);
  // True when the server closed the connection (EOF or close_notify) without sending data.
  bool ClosedByPeer();

 private:
  // Declared in the order they are made: the SSL goes before its context and its socket.
  UniqueFd fd_;
  SslCtxPtr ctx_;
  SslPtr ssl_;
  bool connected_ = false;
  bool handshake_ok_ = false;
};

}  // namespace geysir::testing
