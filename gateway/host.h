// Host routing: which function URL, if any, a request's Host header names.
//
// A function URL host is "<url_id>.lambda-url.<base_domain>" with an optional ":port", compared
// case-insensitively (DNS names are case-insensitive; curl and browsers send them as typed). A
// single trailing dot (the absolute form "a.lambda-url.localhost.") is accepted. Anything else,
// including IP literals and other names, is a "platform" host that serves only /healthz.
// "<api_id>.execute-api.<base_domain>" names an API Gateway API (kExecuteApi).
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace geysir::gateway {

struct HostMatch {
  enum class Kind {
    kPlatform,      // not under the function URL domain: /healthz lives here
    kFunctionUrl,   // "<url_id>.lambda-url.<base>"; url_id is well-formed
    kBadFunctionUrl, // under ".lambda-url.<base>" but the label is empty or not [a-z0-9-]
    kExecuteApi     // "<api_id>.execute-api.<base>": an API Gateway REST or HTTP API
  };
  Kind kind = Kind::kPlatform;
  std::string url_id;       // lower-case; set for kFunctionUrl, and the api id for kExecuteApi
  std::string domain_name;  // the host without port and trailing dot, lower-case
};

// `host` is the Host header value ("" when absent); `base_domain` as configured ("localhost").
HostMatch MatchHost(std::string_view host, std::string_view base_domain);

// The host part of a Host header value: "[::1]:8080" -> "[::1]", "a.b:80" -> "a.b".
std::string_view StripPort(std::string_view host);

}  // namespace geysir::gateway
