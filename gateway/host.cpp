#include "gateway/host.h"

#include "gateway/codec.h"

namespace geysir::gateway {

std::string_view StripPort(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  size_t colon = host.rfind(':');
  if (colon == std::string_view::npos) return host;
  // Only strip a numeric (possibly empty, as RFC 3986 allows) port.
  for (size_t i = colon + 1; i < host.size(); ++i) {
    if (host[i] < '0' || host[i] > '9') return host;
  }
  return host.substr(0, colon);
}

HostMatch MatchHost(std::string_view host, std::string_view base_domain) {
  HostMatch m;
  std::string_view name = StripPort(host);
  while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.remove_prefix(1);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  m.domain_name = AsciiLower(name);

  std::string base = AsciiLower(base_domain);
  if (!base.empty() && base.back() == '.') base.pop_back();
  const std::string& d = m.domain_name;
  // API Gateway: "<api_id>.execute-api.<base>" (ids are [a-z0-9], 10 characters on AWS).
  const std::string api_suffix = ".execute-api." + base;
  if (d.size() > api_suffix.size() && d.compare(d.size() - api_suffix.size(), api_suffix.size(), api_suffix) == 0) {
    std::string_view id(d.data(), d.size() - api_suffix.size());
    bool ok = id.size() <= 63;
    for (char c : id) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) ok = false;
    }
    if (ok) {
      m.kind = HostMatch::Kind::kExecuteApi;
      m.url_id = std::string(id);
      return m;
    }
  }
  const std::string suffix = ".lambda-url." + base;
  if (d.size() < suffix.size() || d.compare(d.size() - suffix.size(), suffix.size(), suffix) != 0) {
    // "lambda-url.<base>" itself (no label) is a malformed function URL host, not the platform.
    if (d == suffix.substr(1)) m.kind = HostMatch::Kind::kBadFunctionUrl;
    return m;
  }
  std::string_view id(d.data(), d.size() - suffix.size());
  bool ok = !id.empty() && id.size() <= 63;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) ok = false;
  }
  if (!ok) {
    m.kind = HostMatch::Kind::kBadFunctionUrl;
    return m;
  }
  m.kind = HostMatch::Kind::kFunctionUrl;
  m.url_id = std::string(id);
  return m;
}

}  // namespace geysir::gateway
