// The ACME client's pieces: RFC 7638 thumbprints (the RFC's own example), ES256 JWS (verified
// with OpenSSL, raw R||S), the TLS-ALPN-01 certificate, and the order state machine against an
// in-process fake CA that checks every JWS, nonce and URL like a real one, rejects a nonce once
// (badNonce), asks for Retry-After pauses, and can fail a validation.
#include <openssl/ecdsa.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "control/acme/certs.h"
#include "control/acme/client.h"
#include "control/acme/jws.h"
#include "net/tls.h"

using geysir::control::acme::AcmeClient;
using geysir::control::acme::AcmeConfig;
using geysir::Base64UrlEncode;
using geysir::control::acme::Challenge;
using geysir::control::acme::ChallengeHooks;
using geysir::control::acme::EcKey;
using geysir::control::acme::HttpReply;
using nlohmann::json;

namespace {

std::string Unb64url(const std::string& in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = val(c);
    REQUIRE(v >= 0);
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

// Verifies an ES256 JWS made by SignJws with OpenSSL: the raw 64-byte R||S is turned back into
// DER and checked against `key`'s public half.
bool VerifyEs256(EVP_PKEY* key, const json& jws) {
  std::string signing_input = jws["protected"].get<std::string>() + "." + jws["payload"].get<std::string>();
  std::string raw = Unb64url(jws["signature"].get<std::string>());
  if (raw.size() != 64) return false;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr),
                 BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr));
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(md, der, static_cast<size_t>(der_len),
                             reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) == 1;
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  return ok;
}

// A small ACME server (RFC 8555) for one account, one order at a time.
class FakeCa final : public geysir::control::acme::AcmeTransport {
 public:
  explicit FakeCa(EVP_PKEY* account_key) : account_key_(account_key) {}

  geysir::Result<HttpReply> Get(const std::string& url) override {
    requests.push_back("GET " + url);
    if (url != kBase + "/dir") return Reply(404, "");
    return Reply(200, json{{"newNonce", kBase + "/nonce"},
                           {"newAccount", kBase + "/acct"},
                           {"newOrder", kBase + "/order"}}
                          .dump());
  }
  geysir::Result<HttpReply> Head(const std::string& url) override {
    requests.push_back("HEAD " + url);
    return Reply(200, "");
  }
  geysir::Result<HttpReply> PostJose(const std::string& url, const std::string& body) override {
    json jws = json::parse(body);
    json header = json::parse(Unb64url(jws["protected"].get<std::string>()));
    std::string payload = Unb64url(jws["payload"].get<std::string>());
    requests.push_back("POST " + url.substr(kBase.size()));
    // What every real CA checks first.
    CHECK(header["alg"] == "ES256");
    CHECK(header["url"] == url);
    CHECK(VerifyEs256(account_key_, jws));
    std::string nonce = header.value("nonce", "");
    if (issued_.erase(nonce) == 0) return Problem(400, "urn:ietf:params:acme:error:badNonce", "unknown nonce");
    if (reject_next_nonce) {
      reject_next_nonce = false;
      ++bad_nonces_sent;
      return Problem(400, "urn:ietf:params:acme:error:badNonce", "JWS has an invalid anti-replay nonce");
    }
    if (url == kBase + "/acct") {
      CHECK(header.contains("jwk"));
      CHECK(json::parse(payload)["termsOfServiceAgreed"] == true);
      return Reply(201, json{{"status", "valid"}}.dump(), {{"location", kBase + "/acct/1"}});
    }
    CHECK(header.value("kid", "") == kBase + "/acct/1");
    if (url == kBase + "/order") {
      domain = json::parse(payload)["identifiers"][0]["value"];
      return Reply(201, Order().dump(), {{"location", kBase + "/order/1"}});
    }
    if (url == kBase + "/authz/1") {
      CHECK(payload.empty());  // POST-as-GET
      json a = {{"status", authz_status},
                {"identifier", {{"type", "dns"}, {"value", domain}}},
                {"challenges",
                 {{{"type", "http-01"}, {"url", kBase + "/chall/http"}, {"token", "tokH"}},
                  {{"type", "tls-alpn-01"}, {"url", kBase + "/chall/alpn"}, {"token", "tokA"}}}}};
      if (authz_status == "invalid") {
        a["challenges"][0]["error"] = {{"type", "urn:ietf:params:acme:error:connection"},
                                       {"detail", "127.0.0.2: Fetching http://x/: Connection refused"}};
      }
      if (authz_status == "processing") authz_status = fail_validation ? "invalid" : "valid";
      return Reply(200, a.dump(), {{"retry-after", "2"}});
    }
    if (url == kBase + "/chall/http" || url == kBase + "/chall/alpn") {
      CHECK(payload == "{}");
      validated_type = url.substr(url.rfind('/') + 1);
      authz_status = "processing";
      return Reply(200, json{{"status", "processing"}}.dump());
    }
    if (url == kBase + "/order/1") {
      if (order_status == "pending" && authz_status == "valid") order_status = "ready";
      json o = Order();
      if (order_status == "processing") order_status = "valid";  // the next poll sees it done
      return Reply(200, o.dump(), {{"retry-after", "1"}});
    }
    if (url == kBase + "/order/1/finalize") {
      CHECK(order_status == "ready");
      std::string der = Unb64url(json::parse(payload)["csr"].get<std::string>());
      const auto* p = reinterpret_cast<const unsigned char*>(der.data());
      X509_REQ* req = d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size()));
      REQUIRE(req != nullptr);
      EVP_PKEY* pub = X509_REQ_get0_pubkey(req);
      CHECK(X509_REQ_verify(req, pub) == 1);
      csr_ok = true;
      // The leaf the CA will hand out certifies the CSR's key; self-signed is enough here.
      X509_REQ_free(req);
      order_status = "processing";
      return Reply(200, Order().dump(), {{"retry-after", "1"}});
    }
    if (url == kBase + "/cert/1") return Reply(200, chain_pem, {{"content-type", "application/pem-certificate-chain"}});
    return Reply(404, "");
  }

  json Order() const {
    json o = {{"status", order_status},
              {"authorizations", {kBase + "/authz/1"}},
              {"finalize", kBase + "/order/1/finalize"},
              {"identifiers", {{{"type", "dns"}, {"value", domain}}}}};
    if (order_status == "valid") o["certificate"] = kBase + "/cert/1";
    return o;
  }

  geysir::Result<HttpReply> Reply(long status, std::string body, std::map<std::string, std::string> headers = {}) {
    HttpReply r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    std::string n = "n" + std::to_string(++nonce_counter_);
    issued_.insert(n);
    r.headers["replay-nonce"] = n;
    return r;
  }
  geysir::Result<HttpReply> Problem(long status, const std::string& type, const std::string& detail) {
    return Reply(status, json{{"type", type}, {"detail", detail}}.dump(), {{"content-type", "application/problem+json"}});
  }

  const std::string kBase = "https://ca.test";
  std::vector<std::string> requests;
  std::string domain;
  std::string authz_status = "pending";
  std::string order_status = "pending";
  std::string validated_type;
  std::string chain_pem;
  bool reject_next_nonce = false;
  bool fail_validation = false;
  bool csr_ok = false;
  int bad_nonces_sent = 0;

 private:
  EVP_PKEY* account_key_;
  std::set<std::string> issued_;
  int nonce_counter_ = 0;
};

}  // namespace

