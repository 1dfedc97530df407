// TLS on memory BIOs. See tls.h for the behaviour; this file explains the OpenSSL details.
//
// Certificate choice happens in the ClientHello callback rather than the servername callback:
// it runs first and sees every extension, so the SNI name and the ALPN list are both known
// before a certificate is picked (TLS-ALPN-01 needs both). The chosen chain is installed on
// the SSL object itself with SSL_use_cert_and_key, which takes references: a renewal that
// replaces the context's map leaves connections mid-handshake and established ones intact.
#include "net/tls.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <ctime>

namespace geysir::net {
namespace {

constexpr char kAlpnHttp11[] = "http/1.1";
constexpr char kAlpnAcme[] = "acme-tls/1";

// Mozilla's "intermediate" TLS 1.2 suites (ECDHE + AEAD only); TLS 1.3 uses OpenSSL's defaults.
constexpr char kCiphers12[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

int64_t AsnTimeToUnix(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}


// The SSL ex_data slot holding each SSL's TlsSession*: allocated once per process.
int SessionIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// Reads the host name out of a raw server_name extension (RFC 6066 section 3).
std::string ParseSni(const unsigned char* p, size_t len) {
  if (len < 2) return {};
  size_t list = (size_t{p[0]} << 8) | p[1];
  if (list + 2 != len) return {};
  size_t i = 2;
  while (i + 3 <= len) {
    unsigned type = p[i];
    size_t n = (size_t{p[i + 1]} << 8) | p[i + 2];
    i += 3;
    if (i + n > len) return {};
    if (type == TLSEXT_NAMETYPE_host_name) return Lower(std::string_view(reinterpret_cast<const char*>(p + i), n));
    i += n;
  }
  return {};
}

// Whether a raw ALPN extension (RFC 7301 section 3.1) lists `proto`.
bool AlpnOffers(const unsigned char* p, size_t len, std::string_view proto) {
  if (len < 2) return false;
  size_t list = (size_t{p[0]} << 8) | p[1];
  if (list + 2 != len) return false;
  for (size_t i = 2; i < len;) {
    size_t n = p[i++];
    if (i + n > len) return false;
    if (std::string_view(reinterpret_cast<const char*>(p + i), n) == proto) return true;
    i += n;
  }
  return false;
}

}  // namespace

std::string TakeOpenSslErrors() {
  std::string out;
  unsigned long e;
  char buf[256];
  while ((e = ERR_get_error()) != 0) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown TLS error" : out;
}

// --- TlsCertificate ----------------------------------------------------------------------------

Result<TlsCertificatePtr> TlsCertificate::FromPem(std::string_view chain_pem, std::string_view key_pem) {
  ERR_clear_error();
  BioPtr cb(BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
  BioPtr kb(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  if (!cb || !kb) return Status::Internal("BIO_new_mem_buf failed");
  auto cert = std::shared_ptr<TlsCertificate>(new TlsCertificate());
  cert->leaf_.reset(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
  if (!cert->leaf_) {
    ERR_clear_error();
    return Status::Invalid("the certificate is not a PEM X.509 certificate");
  }
  cert->chain_.reset(sk_X509_new_null());
  while (X509* extra = PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr)) sk_X509_push(cert->chain_.get(), extra);
  ERR_clear_error();  // the loop ends on "no start line"
  cert->key_.reset(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!cert->key_) {
    ERR_clear_error();
    return Status::Invalid("the private key is not a PEM private key (or it is encrypted)");
  }
  if (X509_check_private_key(cert->leaf_.get(), cert->key_.get()) != 1) {
    ERR_clear_error();
    return Status::Invalid("the private key does not belong to the certificate");
  }
  // Names.
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert->leaf_.get(), NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type != GEN_DNS) continue;
      const ASN1_IA5STRING* s = gn->d.dNSName;
      cert->names_.push_back(Lower(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                                    static_cast<size_t>(ASN1_STRING_length(s)))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (cert->names_.empty()) {
    char cn[256] = {0};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert->leaf_.get()), NID_commonName, cn, sizeof cn) > 0) {
      cert->names_.push_back(Lower(cn));
    }
  }
  // Serial and validity.
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert->leaf_.get()), nullptr);
  if (bn != nullptr) {
    char* hex = BN_bn2hex(bn);
    cert->serial_hex_ = Lower(hex != nullptr ? hex : "");
    OPENSSL_free(hex);
    BN_free(bn);
  }
  cert->not_before_s_ = AsnTimeToUnix(X509_get0_notBefore(cert->leaf_.get()));
  cert->not_after_s_ = AsnTimeToUnix(X509_get0_notAfter(cert->leaf_.get()));
  ERR_clear_error();
  return TlsCertificatePtr(std::move(cert));
}

