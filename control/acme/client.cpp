#include "control/acme/client.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>

#include "control/acme/certs.h"

namespace geysir::control::acme {
namespace {

using nlohmann::json;

constexpr int kMaxBadNonceRetries = 5;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return s;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

// --- libcurl transport -------------------------------------------------------------------------

struct CurlFree {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistFree {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

class CurlTransport final : public AcmeTransport {
 public:
  CurlTransport(std::string ca_file, long timeout_s) : ca_file_(std::move(ca_file)), timeout_s_(timeout_s) {
    curl_.reset(curl_easy_init());
  }

  Result<HttpReply> Get(const std::string& url) override { return Do("GET", url, nullptr); }
  Result<HttpReply> Head(const std::string& url) override { return Do("HEAD", url, nullptr); }
  Result<HttpReply> PostJose(const std::string& url, const std::string& body) override {
    return Do("POST", url, &body);
  }

 private:
  static size_t OnBody(char* p, size_t size, size_t n, void* ud) {
    static_cast<HttpReply*>(ud)->body.append(p, size * n);
    return size * n;
  }
  static size_t OnHeader(char* p, size_t size, size_t n, void* ud) {
    std::string line(p, size * n);
    auto colon = line.find(':');
    if (colon != std::string::npos) {
      static_cast<HttpReply*>(ud)->headers[Lower(line.substr(0, colon))] = Trim(line.substr(colon + 1));
    }
    return size * n;
  }

  Result<HttpReply> Do(const char* method, const std::string& url, const std::string* body) {
    if (!curl_) return Status::Internal("curl_easy_init failed");
    CURL* c = curl_.get();
    curl_easy_reset(c);
    HttpReply reply;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s_);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "Geysir-ACME/0.1");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
    if (!ca_file_.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, ca_file_.c_str());
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &CurlTransport::OnBody);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &CurlTransport::OnHeader);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &reply);
    std::unique_ptr<curl_slist, SlistFree> headers;
    if (std::string(method) == "HEAD") {
      curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (body != nullptr) {
      headers.reset(curl_slist_append(nullptr, "Content-Type: application/jose+json"));
      curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
      return Status::Unavailable(std::string("cannot reach the ACME server at ") + url + ": " + curl_easy_strerror(rc));
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
    return reply;
  }

  std::string ca_file_;
  long timeout_s_;
  std::unique_ptr<CURL, CurlFree> curl_;
};

}  // namespace

std::unique_ptr<AcmeTransport> MakeCurlTransport(std::string ca_file, long timeout_s) {
  return std::make_unique<CurlTransport>(std::move(ca_file), timeout_s);
}

std::string ProblemText(const std::string& body, const std::string& fallback) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("type")) return fallback;
  std::string text = j.value("type", "") + ": " + j.value("detail", "");
  if (j.contains("subproblems") && j["subproblems"].is_array()) {
    for (const auto& sp : j["subproblems"]) {
      if (sp.is_object()) text += "; " + sp.value("detail", sp.value("type", ""));
    }
  }
  return text;
}

// --- AcmeClient --------------------------------------------------------------------------------

AcmeClient::AcmeClient(AcmeTransport& transport, AcmeConfig config, EcKey account_key)
    : http_(transport), config_(std::move(config)), key_(std::move(account_key)) {
  auto tp = Thumbprint(key_.Jwk());
  if (tp.ok()) thumbprint_ = *tp;
}

std::string AcmeClient::KeyAuthorization(const std::string& token) const { return token + "." + thumbprint_; }

void AcmeClient::Sleep(int64_t ms) {
  if (ms <= 0) return;
  if (config_.sleep) {
    config_.sleep(ms);
  } else {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }
}

int64_t AcmeClient::RetryAfterMs(const HttpReply& r) const {
  const std::string* ra = r.Header("retry-after");
  if (ra == nullptr || ra->empty() || ra->find_first_not_of("0123456789") != std::string::npos) {
    return config_.default_poll_ms;  // absent, or an HTTP date: poll at our own pace
  }
  int64_t ms = std::stoll(ra->substr(0, 9)) * 1000;
  return std::clamp<int64_t>(ms, 0, config_.max_retry_after_ms);
}

Status AcmeClient::LoadDirectory() {
  if (directory_.is_object()) return Status::Ok();
  auto r = http_.Get(config_.directory_url);
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return Status::Unavailable("the ACME directory " + config_.directory_url + " answered HTTP " +
                               std::to_string(r->status));
  }
  json d = json::parse(r->body, nullptr, false);
  for (const char* k : {"newNonce", "newAccount", "newOrder"}) {
    if (!d.is_object() || !d.contains(k) || !d[k].is_string())
      return Status::Invalid("the ACME directory at " + config_.directory_url + " has no " + k);
  }
  directory_ = std::move(d);
  return Status::Ok();
}

