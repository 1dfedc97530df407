#include "gateway/event.h"

#include <cstdint>
#include <ctime>
#include <map>
#include <utility>
#include <vector>

#include "gateway/codec.h"

namespace geysir::gateway {
namespace {

// AWS's requestContext.domainPrefix: the first label of the host the client used ("abc" of
// abc.execute-api..., "api" of a custom domain api.example.com).
std::string_view DomainPrefix(std::string_view domain_name, std::string_view fallback) {
  if (domain_name.empty()) return fallback;
  return domain_name.substr(0, domain_name.find('.'));
}

using NameValues = std::vector<std::pair<std::string, std::string>>;

// Adds value under name, joining a repeat with "," as AWS does. Linear search: requests carry
// tens of headers at most, and a vector keeps first-seen order with no hashing or allocation
// per lookup.
void AddJoined(NameValues& list, std::string name, std::string_view value) {
  for (auto& [n, v] : list) {
    if (n == name) {
      v.push_back(',');
      v.append(value);
      return;
    }
  }
  list.emplace_back(std::move(name), std::string(value));
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void AppendUint(std::string& out, uint64_t v) {
  char buf[24];
  int n = 0;
  do {
    buf[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0);
  while (n > 0) out.push_back(buf[--n]);
}

void AppendKey(std::string& out, std::string_view key) {
  // Keys here are our own constants: plain ASCII, no escaping needed.
  out.push_back('"');
  out.append(key);
  out.append("\":");
}

// {"name": "value", ...} from any sequence of (name, value) string pairs (a NameValues list, a
// std::map), in its order.
template <typename Pairs>
void AppendObject(std::string& out, const Pairs& pairs) {
  out.push_back('{');
  bool first = true;
  for (const auto& [n, v] : pairs) {
    if (!first) out.push_back(',');
    first = false;
    AppendJsonString(out, n);
    out.push_back(':');
    AppendJsonString(out, v);
  }
  out.push_back('}');
}

// {"name": ["v1", "v2"], ...}
using NameLists = std::vector<std::pair<std::string, std::vector<std::string>>>;

void AddToList(NameLists& lists, std::string name, std::string value, bool fold_case) {
  for (auto& [n, vs] : lists) {
    if (fold_case ? EqualsIgnoreCase(n, name) : n == name) {
      vs.push_back(std::move(value));
      return;
    }
  }
  lists.emplace_back(std::move(name), std::vector<std::string>{std::move(value)});
}

// Appends {"a":"last","b":"x"},"multi<Key>":{"a":["first","last"],"b":["x"]} pieces: the single-
// value map (last value wins, as API Gateway's 1.0 event has it) or null when empty.
void AppendLastValues(std::string& out, const NameLists& lists) {
  if (lists.empty()) {
    out.append("null");
    return;
  }
  out.push_back('{');
  for (size_t i = 0; i < lists.size(); ++i) {
    if (i) out.push_back(',');
    AppendJsonString(out, lists[i].first);
    out.push_back(':');
    AppendJsonString(out, lists[i].second.back());
  }
  out.push_back('}');
}

void AppendAllValues(std::string& out, const NameLists& lists) {
  if (lists.empty()) {
    out.append("null");
    return;
  }
  out.push_back('{');
  for (size_t i = 0; i < lists.size(); ++i) {
    if (i) out.push_back(',');
    AppendJsonString(out, lists[i].first);
    out.append(":[");
    for (size_t k = 0; k < lists[i].second.size(); ++k) {
      if (k) out.push_back(',');
      AppendJsonString(out, lists[i].second[k]);
    }
    out.push_back(']');
  }
  out.push_back('}');
}

// requestContext's first four members, shared by both payload formats:
// "accountId":…,"apiId":…,"domainName":…,"domainPrefix":… (no braces, no trailing comma).
void AppendContextIds(std::string& out, const EventContext& ctx) {
  AppendKey(out, "accountId");
  AppendJsonString(out, ctx.account_id);
  out.push_back(',');
  AppendKey(out, "apiId");
  AppendJsonString(out, ctx.url_id);
  out.push_back(',');
  AppendKey(out, "domainName");
  AppendJsonString(out, ctx.domain_name);
  out.push_back(',');
  AppendKey(out, "domainPrefix");
  AppendJsonString(out, DomainPrefix(ctx.domain_name, ctx.url_id));
}

// The JSON string naming the request's HTTP version.
std::string_view ProtocolJson(const net::HttpRequest& request) {
  return request.http_major == 1 && request.http_minor == 0 ? R"("HTTP/1.0")" : R"("HTTP/1.1")";
}

// A non-empty body as a JSON string: as is, or base64 when it is binary.
void AppendBody(std::string& out, std::string_view body, bool base64) {
  if (!base64) return AppendJsonString(out, body);
  out.push_back('"');
  AppendBase64(out, body);
  out.push_back('"');
}

}  // namespace

std::string FormatRequestTime(uint64_t epoch_ms) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  // Every event of one second carries the same text: formatted once per second and thread.
  thread_local uint64_t cached_secs = UINT64_MAX;
  thread_local std::string cached;
  const uint64_t whole = epoch_ms / 1000;
  if (whole == cached_secs) return cached;
  time_t secs = static_cast<time_t>(whole);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[40];
  snprintf(buf, sizeof buf, "%02d/%s/%04d:%02d:%02d:%02d +0000", t.tm_mday, kMonths[t.tm_mon % 12],
           t.tm_year + 1900, t.tm_hour, t.tm_min, t.tm_sec);
  cached_secs = whole;
  cached = buf;
  return cached;
}

std::string BuildFunctionUrlEvent(const net::HttpRequest& request, const EventContext& ctx) {
  // Headers and cookies.
  NameValues headers;
  headers.reserve(request.headers.size() + 3);
  std::vector<std::string_view> cookies;
  std::string_view user_agent;
  std::string_view content_type;
  bool have_content_type = false;
  std::string xff;
  for (const auto& [name, value] : request.headers) {
    std::string lname = AsciiLower(name);
    if (lname == "cookie") {
      // "a=1; b=2" -> ["a=1", "b=2"]; several Cookie headers add up.
      std::string_view rest = value;
      while (!rest.empty()) {
        size_t semi = rest.find(';');
        std::string_view one = Trim(rest.substr(0, semi));
        if (!one.empty()) cookies.push_back(one);
        if (semi == std::string_view::npos) break;
        rest.remove_prefix(semi + 1);
      }
      continue;
    }
    if (lname == "user-agent" && user_agent.empty()) user_agent = value;
    if (lname == "content-type" && !have_content_type) {
      content_type = value;
      have_content_type = true;
    }
    // The edge sets these itself, like AWS's front end: a client cannot claim a protocol or
    // port, and its X-Forwarded-For is kept with our peer address appended.
    if (lname == "x-forwarded-proto" || lname == "x-forwarded-port") continue;
    if (lname == "x-forwarded-for") {
      if (!xff.empty()) xff.append(", ");
      xff.append(value);
      continue;
    }
    AddJoined(headers, std::move(lname), value);
  }
  if (!request.remote_addr.empty()) {
    if (!xff.empty()) xff.append(", ");
    xff.append(request.remote_addr);
  }
  if (!xff.empty()) headers.emplace_back("x-forwarded-for", std::move(xff));
  headers.emplace_back("x-forwarded-proto", std::string(ctx.forwarded_proto));
  if (ctx.forwarded_port != 0) headers.emplace_back("x-forwarded-port", std::to_string(ctx.forwarded_port));

  // Query parameters, decoded ('+' is a space in a query, as browsers encode forms).
  NameValues query;
  std::string_view q = request.query;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string key = PercentDecode(pair.substr(0, eq), true);
      std::string value = eq == std::string_view::npos ? std::string() : PercentDecode(pair.substr(eq + 1), true);
      AddJoined(query, std::move(key), value);
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }

  const bool body_as_text =
      have_content_type && IsTextualContentType(content_type) && IsValidUtf8(request.body);

  std::string out;
  out.reserve(768 + request.target.size() * 2 + (body_as_text ? request.body.size() + request.body.size() / 8
                                                               : request.body.size() * 4 / 3 + 4) +
              request.headers.size() * 64);
  out.append(R"({"version":"2.0","routeKey":)");
  AppendJsonString(out, ctx.route_key);
  out.push_back(',');
  AppendKey(out, "rawPath");
  AppendJsonString(out, request.path.empty() ? std::string_view("/") : std::string_view(request.path));
  out.push_back(',');
  AppendKey(out, "rawQueryString");
  AppendJsonString(out, request.query);
  out.push_back(',');
  if (!cookies.empty()) {
    AppendKey(out, "cookies");
    out.push_back('[');
    for (size_t i = 0; i < cookies.size(); ++i) {
      if (i) out.push_back(',');
      AppendJsonString(out, cookies[i]);
    }
    out.append("],");
  }
  AppendKey(out, "headers");
  AppendObject(out, headers);
  out.push_back(',');
  if (!query.empty()) {
    AppendKey(out, "queryStringParameters");
    AppendObject(out, query);
    out.push_back(',');
  }
  if (ctx.path_parameters && !ctx.path_parameters->empty()) {
    AppendKey(out, "pathParameters");
    AppendObject(out, *ctx.path_parameters);
    out.push_back(',');
  }
  if (ctx.stage_variables && !ctx.stage_variables->empty()) {
    AppendKey(out, "stageVariables");
    AppendObject(out, *ctx.stage_variables);
    out.push_back(',');
  }
  AppendKey(out, "requestContext");
  out.push_back('{');
  AppendContextIds(out, ctx);
  out.append(R"(,"http":{"method":)");
  AppendJsonString(out, request.method);
  out.append(R"(,"path":)");
  AppendJsonString(out, request.path.empty() ? std::string_view("/") : std::string_view(request.path));
  out.append(R"(,"protocol":)");
  out.append(ProtocolJson(request));
  out.append(R"(,"sourceIp":)");
  AppendJsonString(out, request.remote_addr);
  out.append(R"(,"userAgent":)");
  AppendJsonString(out, user_agent);
  out.append("},");
  AppendKey(out, "requestId");
  AppendJsonString(out, ctx.request_id);
  out.append(R"(,"routeKey":)");
  AppendJsonString(out, ctx.route_key);
  out.append(R"(,"stage":)");
  AppendJsonString(out, ctx.stage);
  out.append(R"(,"time":)");
  AppendJsonString(out, FormatRequestTime(ctx.time_epoch_ms));
  out.append(R"(,"timeEpoch":)");
  AppendUint(out, ctx.time_epoch_ms);
  out.append("},");
  if (!request.body.empty()) {
    AppendKey(out, "body");
    AppendBody(out, request.body, !body_as_text);
    out.push_back(',');
  }
  AppendKey(out, "isBase64Encoded");
  out.append(!request.body.empty() && !body_as_text ? "true" : "false");
  out.push_back('}');
  return out;
}

std::string BuildRestEvent(const net::HttpRequest& request, const RestEventContext& rctx) {
  const EventContext& ctx = rctx.base;
  // Headers keep the client's spelling (API Gateway's 1.0 event does); repeats of a name, in any
  // case, are one entry. The edge sets X-Forwarded-For/-Proto/-Port itself, as for 2.0.
  NameLists headers;
  std::string_view user_agent;
  std::string xff;
  for (const auto& [name, value] : request.headers) {
    if (EqualsIgnoreCase(name, "user-agent") && user_agent.empty()) user_agent = value;
    if (EqualsIgnoreCase(name, "x-forwarded-proto") || EqualsIgnoreCase(name, "x-forwarded-port")) continue;
    if (EqualsIgnoreCase(name, "x-forwarded-for")) {
      if (!xff.empty()) xff.append(", ");
      xff.append(value);
      continue;
    }
    AddToList(headers, name, value, true);
  }
  if (!request.remote_addr.empty()) {
    if (!xff.empty()) xff.append(", ");
    xff.append(request.remote_addr);
  }
  if (!xff.empty()) AddToList(headers, "X-Forwarded-For", xff, true);
  AddToList(headers, "X-Forwarded-Proto", std::string(ctx.forwarded_proto), true);
  if (ctx.forwarded_port != 0) AddToList(headers, "X-Forwarded-Port", std::to_string(ctx.forwarded_port), true);

  NameLists query;
  std::string_view q = request.query;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string key = PercentDecode(pair.substr(0, eq), true);
      std::string value = eq == std::string_view::npos ? std::string() : PercentDecode(pair.substr(eq + 1), true);
      AddToList(query, std::move(key), std::move(value), false);
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }

  std::string out;
  out.reserve(1024 + request.target.size() * 3 +
              (rctx.binary_body ? request.body.size() * 4 / 3 + 4 : request.body.size() + request.body.size() / 8) +
              request.headers.size() * 96);
  out.push_back('{');
  if (rctx.version_field) out.append(R"("version":"1.0",)");
  AppendKey(out, "resource");
  AppendJsonString(out, rctx.resource_path);
  out.push_back(',');
  AppendKey(out, "path");
  AppendJsonString(out, rctx.path.empty() ? std::string_view("/") : rctx.path);
  out.push_back(',');
  AppendKey(out, "httpMethod");
  AppendJsonString(out, request.method);
  out.push_back(',');
  AppendKey(out, "headers");
  AppendLastValues(out, headers);
  out.push_back(',');
  AppendKey(out, "multiValueHeaders");
  AppendAllValues(out, headers);
  out.push_back(',');
  AppendKey(out, "queryStringParameters");
  AppendLastValues(out, query);
  out.push_back(',');
  AppendKey(out, "multiValueQueryStringParameters");
  AppendAllValues(out, query);
  out.push_back(',');
  AppendKey(out, "pathParameters");
  if (ctx.path_parameters && !ctx.path_parameters->empty()) {
    AppendObject(out, *ctx.path_parameters);
  } else {
    out.append("null");
  }
  out.push_back(',');
  AppendKey(out, "stageVariables");
  if (ctx.stage_variables && !ctx.stage_variables->empty()) {
    AppendObject(out, *ctx.stage_variables);
  } else {
    out.append("null");
  }
  out.push_back(',');