TEST_CASE("RFC 7638 thumbprint of the RFC's own example key", "[acme]") {
  json jwk = json::parse(R"({"kty":"RSA",
    "n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e":"AQAB","alg":"RS256","kid":"2011-04-29"})");
  auto tp = geysir::control::acme::Thumbprint(jwk);
  REQUIRE(tp.ok());
  CHECK(*tp == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
  // Member order and extra members do not matter; a missing one is an error.
  json shuffled = {{"e", "AQAB"}, {"n", jwk["n"]}, {"kty", "RSA"}, {"use", "sig"}};
  CHECK(*geysir::control::acme::Thumbprint(shuffled) == *tp);
  CHECK_FALSE(geysir::control::acme::Thumbprint(json{{"kty", "RSA"}, {"e", "AQAB"}}).ok());
}

TEST_CASE("ES256 JWS: raw R||S signature that OpenSSL verifies; tampering fails", "[acme]") {
  auto key = EcKey::Generate();
  REQUIRE(key.ok());
  json jwk = key->Jwk();
  CHECK(jwk["kty"] == "EC");
  CHECK(jwk["crv"] == "P-256");
  CHECK(Unb64url(jwk["x"]).size() == 32);
  CHECK(Unb64url(jwk["y"]).size() == 32);
  for (int i = 0; i < 20; ++i) {  // R or S with leading zero bytes must still be 32 bytes each
    auto jws = geysir::control::acme::SignJws(*key, {{"nonce", "abc"}, {"url", "https://x/"}, {"jwk", jwk}},
                                              R"({"hello":)" + std::to_string(i) + "}");
    REQUIRE(jws.ok());
    CHECK(Unb64url((*jws)["signature"]).size() == 64);
    CHECK(VerifyEs256(key->get(), *jws));
    json header = json::parse(Unb64url((*jws)["protected"]));
    CHECK(header["alg"] == "ES256");
    json tampered = *jws;
    tampered["payload"] = Base64UrlEncode(R"({"hello":"evil"})");
    CHECK_FALSE(VerifyEs256(key->get(), tampered));
  }
  // The PEM round trip keeps the key (and so the thumbprint).
  auto again = EcKey::FromPem(key->ToPem());
  REQUIRE(again.ok());
  CHECK(again->Jwk() == jwk);
}

