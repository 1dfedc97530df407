#include "gateway/result.h"

#include <nlohmann/json.hpp>

#include "gateway/api_match.h"
#include "gateway/codec.h"
#include "base/json_bounds.h"

namespace geysir::gateway {
namespace {

using nlohmann::json;

bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool IsValidHeaderName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

bool IsSafeHeaderValue(std::string_view value) {
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

// Headers the HTTP server writes itself or that describe this hop only.
bool IsReservedHeader(std::string_view name) {
  static constexpr std::string_view kReserved[] = {
      "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
      "proxy-connection", "te", "trailer", "date"};
  for (auto r : kReserved) {
    if (EqualsIgnoreCase(name, r)) return true;
  }
  return false;
}

// A header value from the function's JSON: strings as they are, numbers and booleans as their
// JSON text (JavaScript handlers commonly return {"Content-Length": 12}); null/objects/arrays
// are skipped.
bool ScalarToString(const json& v, std::string& out) {
  if (v.is_string()) {
    out = v.get_ref<const std::string&>();
    return true;
  }
  if (v.is_number() || v.is_boolean()) {
    out = v.dump();
    return true;
  }
  return false;
}

}  // namespace

net::HttpResponse ErrorResponse(int status, std::string_view message) {
  net::HttpResponse r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  r.body = json{{"Message", message}}.dump();
  return r;
}

Result<net::HttpResponse> MapHandlerOutput(std::string_view payload) {
  // Untrusted output, bounded before it is parsed: a "body" that is an object is dumped again
  // below, and dump() recurses once per level.
  auto parsed = ParseUntrustedJson(payload);
  if (!parsed.ok()) return Status::Invalid("the function's result is not valid JSON (" + parsed.status().message() + ")");
  json v = std::move(parsed).value();

  if (!v.is_object() || !v.contains("statusCode")) {
    net::HttpResponse r;
    r.status = 200;
    r.headers.emplace_back("Content-Type", "application/json");
    r.body = std::string(payload);
    return r;
  }

  net::HttpResponse r;
  const json& sc = v["statusCode"];
  int64_t status = 0;
  // Range-checked: 200.0 from a JavaScript number is 200; 1e300 is no integer (a cast of it
  // would be undefined behaviour).
  if (auto n = JsonInteger<int64_t>(sc)) {
    status = *n;
  } else {
    return Status::Invalid("statusCode is not an integer");
  }
  if (status < 100 || status > 599) return Status::Invalid("statusCode " + std::to_string(status) + " is out of range");
  r.status = static_cast<int>(status);

  bool have_content_type = false;
  if (auto it = v.find("headers"); it != v.end() && !it->is_null()) {
    if (!it->is_object()) return Status::Invalid("headers is not an object");
    for (const auto& [name, value] : it->items()) {
      std::string text;
      if (!ScalarToString(value, text)) continue;
      if (!IsValidHeaderName(name) || !IsSafeHeaderValue(text) || IsReservedHeader(name)) continue;
      if (EqualsIgnoreCase(name, "content-type")) have_content_type = true;
      r.headers.emplace_back(name, std::move(text));
    }
  }
  if (auto it = v.find("cookies"); it != v.end() && !it->is_null()) {
    if (!it->is_array()) return Status::Invalid("cookies is not a list");
    for (const auto& c : *it) {
      if (!c.is_string()) return Status::Invalid("a cookie is not a string");
      const auto& s = c.get_ref<const std::string&>();
      if (!IsSafeHeaderValue(s)) continue;
      r.headers.emplace_back("Set-Cookie", s);
    }
  }
  if (!have_content_type) r.headers.emplace_back("Content-Type", "application/json");

  bool base64 = false;
  if (auto it = v.find("isBase64Encoded"); it != v.end() && it->is_boolean()) base64 = it->get<bool>();
  if (auto it = v.find("body"); it != v.end() && !it->is_null()) {
    if (it->is_string()) {
      const auto& s = it->get_ref<const std::string&>();
      if (base64) {
        auto decoded = DecodeBase64(s);
        if (!decoded) return Status::Invalid("isBase64Encoded is true but body is not valid base64");
        r.body = std::move(*decoded);
      } else {
        r.body = s;
      }
    } else {
      r.body = it->dump();  // a body given as JSON rather than as a string: send its JSON text
    }
  }
  return r;
}

namespace {

// A failed invocation as an HTTP client sees it, for function URLs and API Gateway alike; only
// the body differs (`respond` makes it) and the 502's words (`bad_gateway`).
template <typename Respond>
net::HttpResponse MapFailure(const proto::InvokeResult& result, std::string_view payload, std::string* problem,
                               Respond respond, std::string_view bad_gateway) {
  switch (result.outcome) {
    case proto::InvokeOutcome::kOk:
      break;  // the callers map successes themselves
    case proto::InvokeOutcome::kUnhandled:
      if (problem) *problem = "the function failed (" + result.error_type + ")";
      return respond(502, bad_gateway);
    case proto::InvokeOutcome::kTimeout:
      return respond(504, "Endpoint request timed out");
    case proto::InvokeOutcome::kThrottled:
      return respond(429, "Too Many Requests");
    case proto::InvokeOutcome::kInternal:
    case proto::InvokeOutcome::kUnavailable:
      break;
  }
  // Geysir failed, not the function. An unreachable scheduler (restarting) is worth a retry, so
  // it is 503; anything else is 502.
  json body = ParseUntrustedJsonOrDiscarded(payload);
  std::string message;
  if (body.is_object()) {
    if (auto it = body.find("message"); it != body.end() && it->is_string()) message = it->get<std::string>();
  }
  if (problem) *problem = message;
  if (result.outcome == proto::InvokeOutcome::kUnavailable) return respond(503, "Service Unavailable");
  return respond(502, bad_gateway);
}

}  // namespace

net::HttpResponse MapInvokeResult(const proto::InvokeResult& result, std::string_view payload,
                                    std::string* problem) {
  if (result.outcome == proto::InvokeOutcome::kOk) {
    auto mapped = MapHandlerOutput(payload);
    if (mapped.ok()) return std::move(mapped).value();
    if (problem) *problem = mapped.status().message();
    return ErrorResponse(502, "Internal Server Error");
  }
  return MapFailure(result, payload, problem, ErrorResponse, "Internal Server Error");
}

net::HttpResponse ApiErrorResponse(int status, std::string_view message) {
  net::HttpResponse r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json");
  r.body = json{{"message", message}}.dump();
  return r;
}

Result<net::HttpResponse> MapProxyOutputV1(std::string_view payload, const ApiOutputOptions& options) {
  auto parsed = ParseUntrustedJson(payload);
  if (!parsed.ok()) return Status::Invalid("the function's result is not valid JSON (" + parsed.status().message() + ")");
  json v = std::move(parsed).value();
  if (!v.is_object()) return Status::Invalid("the function's result is not a JSON object (Malformed Lambda proxy response)");
  auto sc = v.find("statusCode");
  if (sc == v.end()) return Status::Invalid("the function's result has no statusCode (Malformed Lambda proxy response)");
  int64_t status = 0;
  if (auto n = JsonInteger<int64_t>(*sc)) {
    status = *n;
  } else if (sc->is_string()) {
    // API Gateway accepts "200" as well as 200.
    const std::string& text = sc->get_ref<const std::string&>();
    if (text.empty() || text.size() > 3 || text.find_first_not_of("0123456789") != std::string::npos) {
      return Status::Invalid("statusCode is not an integer");
    }
    status = std::stoi(text);
  } else {
    return Status::Invalid("statusCode is not an integer");
  }
  if (status < 100 || status > 599) return Status::Invalid("statusCode " + std::to_string(status) + " is out of range");

  net::HttpResponse r;
  r.status = static_cast<int>(status);
  bool have_content_type = false;
  std::string content_type;
  auto add = [&](const std::string& name, const std::string& value) {
    if (!IsValidHeaderName(name) || !IsSafeHeaderValue(value) || IsReservedHeader(name)) return;
    if (EqualsIgnoreCase(name, "content-type")) {
      have_content_type = true;
      content_type = value;
    }
    r.headers.emplace_back(name, value);
  };
  const json* multi = nullptr;
  if (auto it = v.find("multiValueHeaders"); it != v.end() && !it->is_null()) {
    if (!it->is_object()) return Status::Invalid("multiValueHeaders is not an object");
    multi = &*it;
  }
  if (auto it = v.find("headers"); it != v.end() && !it->is_null()) {
    if (!it->is_object()) return Status::Invalid("headers is not an object");
    for (const auto& [name, value] : it->items()) {
      if (multi) {
        bool shadowed = false;
        for (const auto& [mname, mv] : multi->items()) {
          if (EqualsIgnoreCase(mname, name)) shadowed = true;
        }
        if (shadowed) continue;
      }
      std::string text;
      if (ScalarToString(value, text)) add(name, text);
    }
  }
  if (multi) {
    for (const auto& [name, values] : multi->items()) {
      if (!values.is_array()) return Status::Invalid("multiValueHeaders." + name + " is not a list");
      for (const auto& value : values) {
        std::string text;
        if (ScalarToString(value, text)) add(name, text);
      }
    }
  }
  if (!have_content_type) r.headers.emplace_back("Content-Type", "application/json");

  bool base64 = false;
  if (auto it = v.find("isBase64Encoded"); it != v.end() && it->is_boolean()) base64 = it->get<bool>();
  if (auto it = v.find("body"); it != v.end() && !it->is_null()) {
    if (!it->is_string()) return Status::Invalid("body is not a string (Malformed Lambda proxy response)");
    const auto& s = it->get_ref<const std::string&>();
    bool decode = base64 && (options.always_decode ||
                             (options.binary_types && !options.binary_types->empty() &&
                              (MatchesMediaType(*options.binary_types, options.accept) ||
                               MatchesMediaType(*options.binary_types, content_type))));
    if (decode) {
      auto decoded = DecodeBase64(s);
      if (!decoded) return Status::Invalid("isBase64Encoded is true but body is not valid base64");
      r.body = std::move(*decoded);
    } else {
      r.body = s;
    }
  }
  return r;
}

net::HttpResponse MapApiResult(const proto::InvokeResult& result, std::string_view payload,
                                 std::string_view payload_format, const ApiOutputOptions& options,
                                 std::string* problem) {
  const char* internal = options.http_api ? "Internal Server Error" : "Internal server error";
  if (result.outcome == proto::InvokeOutcome::kOk) {
    auto mapped = payload_format == "2.0" ? MapHandlerOutput(payload) : MapProxyOutputV1(payload, options);
    if (mapped.ok()) return std::move(mapped).value();
    if (problem) *problem = mapped.status().message();
    return ApiErrorResponse(502, internal);
  }
  return MapFailure(result, payload, problem, ApiErrorResponse, internal);
}

}  // namespace geysir::gateway