bool TlsCertificate::Covers(std::string_view host) const {
  std::string h = Lower(host);
  for (const std::string& n : names_) {
    if (n == h) return true;
    if (n.size() > 2 && n[0] == '*' && n[1] == '.') {
      size_t dot = h.find('.');
      if (dot != std::string::npos && dot > 0 && std::string_view(h).substr(dot + 1) == std::string_view(n).substr(2))
        return true;
    }
  }
  return false;
}

// --- callbacks ---------------------------------------------------------------------------------

struct TlsCallbacks {
  static int OnClientHello(SSL* ssl, int* alert, void*) {
    auto* session = static_cast<TlsSession*>(SSL_get_ex_data(ssl, SessionIndex()));
    if (session == nullptr) return SSL_CLIENT_HELLO_SUCCESS;
    const unsigned char* p = nullptr;
    size_t len = 0;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) == 1) {
      session->server_name_ = ParseSni(p, len);
    }
    bool wants_acme = false;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p, &len) == 1) {
      wants_acme = AlpnOffers(p, len, kAlpnAcme);
    }
    TlsCertificatePtr cert;
    if (wants_acme) {
      // RFC 8737: a validation handshake gets the challenge certificate or fails; it is never
      // answered with the domain's ordinary certificate.
      cert = session->context_->SelectAcme(session->server_name_);
      session->acme_alpn_ = cert != nullptr;
    } else {
      cert = session->context_->Select(session->server_name_);
    }
    if (!cert) {
      *alert = SSL_AD_UNRECOGNIZED_NAME;
      return SSL_CLIENT_HELLO_ERROR;
    }
    if (SSL_use_cert_and_key(ssl, cert->leaf(), cert->key(), cert->chain(), 1) != 1) {
      *alert = SSL_AD_INTERNAL_ERROR;
      return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
  }

  static int OnAlpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                    unsigned int inlen, void*) {
    auto* session = static_cast<TlsSession*>(SSL_get_ex_data(ssl, SessionIndex()));
    const char* want = session != nullptr && session->acme_alpn_ ? kAlpnAcme : kAlpnHttp11;
    const size_t want_len = std::strlen(want);
    for (unsigned int i = 0; i < inlen;) {
      unsigned n = in[i++];
      if (i + n > inlen) break;
      if (n == want_len && std::memcmp(in + i, want, n) == 0) {
        *out = in + i;
        *outlen = static_cast<unsigned char>(n);
        return SSL_TLSEXT_ERR_OK;
      }
      i += n;
    }
    // A client offering only protocols we do not speak (h2 alone) still gets HTTP/1.1 without ALPN.
    return SSL_TLSEXT_ERR_NOACK;
  }
};

// --- TlsContext --------------------------------------------------------------------------------

Result<std::unique_ptr<TlsContext>> TlsContext::Create() {
  SessionIndex();
  std::unique_ptr<TlsContext> c(new TlsContext());
  c->ctx_.reset(SSL_CTX_new(TLS_server_method()));
  if (!c->ctx_) return Status::Internal("SSL_CTX_new: " + TakeOpenSslErrors());
  SSL_CTX* ctx = c->ctx_.get();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_set_cipher_list(ctx, kCiphers12) != 1) return Status::Internal("cipher list: " + TakeOpenSslErrors());
  SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384");
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Session resumption: stateless tickets (OpenSSL's default, keys generated per process) for
  // TLS 1.2 and 1.3; the internal cache as well for TLS 1.2 clients that only send session ids.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(ctx, 20'000);
  static const unsigned char kSid[] = "geysir";
  SSL_CTX_set_session_id_context(ctx, kSid, sizeof kSid - 1);
  SSL_CTX_set_num_tickets(ctx, 2);
  // Idle keep-alive connections give their 34 KB of record buffers back.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_client_hello_cb(ctx, &TlsCallbacks::OnClientHello, nullptr);
  SSL_CTX_set_alpn_select_cb(ctx, &TlsCallbacks::OnAlpn, nullptr);
  return c;
}

TlsContext::~TlsContext() = default;

