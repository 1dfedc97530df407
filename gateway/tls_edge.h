// TlsEdge: what the gateway knows about HTTPS and custom domains, fed by control's "tls" frames
// (proto/tls_state.h):
//
//   - the TlsContext the HTTPS listener serves with (certificates by SNI, TLS-ALPN-01 answers),
//     plus an optional operator certificate from PEM files that answers any other name;
//   - ACME HTTP-01 answers for GET /.well-known/acme-challenge/<token> (on either port);
//   - custom domains: host -> function URL id, or API mappings (base path -> API id + stage);
//   - the HTTP -> HTTPS redirect and HSTS options.
//
// A renewed certificate replaces the old one for new handshakes only; connections already
// established keep the certificate they negotiated (see net/tls.h).
//
// Thread safety: loop thread only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/frame.h"
#include "net/http_server.h"
#include "base/status.h"
#include "net/tls.h"
#include "proto/tls_state.h"

namespace geysir::gateway {

struct TlsEdgeOptions {
  std::string cert_file;          // operator-supplied PEM chain (optional)
  std::string key_file;           // its key
  bool redirect_http = false;     // plain-HTTP requests for a host with a certificate -> 308 https
  uint32_t hsts_max_age_s = 0;    // > 0: Strict-Transport-Security on HTTPS responses
  uint16_t https_port = 443;      // the public HTTPS port, for redirect Locations
};

class TlsEdge {
 public:
  // Fails when the operator certificate files cannot be read or do not parse.
  static Result<std::unique_ptr<TlsEdge>> Create(TlsEdgeOptions options);

  // Applies a "tls" frame (untrusted bytes from another process). Returns its generation.
  Result<uint64_t> Apply(const proto::Frame& frame);

  // An answer for an ACME HTTP-01 request (GET /.well-known/acme-challenge/<token>), or
  // nullopt when the path is not a challenge path. Unknown tokens get a 404.
  std::optional<net::HttpResponse> Challenge(const net::HttpRequest& request) const;

  // The targets of the custom domain `host` (lower-case, no port), or nullptr when it is not one:
  // a single entry for a function URL (url_id) or a domain with no target yet, else one entry
  // per API mapping (api_id, stage, base_path).
  const std::vector<proto::CustomDomainRoute>* Domain(std::string_view host) const;

  // A 308 to https:// for a plain-HTTP request when redirects are on and `host` has a
  // certificate; nullopt otherwise.
  std::optional<net::HttpResponse> Redirect(const net::HttpRequest& request, std::string_view host) const;

  // A responder that adds Strict-Transport-Security to what `inner` sends (HTTPS requests,
  // when hsts() is on).
  std::shared_ptr<net::HttpResponder> WithHsts(std::shared_ptr<net::HttpResponder> inner) const;
  bool hsts() const { return options_.hsts_max_age_s > 0; }

  const net::TlsContext& context() const { return *context_; }
  uint64_t generation() const { return generation_; }

 private:
  explicit TlsEdge(TlsEdgeOptions options) : options_(std::move(options)) {}

  TlsEdgeOptions options_;
  std::unique_ptr<net::TlsContext> context_;
  net::TlsCertificatePtr operator_cert_;
  std::map<std::string, std::string, std::less<>> http01_;
  std::map<std::string, std::vector<proto::CustomDomainRoute>, std::less<>> domains_;
  uint64_t generation_ = 0;
};

}  // namespace geysir::gateway