TEST_CASE("TLS-ALPN-01 certificate: the domain as SAN and a critical acmeIdentifier with SHA-256(keyAuth)",
          "[acme]") {
  auto pair = geysir::control::acme::MakeAlpnChallenge("a.example.test", "token.thumb");
  REQUIRE(pair.ok());
  auto cert = geysir::net::TlsCertificate::FromPem(pair->cert_pem, pair->key_pem);
  REQUIRE(cert.ok());
  CHECK((*cert)->names() == std::vector<std::string>{"a.example.test"});
  X509* x = (*cert)->leaf();
  ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
  int idx = X509_get_ext_by_OBJ(x, oid, -1);
  ASN1_OBJECT_free(oid);
  REQUIRE(idx >= 0);
  X509_EXTENSION* ext = X509_get_ext(x, idx);
  CHECK(X509_EXTENSION_get_critical(ext) == 1);
  ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(ext);
  std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)), ASN1_STRING_length(data));
  CHECK(value == std::string("\x04\x20", 2) + geysir::control::acme::Sha256("token.thumb"));
}

TEST_CASE("ACME order state machine: account, badNonce retry, challenge, Retry-After polls, finalize, chain",
          "[acme]") {
  auto key = EcKey::Generate();
  REQUIRE(key.ok());
  FakeCa ca(key->get());
  auto leaf_key = EcKey::Generate();
  ca.chain_pem = *geysir::control::acme::MakeSelfSignedPem(*leaf_key, {"www.example.test"}, 90);
  std::vector<int64_t> sleeps;
  AcmeConfig config;
  config.directory_url = ca.kBase + "/dir";
  config.sleep = [&](int64_t ms) { sleeps.push_back(ms); };
  AcmeClient client(ca, config, *key);

  std::vector<Challenge> published, withdrawn;
  ChallengeHooks hooks;
  hooks.publish = [&](const Challenge& c) {
    published.push_back(c);
    return geysir::Status::Ok();
  };
  hooks.withdraw = [&](const Challenge& c) { withdrawn.push_back(c); };

  SECTION("http-01 succeeds") {
    ca.reject_next_nonce = true;  // the first signed request (newAccount) gets badNonce
    auto issued = client.Obtain({"www.example.test"}, "http-01", hooks);
    REQUIRE(issued.ok());
    CHECK(issued->chain_pem == ca.chain_pem);
    CHECK(issued->key_pem.find("PRIVATE KEY") != std::string::npos);
    CHECK(client.bad_nonce_retries() == 1);
    CHECK(ca.bad_nonces_sent == 1);
    REQUIRE(published.size() == 1);
    CHECK(published[0].type == "http-01");
    CHECK(published[0].domain == "www.example.test");
    CHECK(published[0].token == "tokH");
    CHECK(published[0].key_authorization == "tokH." + *geysir::control::acme::Thumbprint(key->Jwk()));
    CHECK(withdrawn.size() == 1);
    CHECK(ca.validated_type == "http");
    CHECK(ca.csr_ok);
    // Retry-After: 2 s on the authorization, 1 s on the order; never more than the cap.
    CHECK(std::find(sleeps.begin(), sleeps.end(), 2000) != sleeps.end());
    CHECK(std::find(sleeps.begin(), sleeps.end(), 1000) != sleeps.end());
    // The account was created once, with a JWK; the order came after it.
    CHECK(std::count(ca.requests.begin(), ca.requests.end(), "POST /acct") == 2);  // badNonce + retry
    CHECK(client.account_url() == ca.kBase + "/acct/1");
  }

  SECTION("tls-alpn-01 picks the other challenge") {
    auto issued = client.Obtain({"www.example.test"}, "tls-alpn-01", hooks);
    REQUIRE(issued.ok());
    REQUIRE(published.size() == 1);
    CHECK(published[0].token == "tokA");
    CHECK(ca.validated_type == "alpn");
  }

  SECTION("a failed validation carries the CA's problem and withdraws the answer") {
    ca.fail_validation = true;
    auto issued = client.Obtain({"www.example.test"}, "http-01", hooks);
    REQUIRE_FALSE(issued.ok());
    CHECK_THAT(issued.status().message(), Catch::Contains("urn:ietf:params:acme:error:connection") &&
                                              Catch::Contains("Connection refused"));
    CHECK(withdrawn.size() == 1);
    CHECK_FALSE(ca.csr_ok);
  }

  SECTION("a publish failure aborts before the CA is asked to validate") {
    hooks.publish = [](const Challenge&) { return geysir::Status::Unavailable("no gateway"); };
    auto issued = client.Obtain({"www.example.test"}, "http-01", hooks);
    REQUIRE_FALSE(issued.ok());
    CHECK_THAT(issued.status().message(), Catch::Contains("no gateway"));
    CHECK(ca.validated_type.empty());
  }
}
