// AcmeClient: the ACME protocol (RFC 8555) from the subscriber's side, written as straight-line
// blocking code for a worker thread (control runs it off the loop; see control/services/domains.cpp):
//
//   directory -> account (newAccount with the ES256 key; "kid" = the account URL)
//   -> newOrder -> for each authorization: pick the challenge type, publish its answer
//      (ChallengeHooks::publish returns once the gateway serves it), tell the CA to validate,
//      poll the authorization -> poll the order until "ready" -> finalize with a CSR for a
//      fresh P-256 key -> poll until "valid" -> download the PEM chain.
//
// Every POST is a JWS signed with the account key (POST-as-GET for reads) carrying a fresh
// nonce from the pool that every response refills (Replay-Nonce); a badNonce error is retried
// with the nonce that came with it (up to 5 times). Polls honour Retry-After (capped) and are
// bounded in count. Errors carry the CA's own problem document: "urn:ietf:params:acme:error:
// rateLimited: too many certificates ..." reaches the operator verbatim.
//
// HTTP goes through AcmeTransport so the state machine can be tested against an in-process
// fake CA; CurlTransport is the real one (libcurl, with a configurable CA bundle).
//
// Thread safety: one AcmeClient per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "control/acme/ari.h"
#include "control/acme/jws.h"
#include "base/status.h"

namespace geysir::control::acme {

struct HttpReply {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased; last value wins
  std::string body;
  const std::string* Header(const std::string& lower) const {
    auto it = headers.find(lower);
    return it == headers.end() ? nullptr : &it->second;
  }
};

class AcmeTransport {
 public:
  virtual ~AcmeTransport() = default;
  virtual Result<HttpReply> Get(const std::string& url) = 0;
  virtual Result<HttpReply> Head(const std::string& url) = 0;
  // Content-Type: application/jose+json.
  virtual Result<HttpReply> PostJose(const std::string& url, const std::string& body) = 0;
};

// libcurl. `ca_file` ("" = the system bundle) is what the directory's TLS certificate is
// verified against (Pebble's own listener in tests, nothing special for Let's Encrypt).
std::unique_ptr<AcmeTransport> MakeCurlTransport(std::string ca_file, long timeout_s = 30);

struct Challenge {
  std::string type;               // "http-01" | "tls-alpn-01"
  std::string domain;
  std::string token;
  std::string key_authorization;  // token "." thumbprint
  std::string url;
};

struct ChallengeHooks {
  // Makes the gateway answer `c`; returns once it does (or an error, which aborts the order).
  std::function<Status(const Challenge& c)> publish;
  // The order is over (either way): stop answering.
  std::function<void(const Challenge& c)> withdraw;
};

struct AcmeConfig {
  std::string directory_url;
  std::string contact_email;       // optional: "mailto:" is added
  int max_polls = 40;              // per poll loop
  int64_t default_poll_ms = 1000;  // when the CA sends no Retry-After
  int64_t max_retry_after_ms = 10'000;
  std::function<void(int64_t ms)> sleep;  // default: std::this_thread::sleep_for
};

struct Issued {
  std::string chain_pem;  // leaf first
  std::string key_pem;    // the leaf's new key (PKCS#8)
};

struct RenewalInfo {
  RenewalWindow window;
  int64_t recheck_s = 0;  // ask again after this long (Retry-After, clamped)
};

class AcmeClient {
 public:
  AcmeClient(AcmeTransport& transport, AcmeConfig config, EcKey account_key);

  // Finds (or creates) the account for the key; returns its URL (the JWS "kid").
  Result<std::string> EnsureAccount();
  // Runs one order for `names` with challenges of `challenge_type`.
  Result<Issued> Obtain(const std::vector<std::string>& names, const std::string& challenge_type,
                        const ChallengeHooks& hooks);

  // The CA's ARI window for the certificate (ari.h). kNotFound when its directory offers no
  // renewalInfo (then renew at a third of the lifetime left).
  Result<RenewalInfo> GetRenewalInfo(const std::string& chain_pem);

  const std::string& account_url() const { return kid_; }
  std::string KeyAuthorization(const std::string& token) const;
  // Test visibility: how many badNonce errors were retried.
  int bad_nonce_retries() const { return bad_nonce_retries_; }

 private:
  Status LoadDirectory();
  Result<std::string> Nonce();
  void KeepNonce(const HttpReply& r);
  // A signed POST (payload "" = POST-as-GET); with `use_jwk` the header carries the key, not kid.
  Result<HttpReply> Post(const std::string& url, const std::string& payload, bool use_jwk = false);
  Result<nlohmann::json> PostJson(const std::string& url, const std::string& payload, std::string* location = nullptr,
                                  const HttpReply** reply_out = nullptr);
  // Polls `url` (POST-as-GET) until its "status" is not one of `waiting`; returns the object.
  Result<nlohmann::json> PollWhile(const std::string& url, const std::vector<std::string>& waiting);
  void Sleep(int64_t ms);
  int64_t RetryAfterMs(const HttpReply& r) const;

  AcmeTransport& http_;
  AcmeConfig config_;
  EcKey key_;
  std::string thumbprint_;
  nlohmann::json directory_;
  std::vector<std::string> nonces_;
  std::string kid_;
  int64_t last_retry_after_ms_ = 0;
  int bad_nonce_retries_ = 0;
};

// "urn:ietf:params:acme:error:rateLimited: detail" from an ACME problem document (RFC 7807), with
// the subproblems' details appended; `fallback` when the body is not one.
std::string ProblemText(const std::string& body, const std::string& fallback);

}  // namespace geysir::control::acme