Result<RenewalInfo> AcmeClient::GetRenewalInfo(const std::string& chain_pem) {
  GEYSIR_RETURN_IF_ERROR(LoadDirectory());
  auto url = directory_.find("renewalInfo");
  if (url == directory_.end() || !url->is_string() || url->get<std::string>().empty())
    return Status::NotFound("the ACME directory at " + config_.directory_url + " offers no renewalInfo (ARI)");
  auto id = AriCertIdFromPem(chain_pem);
  if (!id.ok()) return id.status();
  std::string base = url->get<std::string>();
  if (base.back() != '/') base.push_back('/');
  auto r = http_.Get(base + *id);
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return Status::Unavailable("renewalInfo for " + *id + " answered HTTP " + std::to_string(r->status) + ": " +
                               ProblemText(r->body, "no problem document"));
  }
  auto window = ParseRenewalInfo(r->body);
  if (!window.ok()) return window.status();
  const std::string* ra = r->Header("retry-after");
  return RenewalInfo{std::move(*window), AriRecheckSeconds(ra ? Trim(*ra) : "")};
}

void AcmeClient::KeepNonce(const HttpReply& r) {
  if (const std::string* n = r.Header("replay-nonce"); n != nullptr && !n->empty()) {
    nonces_.push_back(*n);
    if (nonces_.size() > 8) nonces_.erase(nonces_.begin());
  }
}

Result<std::string> AcmeClient::Nonce() {
  if (!nonces_.empty()) {
    std::string n = std::move(nonces_.back());
    nonces_.pop_back();
    return n;
  }
  auto r = http_.Head(directory_["newNonce"].get<std::string>());
  if (!r.ok()) return r.status();
  const std::string* n = r->Header("replay-nonce");
  if (n == nullptr || n->empty()) return Status::Unavailable("the ACME server gave no Replay-Nonce");
  return *n;
}

Result<HttpReply> AcmeClient::Post(const std::string& url, const std::string& payload, bool use_jwk) {
  for (int attempt = 0;; ++attempt) {
    auto nonce = Nonce();
    if (!nonce.ok()) return nonce.status();
    json header = {{"nonce", *nonce}, {"url", url}};
    if (use_jwk) {
      header["jwk"] = key_.Jwk();
    } else {
      header["kid"] = kid_;
    }
    auto jws = SignJws(key_, header, payload);
    if (!jws.ok()) return jws.status();
    auto r = http_.PostJose(url, jws->dump());
    if (!r.ok()) return r.status();
    KeepNonce(*r);
    if (r->status == 400 && attempt < kMaxBadNonceRetries) {
      json p = json::parse(r->body, nullptr, false);
      if (p.is_object() && p.value("type", "") == "urn:ietf:params:acme:error:badNonce") {
        ++bad_nonce_retries_;
        continue;  // RFC 8555 section 6.5: retry with the nonce this error carried
      }
    }
    last_retry_after_ms_ = RetryAfterMs(*r);
    return r;
  }
}

Result<json> AcmeClient::PostJson(const std::string& url, const std::string& payload, std::string* location,
                                  const HttpReply** /*reply_out*/) {
  auto r = Post(url, payload);
  if (!r.ok()) return r.status();
  if (r->status >= 400) {
    Code code = r->status == 429 ? Code::kThrottled : r->status >= 500 ? Code::kUnavailable
                                                                                : Code::kInvalidArgument;
    return Status::Error(code, "the CA refused (HTTP " + std::to_string(r->status) + "): " +
                                   ProblemText(r->body, r->body.substr(0, 300)));
  }
  if (location != nullptr) {
    const std::string* loc = r->Header("location");
    *location = loc ? *loc : "";
  }
  json j = json::parse(r->body, nullptr, false);
  if (!j.is_object()) return Status::Invalid("the CA answered " + url + " with something that is not a JSON object");
  return j;
}

Result<std::string> AcmeClient::EnsureAccount() {
  if (!kid_.empty()) return kid_;
  GEYSIR_RETURN_IF_ERROR(LoadDirectory());
  json payload = {{"termsOfServiceAgreed", true}};
  if (!config_.contact_email.empty()) payload["contact"] = json::array({"mailto:" + config_.contact_email});
  auto r = Post(directory_["newAccount"].get<std::string>(), payload.dump(), /*use_jwk=*/true);
  if (!r.ok()) return r.status();
  if (r->status != 200 && r->status != 201) {
    return Status::Invalid("creating the ACME account failed (HTTP " + std::to_string(r->status) +
                           "): " + ProblemText(r->body, r->body.substr(0, 300)));
  }
  const std::string* loc = r->Header("location");
  if (loc == nullptr || loc->empty()) return Status::Invalid("the CA created an account but sent no Location");
  kid_ = *loc;
  return kid_;
}

Result<json> AcmeClient::PollWhile(const std::string& url, const std::vector<std::string>& waiting) {
  for (int i = 0; i < config_.max_polls; ++i) {
    auto obj = PostJson(url, "");
    if (!obj.ok()) return obj.status();
    std::string status = obj->value("status", "");
    if (std::find(waiting.begin(), waiting.end(), status) == waiting.end()) return obj;
    Sleep(last_retry_after_ms_);
  }
  return Status::Error(Code::kDeadlineExceeded, "the CA did not finish " + url + " after " +
                                                    std::to_string(config_.max_polls) + " polls");
}

