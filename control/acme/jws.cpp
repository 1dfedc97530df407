#include "control/acme/jws.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include "base/base64.h"
#include "base/openssl_ptr.h"

namespace geysir::control::acme {
namespace {



std::shared_ptr<EVP_PKEY> Own(EVP_PKEY* k) { return std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free); }

std::string BnBytes(const BIGNUM* bn, size_t len) {
  std::string out(len, '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(len));
  return out;
}

}  // namespace


std::string Sha256(std::string_view bytes) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), md);
  return std::string(reinterpret_cast<char*>(md), sizeof md);
}

Result<EcKey> EcKey::Generate() {
  EVP_PKEY* k = EVP_EC_gen("P-256");
  if (k == nullptr) return Status::Internal("EC key generation failed: " + net::TakeOpenSslErrors());
  EcKey key;
  key.key_ = Own(k);
  return key;
}

Result<EcKey> EcKey::FromPem(std::string_view pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (k == nullptr) {
    net::TakeOpenSslErrors();
    return Status::Invalid("not a PEM private key");
  }
  if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC || EVP_PKEY_get_bits(k) != 256) {
    EVP_PKEY_free(k);
    return Status::Invalid("the account key is not an ECDSA P-256 key");
  }
  EcKey key;
  key.key_ = Own(k);
  return key;
}

std::string EcKey::ToPem() const {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr);
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio.get(), &mem);
  return std::string(mem->data, mem->length);
}

nlohmann::json EcKey::Jwk() const {
  BIGNUM* x = nullptr;
  BIGNUM* y = nullptr;
  EVP_PKEY_get_bn_param(key_.get(), OSSL_PKEY_PARAM_EC_PUB_X, &x);
  EVP_PKEY_get_bn_param(key_.get(), OSSL_PKEY_PARAM_EC_PUB_Y, &y);
  std::unique_ptr<BIGNUM, BignumFree> xo(x), yo(y);
  return nlohmann::json{{"crv", "P-256"},
                        {"kty", "EC"},
                        {"x", Base64UrlEncode(BnBytes(x, 32))},
                        {"y", Base64UrlEncode(BnBytes(y, 32))}};
}

Result<std::string> DerToRawEcdsa(std::string_view der, size_t half) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) return Status::Invalid("not a DER ECDSA signature");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  if (BN_num_bytes(r) > static_cast<int>(half) || BN_num_bytes(s) > static_cast<int>(half))
    return Status::Invalid("ECDSA signature component too long");
  return BnBytes(r, half) + BnBytes(s, half);
}

Result<std::string> EcKey::SignEs256(std::string_view data) const {
  std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree> md(EVP_MD_CTX_new());
  if (EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1)
    return Status::Internal("EVP_DigestSignInit: " + net::TakeOpenSslErrors());
  size_t len = 0;
  if (EVP_DigestSign(md.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    return Status::Internal("EVP_DigestSign: " + net::TakeOpenSslErrors());
  std::string der(len, '\0');
  if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(der.data()), &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    return Status::Internal("EVP_DigestSign: " + net::TakeOpenSslErrors());
  der.resize(len);
  return DerToRawEcdsa(der, 32);
}

Result<std::string> Thumbprint(const nlohmann::json& jwk) {
  if (!jwk.is_object() || !jwk.contains("kty") || !jwk["kty"].is_string()) return Status::Invalid("JWK without kty");
  const std::string kty = jwk["kty"].get<std::string>();
  std::vector<const char*> members;
  if (kty == "EC") {
    members = {"crv", "kty", "x", "y"};
  } else if (kty == "RSA") {
    members = {"e", "kty", "n"};
  } else if (kty == "oct") {
    members = {"k", "kty"};
  } else {
    return Status::Invalid("unsupported JWK kty " + kty);
  }
  // Members are listed in lexicographic order already; values are strings, which
  // nlohmann::json::dump escapes as RFC 7638 requires (no whitespace, minimal escaping).
  std::string canonical = "{";
  for (size_t i = 0; i < members.size(); ++i) {
    if (!jwk.contains(members[i]) || !jwk[members[i]].is_string())
      return Status::Invalid(std::string("JWK lacks member ") + members[i]);
    if (i > 0) canonical += ",";
    canonical += nlohmann::json(members[i]).dump() + ":" + jwk[members[i]].dump();
  }
  canonical += "}";
  return Base64UrlEncode(Sha256(canonical));
}

Result<nlohmann::json> SignJws(const EcKey& key, nlohmann::json header, const std::string& payload) {
  header["alg"] = "ES256";
  std::string protected_b64 = Base64UrlEncode(header.dump());
  std::string payload_b64 = Base64UrlEncode(payload);
  auto sig = key.SignEs256(protected_b64 + "." + payload_b64);
  if (!sig.ok()) return sig.status();
  return nlohmann::json{{"protected", protected_b64}, {"payload", payload_b64}, {"signature", Base64UrlEncode(*sig)}};
}

}  // namespace geysir::control::acme
