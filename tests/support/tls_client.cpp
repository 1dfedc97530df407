#include "tests/support/tls_client.h"

#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <memory>
#include <stdexcept>

namespace geysir::testing {

std::string CertificatePem(X509* cert) {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), cert);
  BUF_MEM* m;
  BIO_get_mem_ptr(b.get(), &m);
  return std::string(m->data, m->length);
}

std::string PrivateKeyPem(EVP_PKEY* key) {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(b.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  BUF_MEM* m;
  BIO_get_mem_ptr(b.get(), &m);
  return std::string(m->data, m->length);
}

PemPair SelfSignedPem(const std::string& name, long serial, long valid_s) {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) throw std::runtime_error("EVP_EC_gen P-256 failed");
  X509Ptr x(X509_new());
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), valid_s);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x.get()), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), X509_get_subject_name(x.get()));
  X509_set_pubkey(x.get(), key.get());
  const std::string san = "DNS:" + name;
  std::unique_ptr<X509_EXTENSION, X509ExtensionFree> ext(X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str()));
  X509_add_ext(x.get(), ext.get(), -1);
  if (X509_sign(x.get(), key.get(), EVP_sha256()) == 0) throw std::runtime_error("X509_sign failed");
  return PemPair{CertificatePem(x.get()), PrivateKeyPem(key.get())};
}

TlsClient::TlsClient(uint16_t port, const std::string& sni, const std::string& alpn, SSL_SESSION* resume,
                     int max_version)
    : fd_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)), ctx_(SSL_CTX_new(TLS_client_method())) {
  if (max_version != 0) SSL_CTX_set_max_proto_version(ctx_.get(), max_version);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  connected_ = connect(fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  ssl_.reset(SSL_new(ctx_.get()));
  SSL_set_fd(ssl_.get(), fd_.get());
  if (!sni.empty()) SSL_set_tlsext_host_name(ssl_.get(), sni.c_str());
  std::string wire;
  wire.push_back(static_cast<char>(alpn.size()));
  wire += alpn;
  SSL_set_alpn_protos(ssl_.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                      static_cast<unsigned>(wire.size()));
  if (resume) SSL_set_session(ssl_.get(), resume);
  handshake_ok_ = connected_ && SSL_connect(ssl_.get()) == 1;
  ERR_clear_error();
}

TlsClient::~TlsClient() {
  // A clean close_notify: OpenSSL does not resume a session whose connection just vanished.
  if (handshake_ok_) SSL_shutdown(ssl_.get());
}

long TlsClient::Serial() const {
  X509Ptr peer(SSL_get1_peer_certificate(ssl_.get()));
  if (!peer) return -1;
  return ASN1_INTEGER_get(X509_get0_serialNumber(peer.get()));
}

std::string TlsClient::CommonName() const {
  X509Ptr peer(SSL_get1_peer_certificate(ssl_.get()));
  if (!peer) return "";
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(peer.get()), NID_commonName, cn, sizeof cn);
  return cn;
}

std::string TlsClient::Alpn() const {
  const unsigned char* p = nullptr;
  unsigned n = 0;
  SSL_get0_alpn_selected(ssl_.get(), &p, &n);
  return std::string(reinterpret_cast<const char*>(p), n);
}

std::string TlsClient::Exchange(const std::string& request) {
  if (SSL_write(ssl_.get(), request.data(), static_cast<int>(request.size())) <= 0) return "";
  std::string in;
  char buf[16384];
  for (;;) {
    size_t end = in.find("\r\n\r\n");
    if (end != std::string::npos) {
      size_t cl = in.find("Content-Length: ");
      size_t len = cl == std::string::npos || cl > end ? 0 : std::stoul(in.substr(cl + 16));
      if (in.size() >= end + 4 + len) return in.substr(0, end + 4 + len);
    }
    int n = SSL_read(ssl_.get(), buf, sizeof buf);
    if (n <= 0) return "";
    in.append(buf, static_cast<size_t>(n));
  }
}

std::string TlsClient::Get(const std::string& path, const std::string& body) {
  const std::string response = Exchange("POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                        std::to_string(body.size()) + "\r\n\r\n" + body);
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

bool TlsClient::ClosedByPeer() {
  char c;
  int n = SSL_read(ssl_.get(), &c, 1);
  return n <= 0;
}

}  // namespace geysir::testing
