#include "control/acme/certs.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include "base/openssl_ptr.h"
#include "base/random.h"

namespace geysir::control::acme {
namespace {



std::string SanValue(const std::vector<std::string>& names) {
  std::string san;
  for (const auto& n : names) {
    if (!san.empty()) san += ",";
    san += "DNS:" + n;
  }
  return san;
}

}  // namespace

Result<std::string> MakeCsr(const EcKey& key, const std::vector<std::string>& names) {
  if (names.empty()) return Status::Invalid("a CSR needs at least one name");
  std::unique_ptr<X509_REQ, X509ReqFree> req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  X509_NAME* subject = X509_REQ_get_subject_name(req.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(names[0].c_str()), -1,
                             -1, 0);
  std::unique_ptr<STACK_OF(X509_EXTENSION), X509ExtensionStackFree> exts(sk_X509_EXTENSION_new_null());
  std::string san = SanValue(names);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str());
  if (ext == nullptr) return Status::Invalid("bad names for a CSR: " + net::TakeOpenSslErrors());
  sk_X509_EXTENSION_push(exts.get(), ext);
  X509_REQ_add_extensions(req.get(), exts.get());
  X509_REQ_set_pubkey(req.get(), key.get());
  if (X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0)
    return Status::Internal("signing the CSR: " + net::TakeOpenSslErrors());
  int len = i2d_X509_REQ(req.get(), nullptr);
  std::string der(static_cast<size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509_REQ(req.get(), &p);
  return der;
}

Result<std::string> MakeSelfSignedPem(const EcKey& key, const std::vector<std::string>& names, int days,
                                      std::string_view acme_key_authorization) {
  if (names.empty()) return Status::Invalid("a certificate needs at least one name");
  X509Ptr x(X509_new());
  X509_set_version(x.get(), 2);
  unsigned char serial[16];
  RandomBytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), static_cast<long>(days) * 86400);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(names[0].c_str()), -1, -1,
                             0);
  X509_set_issuer_name(x.get(), name);
  X509_set_pubkey(x.get(), key.get());
  std::string san = SanValue(names);
  std::unique_ptr<X509_EXTENSION, X509ExtensionFree> san_ext(
      X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str()));
  if (!san_ext) return Status::Invalid("bad certificate names: " + net::TakeOpenSslErrors());
  X509_add_ext(x.get(), san_ext.get(), -1);
  if (!acme_key_authorization.empty()) {
    // extnValue = DER(OCTET STRING (SHA-256(key authorization))), RFC 8737 section 3.
    std::string digest = Sha256(acme_key_authorization);
    std::string inner = std::string("\x04\x20", 2) + digest;
    std::unique_ptr<ASN1_OBJECT, Asn1ObjectFree> oid(OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1));
    std::unique_ptr<ASN1_OCTET_STRING, Asn1OctetStringFree> value(ASN1_OCTET_STRING_new());
    ASN1_OCTET_STRING_set(value.get(), reinterpret_cast<const unsigned char*>(inner.data()),
                          static_cast<int>(inner.size()));
    std::unique_ptr<X509_EXTENSION, X509ExtensionFree> ext(X509_EXTENSION_create_by_OBJ(nullptr, oid.get(), 1, value.get()));
    if (!ext) return Status::Internal("acmeIdentifier extension: " + net::TakeOpenSslErrors());
    X509_add_ext(x.get(), ext.get(), -1);
  }
  if (X509_sign(x.get(), key.get(), EVP_sha256()) <= 0)
    return Status::Internal("self-signing: " + net::TakeOpenSslErrors());
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), x.get());
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio.get(), &mem);
  return std::string(mem->data, mem->length);
}

Result<proto::TlsPemPair> MakeAlpnChallenge(std::string_view domain, std::string_view key_authorization) {
  auto key = EcKey::Generate();
  if (!key.ok()) return key.status();
  auto cert = MakeSelfSignedPem(*key, {std::string(domain)}, 7, key_authorization);
  if (!cert.ok()) return cert.status();
  return proto::TlsPemPair{*cert, key->ToPem()};
}

}  // namespace geysir::control::acme
