#include "gateway/cors.h"

#include <string>
#include <string_view>

#include "gateway/codec.h"

namespace geysir::gateway {
namespace {

using nlohmann::json;

std::string Join(const json& cors, const char* key) {
  std::string out;
  auto it = cors.find(key);
  if (it == cors.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (!v.is_string()) continue;
    if (!out.empty()) out.append(",");
    out.append(v.get_ref<const std::string&>());
  }
  return out;
}

bool AllowCredentials(const json& cors) {
  auto it = cors.find("AllowCredentials");
  return it != cors.end() && it->is_boolean() && it->get<bool>();
}

// The Access-Control-Allow-Origin value for this origin, or "" when it is not allowed. A
// wildcard is answered with "*" unless credentials are allowed, where browsers refuse "*" and
// the origin itself must be echoed.
std::string AllowedOrigin(const json& cors, const std::string* origin) {
  auto it = cors.find("AllowOrigins");
  if (it == cors.end() || !it->is_array()) return "";
  for (const auto& v : *it) {
    if (!v.is_string()) continue;
    const auto& allowed = v.get_ref<const std::string&>();
    if (allowed == "*") {
      if (AllowCredentials(cors) && origin) return *origin;
      return "*";
    }
    if (origin && EqualsIgnoreCase(allowed, *origin)) return *origin;
  }
  return "";
}

bool SafeValue(std::string_view v) {
  return v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

}  // namespace

bool IsPreflight(const net::HttpRequest& request) {
  return request.method == "OPTIONS" && request.Header("origin") != nullptr &&
         request.Header("access-control-request-method") != nullptr;
}

net::HttpResponse PreflightResponse(const json& cors, const net::HttpRequest& request) {
  net::HttpResponse r;
  r.status = 200;
  std::string origin = AllowedOrigin(cors, request.Header("origin"));
  if (!origin.empty() && SafeValue(origin)) {
    r.headers.emplace_back("Access-Control-Allow-Origin", origin);
    std::string methods = Join(cors, "AllowMethods");
    if (!methods.empty()) r.headers.emplace_back("Access-Control-Allow-Methods", methods);
    std::string headers = Join(cors, "AllowHeaders");
    if (!headers.empty()) r.headers.emplace_back("Access-Control-Allow-Headers", headers);
    if (AllowCredentials(cors)) r.headers.emplace_back("Access-Control-Allow-Credentials", "true");
    if (auto it = cors.find("MaxAge"); it != cors.end() && it->is_number_integer() && it->get<int64_t>() > 0) {
      r.headers.emplace_back("Access-Control-Max-Age", std::to_string(it->get<int64_t>()));
    }
  }
  r.headers.emplace_back("Vary", "Origin");
  return r;
}

void ApplyCors(const json& cors, const std::string* origin, net::HttpResponse& response) {
  auto& h = response.headers;
  for (size_t i = h.size(); i-- > 0;) {
    if (h[i].first.size() >= 15 && EqualsIgnoreCase(std::string_view(h[i].first).substr(0, 15), "access-control-")) {
      h.erase(h.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  std::string allowed = AllowedOrigin(cors, origin);
  if (allowed.empty() || !SafeValue(allowed)) return;
  h.emplace_back("Access-Control-Allow-Origin", allowed);
  if (AllowCredentials(cors)) h.emplace_back("Access-Control-Allow-Credentials", "true");
  std::string expose = Join(cors, "ExposeHeaders");
  if (!expose.empty()) h.emplace_back("Access-Control-Expose-Headers", expose);
  if (allowed != "*") h.emplace_back("Vary", "Origin");
}

}  // namespace geysir::gateway