  AppendKey(out, "requestContext");
  out.push_back('{');
  AppendContextIds(out, ctx);
  out.push_back(',');
  AppendKey(out, "extendedRequestId");
  AppendJsonString(out, ctx.request_id);
  out.push_back(',');
  AppendKey(out, "httpMethod");
  AppendJsonString(out, request.method);
  out.append(R"(,"identity":{"accessKey":null,"accountId":null,"caller":null,"cognitoAuthenticationProvider":null,)"
             R"("cognitoAuthenticationType":null,"cognitoIdentityId":null,"cognitoIdentityPoolId":null,)"
             R"("principalOrgId":null,"sourceIp":)");
  AppendJsonString(out, request.remote_addr);
  out.append(R"(,"user":null,"userAgent":)");
  AppendJsonString(out, user_agent);
  out.append(R"(,"userArn":null},)");
  AppendKey(out, "path");
  AppendJsonString(out, request.path.empty() ? std::string_view("/") : std::string_view(request.path));
  out.append(R"(,"protocol":)");
  out.append(ProtocolJson(request));
  out.push_back(',');
  AppendKey(out, "requestId");
  AppendJsonString(out, ctx.request_id);
  out.push_back(',');
  AppendKey(out, "requestTime");
  AppendJsonString(out, FormatRequestTime(ctx.time_epoch_ms));
  out.push_back(',');
  AppendKey(out, "requestTimeEpoch");
  AppendUint(out, ctx.time_epoch_ms);
  out.push_back(',');
  AppendKey(out, "resourceId");
  AppendJsonString(out, rctx.resource_id);
  out.push_back(',');
  AppendKey(out, "resourcePath");
  AppendJsonString(out, rctx.resource_path);
  out.push_back(',');
  AppendKey(out, "stage");
  AppendJsonString(out, ctx.stage);
  out.append("},");

  AppendKey(out, "body");
  if (request.body.empty()) {
    out.append("null");
  } else {
    AppendBody(out, request.body, rctx.binary_body);
  }
  out.push_back(',');
  AppendKey(out, "isBase64Encoded");
  out.append(rctx.binary_body && !request.body.empty() ? "true" : "false");
  out.push_back('}');
  return out;
}

}  // namespace geysir::gateway
