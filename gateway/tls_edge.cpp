#include "gateway/tls_edge.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "gateway/result.h"
#include "base/log.h"

namespace geysir::gateway {
namespace {

constexpr std::string_view kChallengePrefix = "/.well-known/acme-challenge/";

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Invalid("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A token is base64url (RFC 8555 section 8.3); anything else is not one of ours.
bool IsToken(std::string_view t) {
  if (t.empty() || t.size() > 256) return false;
  for (char c : t) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<TlsEdge>> TlsEdge::Create(TlsEdgeOptions options) {
  std::unique_ptr<TlsEdge> edge(new TlsEdge(std::move(options)));
  auto ctx = net::TlsContext::Create();
  if (!ctx.ok()) return ctx.status();
  edge->context_ = std::move(*ctx);
  if (!edge->options_.cert_file.empty() || !edge->options_.key_file.empty()) {
    if (edge->options_.cert_file.empty() || edge->options_.key_file.empty())
      return Status::Invalid("--tls-cert and --tls-key go together");
    auto cert_pem = ReadFile(edge->options_.cert_file);
    if (!cert_pem.ok()) return cert_pem.status();
    auto key_pem = ReadFile(edge->options_.key_file);
    if (!key_pem.ok()) return key_pem.status();
    auto cert = net::TlsCertificate::FromPem(*cert_pem, *key_pem);
    if (!cert.ok()) return cert.status().Wrap(edge->options_.cert_file);
    edge->operator_cert_ = *cert;
    log::Info("tls_operator_certificate", {{"file", edge->options_.cert_file}, {"names", (*cert)->names()},
                                           {"serial", (*cert)->serial_hex()}, {"not_after", (*cert)->not_after_s()}});
  }
  edge->context_->SetCertificates(edge->operator_cert_ ? std::vector<net::TlsCertificatePtr>{edge->operator_cert_}
                                                       : std::vector<net::TlsCertificatePtr>{},
                                  edge->operator_cert_);
  return edge;
}

Result<uint64_t> TlsEdge::Apply(const proto::Frame& frame) {
  proto::TlsState state;
  try {
    state = frame.header.get<proto::TlsState>();
  } catch (const std::exception& e) {
    return Status::Invalid(std::string("bad tls frame: ") + e.what());
  }
  // Certificates that do not parse are skipped (and named) rather than failing the whole
  // table: one broken domain must not take the others' HTTPS down.
  std::vector<net::TlsCertificatePtr> certs;
  if (operator_cert_) certs.push_back(operator_cert_);
  for (const auto& pair : state.certificates) {
    auto cert = net::TlsCertificate::FromPem(pair.cert_pem, pair.key_pem);
    if (!cert.ok()) {
      log::Warn("tls_certificate_rejected", {{"error", cert.status().message()}});
      continue;
    }
    certs.push_back(*cert);
  }
  std::map<std::string, net::TlsCertificatePtr> acme;
  for (const auto& [name, pair] : state.alpn01) {
    auto cert = net::TlsCertificate::FromPem(pair.cert_pem, pair.key_pem);
    if (!cert.ok()) {
      log::Warn("tls_alpn_certificate_rejected", {{"name", name}, {"error", cert.status().message()}});
      continue;
    }
    acme.emplace(name, *cert);
  }
  context_->SetCertificates(certs, operator_cert_);
  context_->SetAcmeCertificates(std::move(acme));
  http01_.clear();
  for (auto& [token, key_auth] : state.http01) http01_.emplace(token, key_auth);
  domains_.clear();
  for (auto& d : state.domains) domains_[d.name].push_back(d);  // one entry per API mapping
  generation_ = state.generation;
  log::Info("tls_updated", {{"generation", generation_}, {"certificates", certs.size()},
                            {"http01", http01_.size()}, {"alpn01", state.alpn01.size()}, {"domains", domains_.size()}});
  return generation_;
}

std::optional<net::HttpResponse> TlsEdge::Challenge(const net::HttpRequest& request) const {
  if (request.path.compare(0, kChallengePrefix.size(), kChallengePrefix) != 0) return std::nullopt;
  if (request.method != "GET" && request.method != "HEAD") return ErrorResponse(405, "Method Not Allowed");
  std::string_view token = std::string_view(request.path).substr(kChallengePrefix.size());
  auto it = IsToken(token) ? http01_.find(token) : http01_.end();
  if (it == http01_.end()) return ErrorResponse(404, "No such ACME challenge");
  net::HttpResponse r;
  r.status = 200;
  r.headers.emplace_back("Content-Type", "application/octet-stream");
  r.body = it->second;
  log::Info("acme_http01_served", {{"token", std::string(token)}, {"remote", request.remote_addr}});
  return r;
}

const std::vector<proto::CustomDomainRoute>* TlsEdge::Domain(std::string_view host) const {
  auto it = domains_.find(host);
  return it == domains_.end() ? nullptr : &it->second;
}

std::optional<net::HttpResponse> TlsEdge::Redirect(const net::HttpRequest& request, std::string_view host) const {
  if (!options_.redirect_http || request.tls || host.empty()) return std::nullopt;
  if (!context_->Select(host)) return std::nullopt;
  std::string location = "https://" + std::string(host);
  if (options_.https_port != 443) location += ":" + std::to_string(options_.https_port);
  location += request.target.empty() || request.target[0] != '/' ? "/" : request.target;
  net::HttpResponse r;
  r.status = 308;
  r.headers.emplace_back("Location", location);
  r.headers.emplace_back("Content-Type", "text/plain");
  r.body = "Moved to " + location + "\n";
  return r;
}

namespace {

class HstsResponder final : public net::HttpResponder {
 public:
  HstsResponder(std::shared_ptr<net::HttpResponder> inner, std::string value)
      : inner_(std::move(inner)), value_(std::move(value)) {}
  void Send(net::HttpResponse response) override {
    response.headers.emplace_back("Strict-Transport-Security", value_);
    inner_->Send(std::move(response));
  }
  bool alive() const override { return inner_->alive(); }

 private:
  std::shared_ptr<net::HttpResponder> inner_;
  std::string value_;
};

}  // namespace

std::shared_ptr<net::HttpResponder> TlsEdge::WithHsts(std::shared_ptr<net::HttpResponder> inner) const {
  return std::make_shared<HstsResponder>(std::move(inner), "max-age=" + std::to_string(options_.hsts_max_age_s));
}

}  // namespace geysir::gateway