Result<Issued> AcmeClient::Obtain(const std::vector<std::string>& names, const std::string& challenge_type,
                                  const ChallengeHooks& hooks) {
  auto account = EnsureAccount();
  if (!account.ok()) return account.status();
  json ids = json::array();
  for (const auto& n : names) ids.push_back({{"type", "dns"}, {"value", n}});
  std::string order_url;
  auto order = PostJson(directory_["newOrder"].get<std::string>(), json{{"identifiers", ids}}.dump(), &order_url);
  if (!order.ok()) return order.status();
  if (order_url.empty()) return Status::Invalid("the CA created an order but sent no Location");

  std::vector<Challenge> published;
  auto withdraw_all = [&] {
    for (const auto& c : published)
      if (hooks.withdraw) hooks.withdraw(c);
  };

  // Authorizations: answer every pending one, then wait for each to become valid.
  std::vector<std::string> pending_authz;
  for (const auto& a : order->value("authorizations", json::array())) {
    if (!a.is_string()) continue;
    std::string authz_url = a.get<std::string>();
    auto authz = PostJson(authz_url, "");
    if (!authz.ok()) {
      withdraw_all();
      return authz.status();
    }
    std::string domain = authz->value("identifier", json::object()).value("value", "");
    if (authz->value("status", "") == "valid") continue;
    // value() returns a copy: keep the chosen challenge by value, not a pointer into it.
    std::optional<json> chosen;
    for (const auto& ch : authz->value("challenges", json::array())) {
      if (ch.is_object() && ch.value("type", "") == challenge_type) chosen = ch;
    }
    if (!chosen) {
      withdraw_all();
      return Status::Invalid("the CA offers no " + challenge_type + " challenge for " + domain);
    }
    Challenge c;
    c.type = challenge_type;
    c.domain = domain;
    c.token = chosen->value("token", "");
    c.url = chosen->value("url", "");
    c.key_authorization = KeyAuthorization(c.token);
    if (hooks.publish) {
      Status st = hooks.publish(c);
      if (!st.ok()) {
        withdraw_all();
        return st.Wrap("publishing the " + challenge_type + " answer for " + domain);
      }
    }
    published.push_back(c);
    auto accepted = PostJson(c.url, "{}");
    if (!accepted.ok()) {
      withdraw_all();
      return accepted.status();
    }
    pending_authz.push_back(authz_url);
  }
  for (const auto& authz_url : pending_authz) {
    auto authz = PollWhile(authz_url, {"pending", "processing"});
    if (!authz.ok()) {
      withdraw_all();
      return authz.status();
    }
    if (authz->value("status", "") != "valid") {
      std::string why;
      for (const auto& ch : authz->value("challenges", json::array())) {
        if (ch.contains("error")) why = ProblemText(ch["error"].dump(), "");
      }
      withdraw_all();
      return Status::Invalid("validation of " + authz->value("identifier", json::object()).value("value", std::string("?")) +
                             " failed (" + authz->value("status", std::string("?")) + "): " +
                             (why.empty() ? "the CA gave no reason" : why));
    }
  }
  withdraw_all();

  // The order is ready once every authorization is valid.
  auto ready = PollWhile(order_url, {"pending"});
  if (!ready.ok()) return ready.status();
  if (ready->value("status", "") != "ready" && ready->value("status", "") != "valid") {
    return Status::Invalid("the order became " + ready->value("status", std::string("?")) + ": " +
                           (ready->contains("error") ? ProblemText((*ready)["error"].dump(), "") : "no reason given"));
  }

  auto cert_key = EcKey::Generate();
  if (!cert_key.ok()) return cert_key.status();
  if (ready->value("status", "") == "ready") {
    auto csr = MakeCsr(*cert_key, names);
    if (!csr.ok()) return csr.status();
    auto fin = PostJson(ready->value("finalize", ""), json{{"csr", Base64UrlEncode(*csr)}}.dump());
    if (!fin.ok()) return fin.status();
  }
  auto done = PollWhile(order_url, {"ready", "processing"});
  if (!done.ok()) return done.status();
  if (done->value("status", "") != "valid" || !done->contains("certificate")) {
    return Status::Invalid("the order ended " + done->value("status", std::string("?")) + " without a certificate" +
                           (done->contains("error") ? ": " + ProblemText((*done)["error"].dump(), "") : ""));
  }
  auto chain = Post((*done)["certificate"].get<std::string>(), "");
  if (!chain.ok()) return chain.status();
  if (chain->status != 200 || chain->body.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return Status::Invalid("downloading the certificate failed (HTTP " + std::to_string(chain->status) + ")");
  }
  return Issued{chain->body, cert_key->ToPem()};
}

}  // namespace geysir::control::acme