void TlsContext::SetCertificates(const std::vector<TlsCertificatePtr>& certs, TlsCertificatePtr fallback) {
  std::map<std::string, TlsCertificatePtr, std::less<>> by_name;
  for (const auto& cert : certs) {
    if (!cert) continue;
    for (const std::string& n : cert->names()) {
      auto [it, inserted] = by_name.emplace(n, cert);
      // Two certificates for one name: serve the one that lasts longer (a renewal overlapping
      // the certificate it replaces).
      if (!inserted && cert->not_after_s() > it->second->not_after_s()) it->second = cert;
    }
  }
  by_name_ = std::move(by_name);
  fallback_ = std::move(fallback);
}

void TlsContext::SetAcmeCertificates(std::map<std::string, TlsCertificatePtr> by_name) {
  acme_.clear();
  for (auto& [name, cert] : by_name) acme_.emplace(Lower(name), std::move(cert));
}

TlsCertificatePtr TlsContext::Select(std::string_view host) const {
  if (!host.empty()) {
    if (auto it = by_name_.find(host); it != by_name_.end()) return it->second;
    size_t dot = host.find('.');
    if (dot != std::string_view::npos && dot > 0) {
      std::string wildcard = "*" + std::string(host.substr(dot));
      if (auto it = by_name_.find(wildcard); it != by_name_.end()) return it->second;
    }
  }
  return fallback_;
}

TlsCertificatePtr TlsContext::SelectAcme(std::string_view host) const {
  if (auto it = acme_.find(host); it != acme_.end()) return it->second;
  return nullptr;
}

// --- TlsSession --------------------------------------------------------------------------------

TlsSession::TlsSession(const TlsContext& context) : context_(&context) {
  ssl_.reset(SSL_new(context.ssl_ctx()));
  if (!ssl_) {
    failed_ = true;
    error_ = "SSL_new: " + TakeOpenSslErrors();
    return;
  }
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  // An empty read BIO means "wait for more", not end of file.
  BIO_set_mem_eof_return(rbio_, -1);
  BIO_set_mem_eof_return(wbio_, -1);
  SSL_set_bio(ssl_.get(), rbio_, wbio_);
  SSL_set_ex_data(ssl_.get(), SessionIndex(), this);
  SSL_set_accept_state(ssl_.get());
}

TlsSession::~TlsSession() {
  if (ssl_) SSL_set_ex_data(ssl_.get(), SessionIndex(), nullptr);
}

void TlsSession::Feed(const char* data, size_t len) {
  if (failed_ || len == 0) return;
  BIO_write(rbio_, data, static_cast<int>(len));
}

TlsSession::ReadResult TlsSession::Read(char* out, size_t cap, size_t* n) {
  *n = 0;
  if (failed_) return ReadResult::kError;
  ERR_clear_error();
  int r = SSL_read(ssl_.get(), out, static_cast<int>(std::min<size_t>(cap, 1 << 30)));
  if (r > 0) {
    *n = static_cast<size_t>(r);
    return ReadResult::kData;
  }
  int err = SSL_get_error(ssl_.get(), r);
  switch (err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:  // memory BIOs never refuse writes; treated as "more later"
      return ReadResult::kWant;
    case SSL_ERROR_ZERO_RETURN:
      return ReadResult::kClosed;
    default:
      failed_ = true;
      error_ = err == SSL_ERROR_SYSCALL ? "connection ended during the TLS exchange" : TakeOpenSslErrors();
      return ReadResult::kError;
  }
}

bool TlsSession::Write(const char* data, size_t len) {
  if (failed_) return false;
  while (len > 0) {
    ERR_clear_error();
    int chunk = static_cast<int>(std::min<size_t>(len, 1 << 30));
    int r = SSL_write(ssl_.get(), data, chunk);
    if (r <= 0) {
      failed_ = true;
      error_ = TakeOpenSslErrors();
      return false;
    }
    data += r;
    len -= static_cast<size_t>(r);
  }
  return true;
}

void TlsSession::Shutdown() {
  if (failed_ || !SSL_is_init_finished(ssl_.get())) return;
  ERR_clear_error();
  SSL_shutdown(ssl_.get());
  ERR_clear_error();
}

bool TlsSession::has_output() const { return wbio_ != nullptr && BIO_ctrl_pending(wbio_) > 0; }

void TlsSession::TakeOutput(std::string& out) {
  if (wbio_ == nullptr) return;
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(wbio_, &mem);
  if (mem == nullptr || mem->length == 0) return;
  out.append(mem->data, mem->length);
  (void)BIO_reset(wbio_);
}

bool TlsSession::handshake_done() const { return ssl_ && SSL_is_init_finished(ssl_.get()); }
bool TlsSession::resumed() const { return ssl_ && SSL_session_reused(ssl_.get()) == 1; }

}  // namespace geysir::net
