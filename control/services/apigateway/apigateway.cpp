// The "apigateway" service's HTTP side: routing of API Gateway's rest-json paths (v1 and v2)
// to the model, JSON-patch updates, and the response shapes botocore reads (v1 lists under
// "item", v2 lists under "items"; v1 dates in epoch seconds, v2 in ISO 8601).
#include "control/services/apigateway/apigateway.h"

#include <charconv>

#include "control/db.h"
#include "control/services/lambda/lambda_api.h"
#include "control/services/apigateway/apigateway_internal.h"
#include "control/store.h"
#include "base/log.h"
#include "base/json_bounds.h"

namespace geysir::control {
namespace {

using apigw::BadRequest;
using apigw::Conflict;
using apigw::json;
using apigw::NotFound;

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < path.size()) {
    if (path[start] == '/') {
      ++start;
      continue;
    }
    size_t slash = path.find('/', start);
    std::string_view seg = path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    out.push_back(net::PercentDecode(seg, false));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

json Body(const net::HttpRequest& req) {
  if (req.body.empty()) return json::object();
  json j = ParseUntrustedJsonOrDiscarded(req.body);
  if (j.is_discarded() || !j.is_object()) throw ApiException(BadRequest("The request body is not a JSON object"));
  return j;
}

std::string Str(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return "";
  if (!it->is_string()) throw ApiException(BadRequest(std::string("Invalid value for ") + key + ": expected a string"));
  return it->get<std::string>();
}

bool Bool(const json& body, const char* key, bool def) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return def;
  if (!it->is_boolean()) throw ApiException(BadRequest(std::string("Invalid value for ") + key + ": expected a boolean"));
  return it->get<bool>();
}

std::optional<int64_t> Int(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) throw ApiException(BadRequest(std::string("Invalid value for ") + key + ": expected an integer"));
  return it->get<int64_t>();
}

std::map<std::string, std::string> StrMap(const json& body, const char* key) {
  std::map<std::string, std::string> out;
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return out;
  if (!it->is_object()) throw ApiException(BadRequest(std::string("Invalid value for ") + key + ": expected a map"));
  for (const auto& [k, v] : it->items()) {
    if (!v.is_string()) throw ApiException(BadRequest(std::string("Invalid value for ") + key + "." + k));
    out[k] = v.get<std::string>();
  }
  return out;
}

std::vector<std::string> StrList(const json& body, const char* key) {
  std::vector<std::string> out;
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return out;
  if (!it->is_array()) throw ApiException(BadRequest(std::string("Invalid value for ") + key + ": expected a list"));
  for (const auto& v : *it) {
    if (!v.is_string()) throw ApiException(BadRequest(std::string("Invalid value for ") + key + ": expected strings"));
    out.push_back(v.get<std::string>());
  }
  return out;
}

net::HttpResponse Reply(int status, const json& body, const std::string& rid) {
  net::HttpResponse r;
  r.status = status;
  r.headers = {{"Content-Type", "application/json"}, {"x-amzn-RequestId", rid}};
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

net::HttpResponse Empty(int status, const std::string& rid) {
  net::HttpResponse r;
  r.status = status;
  r.headers = {{"x-amzn-RequestId", rid}};
  return r;
}

// The stored objects without their nested children.
json RestApiView(json doc) {
  doc.erase("resources");
  doc.erase("deployments");
  doc.erase("stages");
  return doc;
}
json DeploymentView(json dep) {
  dep.erase("snapshot");
  return dep;
}
json HttpApiView(json doc) {
  doc.erase("integrations");
  doc.erase("routes");
  doc.erase("stages");
  return doc;
}
json ApiKeyView(json key, bool include_value) {
  if (!include_value) key.erase("value");
  return key;
}

// A JSON-pointer segment: "~1" is "/", "~0" is "~" (RFC 6901).
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '~' && i + 1 < s.size() && (s[i + 1] == '1' || s[i + 1] == '0')) {
      out.push_back(s[i + 1] == '1' ? '/' : '~');
      ++i;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

struct PatchOp {
  std::string op;
  std::string path;
  std::optional<std::string> value;  // absent for "remove" and for add /binaryMediaTypes/x
};

std::vector<PatchOp> PatchOps(const json& body) {
  std::vector<PatchOp> out;
  auto it = body.find("patchOperations");
  if (it == body.end() || it->is_null()) return out;
  if (!it->is_array()) throw ApiException(BadRequest("patchOperations must be a list"));
  for (const auto& o : *it) {
    if (!o.is_object()) throw ApiException(BadRequest("a patch operation must be an object"));
    PatchOp p;
    p.op = Str(o, "op");
    p.path = Str(o, "path");
    if (auto v = o.find("value"); v != o.end() && !v->is_null()) {
      if (!v->is_string()) throw ApiException(BadRequest("a patch operation's value must be a string"));
      p.value = v->get<std::string>();
    }
    if (p.op != "add" && p.op != "remove" && p.op != "replace" && p.op != "copy" && p.op != "move" && p.op != "test") {
      throw ApiException(BadRequest("Invalid patch operation specified: '" + p.op + "'"));
    }
    out.push_back(std::move(p));
  }
  return out;
}

[[noreturn]] void BadPatch(const PatchOp& p) {
  throw ApiException(BadRequest("Invalid patch path '" + p.path + "' specified for op '" + p.op + "'"));
}

bool ParseBoolValue(const PatchOp& p) {
  if (p.value == "true" || p.value == "TRUE" || p.value == "True") return true;
  if (p.value == "false" || p.value == "FALSE" || p.value == "False") return false;
  throw ApiException(BadRequest("Invalid boolean value '" + p.value.value_or("") + "' for " + p.path));
}

int64_t ParseIntValue(const PatchOp& p) {
  const std::string v = p.value.value_or("");
  int64_t out = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || ptr != v.data() + v.size()) {
    throw ApiException(BadRequest("Invalid value '" + v + "' for " + p.path + ": expected an integer"));
  }
  return out;
}

std::string Required(const PatchOp& p) {
  if (!p.value) throw ApiException(BadRequest("Patch operation '" + p.op + "' on " + p.path + " requires a value"));
  return *p.value;
}

// UpdateRestApi's patch paths.
void PatchRestApi(json& doc, const std::vector<PatchOp>& ops) {
  for (const PatchOp& p : ops) {
    if (p.path.rfind("/binaryMediaTypes/", 0) == 0) {
      std::string type = Unescape(p.path.substr(18));
      if (type.empty()) BadPatch(p);
      json& list = doc["binaryMediaTypes"];
      if (!list.is_array()) list = json::array();
      auto found = std::find(list.begin(), list.end(), type);
      if (p.op == "add") {
        if (found == list.end()) list.push_back(type);
      } else if (p.op == "remove") {
        if (found != list.end()) list.erase(found);
        if (list.empty()) doc.erase("binaryMediaTypes");
      } else if (p.op == "replace") {
        // replace /binaryMediaTypes/old with value new
        std::string to = Unescape(Required(p));
        if (found == list.end()) throw ApiException(BadRequest("Invalid patch: binary media type '" + type + "' is not set"));
        *found = to;
      } else {
        BadPatch(p);
      }
    } else if (p.path == "/minimumCompressionSize") {
      if (p.op == "remove" || (p.op == "replace" && (!p.value || p.value->empty()))) {
        doc.erase("minimumCompressionSize");
      } else if (p.op == "replace" || p.op == "add") {
        int64_t v = ParseIntValue(p);
        if (v < 0 || v > 10485760) {
          throw ApiException(BadRequest("Invalid minimumCompressionSize " + *p.value + ": must be between 0 and 10485760"));
        }
        doc["minimumCompressionSize"] = v;
      } else {
        BadPatch(p);
      }
    } else if (p.path == "/name" && p.op == "replace") {
      std::string v = Required(p);
      if (v.empty()) throw ApiException(BadRequest("name must not be empty"));
      doc["name"] = v;
    } else if (p.path == "/description" && p.op == "replace") {
      doc["description"] = p.value.value_or("");
    } else if (p.path == "/apiKeySource" && p.op == "replace") {
      std::string v = Required(p);
      if (v != "HEADER" && v != "AUTHORIZER") throw ApiException(BadRequest("Invalid apiKeySource " + v));
      doc["apiKeySource"] = v;
    } else if (p.path == "/disableExecuteApiEndpoint" && p.op == "replace") {
      doc["disableExecuteApiEndpoint"] = ParseBoolValue(p);
    } else if (p.path.rfind("/endpointConfiguration/types/", 0) == 0 && p.op == "replace") {
      doc["endpointConfiguration"]["types"] = json::array({Required(p)});
    } else {
      BadPatch(p);
    }
  }
}

// UpdateStage's patch paths: stage fields, /variables/NAME, and method settings
// "/{resource path}/{method}/{setting}" ("/*/*/logging/loglevel" for all methods).
void PatchStage(json& stage, const std::vector<PatchOp>& ops, int64_t now_s) {
  static const std::map<std::string, std::pair<const char*, char>> kSettings = {
      // patch suffix -> (methodSettings field, type: b=bool, i=int, d=double, s=string)
      {"logging/loglevel", {"loggingLevel", 's'}},
      {"logging/dataTrace", {"dataTraceEnabled", 'b'}},
      {"metrics/enabled", {"metricsEnabled", 'b'}},
      {"caching/enabled", {"cachingEnabled", 'b'}},
      {"caching/ttlInSeconds", {"cacheTtlInSeconds", 'i'}},
      {"caching/dataEncrypted", {"cacheDataEncrypted", 'b'}},
      {"caching/requireAuthorizationForCacheControl", {"requireAuthorizationForCacheControl", 'b'}},
      {"caching/unauthorizedCacheControlHeaderStrategy", {"unauthorizedCacheControlHeaderStrategy", 's'}},
      {"throttling/burstLimit", {"throttlingBurstLimit", 'i'}},
      {"throttling/rateLimit", {"throttlingRateLimit", 'd'}},
  };
  for (const PatchOp& p : ops) {
    if (p.path.rfind("/variables/", 0) == 0) {
      std::string name = Unescape(p.path.substr(11));
      if (name.empty()) BadPatch(p);
      if (p.op == "remove") {
        if (stage.contains("variables")) stage["variables"].erase(name);
      } else if (p.op == "replace" || p.op == "add") {
        stage["variables"][name] = Required(p);
      } else {
        BadPatch(p);
      }
      continue;
    }
    if (p.op != "replace") BadPatch(p);
    if (p.path == "/description") {
      stage["description"] = p.value.value_or("");
    } else if (p.path == "/deploymentId") {
      stage["deploymentId"] = Required(p);  // checked by the caller against the deployments
    } else if (p.path == "/cacheClusterEnabled") {
      stage["cacheClusterEnabled"] = ParseBoolValue(p);
    } else if (p.path == "/cacheClusterSize") {
      stage["cacheClusterSize"] = Required(p);
    } else if (p.path == "/tracingEnabled") {
      stage["tracingEnabled"] = ParseBoolValue(p);
    } else {
      // "/{resource path}/{method}/{a}/{b}": the last two segments name the setting.
      std::string path = p.path.substr(1);
      size_t last = path.rfind('/');
      size_t second = last == std::string::npos || last == 0 ? std::string::npos : path.rfind('/', last - 1);
      if (second == std::string::npos) BadPatch(p);
      auto setting = kSettings.find(path.substr(second + 1));
      if (setting == kSettings.end()) BadPatch(p);
      std::string key = Unescape(path.substr(0, second));
      if (key.empty() || key.find('/') == std::string::npos) BadPatch(p);
      if (key.front() == '/') key.erase(0, 1);
      json& ms = stage["methodSettings"][key];
      switch (setting->second.second) {
        case 'b': ms[setting->second.first] = ParseBoolValue(p); break;
        case 'i': ms[setting->second.first] = ParseIntValue(p); break;
        case 'd': {
          std::string v = Required(p);
          char* end = nullptr;
          double d = std::strtod(v.c_str(), &end);
          if (end == v.c_str() || *end != '\0') throw ApiException(BadRequest("Invalid number '" + v + "' for " + p.path));
          ms[setting->second.first] = d;
          break;
        }
        default: ms[setting->second.first] = Required(p); break;
      }
    }
  }
  stage["lastUpdatedDate"] = now_s;
}

void PatchIntegration(json& integ, const std::vector<PatchOp>& ops) {
  for (const PatchOp& p : ops) {
    if (p.op == "replace" && p.path == "/uri") {
      integ["uri"] = Required(p);
    } else if (p.op == "replace" && p.path == "/httpMethod") {
      integ["httpMethod"] = Required(p);
    } else if (p.op == "replace" && p.path == "/passthroughBehavior") {
      integ["passthroughBehavior"] = Required(p);
    } else if (p.op == "replace" && p.path == "/credentials") {
      integ["credentials"] = p.value.value_or("");
    } else if (p.op == "replace" && p.path == "/timeoutInMillis") {
      integ["timeoutInMillis"] = ParseIntValue(p);
    } else if (p.path == "/contentHandling" && (p.op == "replace" || p.op == "remove")) {
      if (p.op == "remove" || !p.value || p.value->empty()) {
        integ.erase("contentHandling");
      } else if (*p.value == "CONVERT_TO_TEXT" || *p.value == "CONVERT_TO_BINARY") {
        integ["contentHandling"] = *p.value;
      } else {
        throw ApiException(BadRequest("Invalid contentHandling " + *p.value));
      }
    } else if (p.path.rfind("/requestParameters/", 0) == 0 || p.path.rfind("/requestTemplates/", 0) == 0) {
      std::string field = p.path.rfind("/requestParameters/", 0) == 0 ? "requestParameters" : "requestTemplates";
      std::string key = Unescape(p.path.substr(field.size() + 2));
      if (p.op == "remove") {
        if (integ.contains(field)) integ[field].erase(key);
      } else {
        integ[field][key] = Required(p);
      }
    } else {
      BadPatch(p);
    }
  }
}

json ListOf(const std::vector<json>& items, const char* key) {
  json list = json::array();
  for (const auto& i : items) list.push_back(i);
  return json{{key, std::move(list)}};
}

}  // namespace

ApiGatewayService::ApiGatewayService(ServiceHost& host, DomainRegistry& domains)
    : host_(host), domains_(domains), model_(host) {}

Status ApiGatewayService::Start() {
  return model_.Migrate();
}

net::HttpResponse ApiGatewayService::ErrorResponse(const AwsError& error, const std::string& request_id) const {
  net::HttpResponse r;
  r.status = error.http_status;
  std::string type = error.type;
  // Errors made outside this service (signature checks, Lambda-typed helpers) keep their type;
  // API Gateway reports unknown paths as NotFoundException.
  if (type == "UnknownOperationException") type = "NotFoundException";
  r.headers = {{"Content-Type", "application/json"}, {"x-amzn-RequestId", request_id}, {"x-amzn-ErrorType", type}};
  r.body = json{{"message", error.message}}.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

void ApiGatewayService::ContributeRoutes(proto::RouteTable& table) {
  try {
    model_.impl().ContributeRoutes(table);
  } catch (const std::exception& e) {
    // The function URL part of the table still goes out; the APIs are logged as missing.
    log::Error("apigateway_routes_failed", {{"what", e.what()}});
  }
}

Status ApiGatewayService::Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) {
  HandleOrThrow(req, resp, info);
  return Status::Ok();
}

void ApiGatewayService::HandleOrThrow(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) {
  apigw::ApiGatewayModel::Impl& m = model_.impl();
  const std::string& rid = info.request_id;
  const std::string& method = req.method;
  std::vector<std::string> seg = SplitPath(req.path);
  auto query = ParseQuery(req.query);
  auto send = [&](int status, const json& body) { resp->Send(Reply(status, body, rid)); };
  auto unknown = [&]() {
    AwsError e = NotFound("No API Gateway operation " + method + " " + req.path);
    e.type = "NotFoundException";
    throw ApiException(e);
  };
  const size_t n = seg.size();
  if (apigw::HandleDomainNames(m, domains_, req, seg, resp, rid)) return;  // custom domains, v1 and v2

  // ------------------------------------------------------------------ v2: /v2/apis...
  if (n >= 2 && seg[0] == "v2" && seg[1] == "apis") {
    if (n == 2) {
      if (method == "GET") return send(200, ListOf([&] {
        std::vector<json> out;
        for (auto& d : m.List(apigw::kHttp)) out.push_back(HttpApiView(d));
        return out;
      }(), "items"));
      if (method == "POST") {
        json b = Body(req);
        apigw::HttpApiInput in;
        in.name = Str(b, "name");
        in.description = Str(b, "description");
        in.protocol_type = b.contains("protocolType") ? Str(b, "protocolType") : "HTTP";
        in.tags = StrMap(b, "tags");
        std::string id = ValueOrThrow(model_.CreateHttpApi(in));
        // Quick create: a target makes the integration, the $default route and stage.
        if (std::string target = Str(b, "target"); !target.empty()) {
          apigw::V2IntegrationInput integ;
          integ.integration_uri = target;
          std::string iid = ValueOrThrow(model_.CreateV2Integration(id, integ));
          apigw::V2RouteInput route;
          route.route_key = b.contains("routeKey") ? Str(b, "routeKey") : "$default";
          route.target = "integrations/" + iid;
          ValueOrThrow(model_.CreateV2Route(id, route));
          apigw::V2StageInput stage;
          stage.stage_name = "$default";
          stage.auto_deploy = true;
          ThrowIfError(model_.CreateV2Stage(id, stage));
        }
        return send(201, HttpApiView(m.Load(id, apigw::kHttp)));
      }
      unknown();
    }
    const std::string& api = seg[2];
    if (n == 3) {
      if (method == "GET") return send(200, HttpApiView(m.Load(api, apigw::kHttp)));
      if (method == "DELETE") {
        if (!ValueOrThrow(model_.DeleteHttpApi(api))) m.Load(api, apigw::kHttp);  // throws NotFound
        return resp->Send(Empty(204, rid));
      }
      if (method == "PATCH") {
        json b = Body(req);
        json doc = m.Mutate(api, apigw::kHttp, [&](json& d) {
          if (b.contains("name")) d["name"] = Str(b, "name");
          if (b.contains("description")) d["description"] = Str(b, "description");
        }, false);
        return send(200, HttpApiView(doc));
      }
      unknown();
    }
    const std::string& coll = seg[3];
    auto children = [&](const char* field) {
      json doc = m.Load(api, apigw::kHttp);
      std::vector<json> out;
      for (auto& [k, v] : doc[field].items()) out.push_back(v);
      return out;
    };
    auto child = [&](const char* field, const std::string& id, const char* what) {
      json doc = m.Load(api, apigw::kHttp);
      auto it = doc[field].find(id);
      if (it == doc[field].end()) throw ApiException(NotFound("Invalid " + std::string(what) + " identifier specified " + id));
      return *it;
    };
    if (coll == "integrations") {
      if (n == 4 && method == "GET") return send(200, ListOf(children("integrations"), "items"));
      if (n == 4 && method == "POST") {
        json b = Body(req);
        apigw::V2IntegrationInput in;
        in.integration_type = Str(b, "integrationType");
        in.integration_uri = Str(b, "integrationUri");
        if (b.contains("integrationMethod")) in.integration_method = Str(b, "integrationMethod");
        if (b.contains("payloadFormatVersion")) in.payload_format_version = Str(b, "payloadFormatVersion");
        in.timeout_ms = Int(b, "timeoutInMillis");
        std::string id = ValueOrThrow(model_.CreateV2Integration(api, in));
        return send(201, child("integrations", id, "Integration"));
      }
      if (n == 5 && method == "GET") return send(200, child("integrations", seg[4], "Integration"));
      if (n == 5 && method == "DELETE") {
        if (!ValueOrThrow(model_.DeleteV2Integration(api, seg[4]))) child("integrations", seg[4], "Integration");
        return resp->Send(Empty(204, rid));
      }
      unknown();
    }
    if (coll == "routes") {
      if (n == 4 && method == "GET") return send(200, ListOf(children("routes"), "items"));
      if (n == 4 && method == "POST") {
        json b = Body(req);
        apigw::V2RouteInput in;
        in.route_key = Str(b, "routeKey");
        in.target = Str(b, "target");
        if (b.contains("authorizationType")) in.authorization_type = Str(b, "authorizationType");
        in.api_key_required = Bool(b, "apiKeyRequired", false);
        std::string id = ValueOrThrow(model_.CreateV2Route(api, in));
        return send(201, child("routes", id, "Route"));
      }
      if (n == 5 && method == "GET") return send(200, child("routes", seg[4], "Route"));
      if (n == 5 && method == "DELETE") {
        if (!ValueOrThrow(model_.DeleteV2Route(api, seg[4]))) child("routes", seg[4], "Route");
        return resp->Send(Empty(204, rid));
      }
      unknown();
    }
    if (coll == "stages") {
      if (n == 4 && method == "GET") return send(200, ListOf(children("stages"), "items"));
      if (n == 4 && method == "POST") {
        json b = Body(req);
        apigw::V2StageInput in;
        in.stage_name = Str(b, "stageName");
        in.auto_deploy = Bool(b, "autoDeploy", false);
        in.description = Str(b, "description");
        in.variables = StrMap(b, "stageVariables");
        ThrowIfError(model_.CreateV2Stage(api, in));
        return send(201, child("stages", in.stage_name, "Stage"));
      }
      if (n == 5 && method == "GET") return send(200, child("stages", seg[4], "Stage"));
      if (n == 5 && method == "DELETE") {
        if (!ValueOrThrow(model_.DeleteV2Stage(api, seg[4]))) child("stages", seg[4], "Stage");
        return resp->Send(Empty(204, rid));
      }
      unknown();
    }
    unknown();
  }

  // ------------------------------------------------------------------ v1: /apikeys
  if (n >= 1 && seg[0] == "apikeys") {
    if (n == 1 && method == "GET") {
      bool values = query.count("includeValues") && query["includeValues"] == "true";
      std::string name = query.count("name") ? query["name"] : "";
      std::vector<json> out;
      for (auto& k : m.ListKeys("apigw_api_keys")) {
        if (!name.empty() && k.value("name", "").rfind(name, 0) != 0) continue;
        out.push_back(ApiKeyView(k, values));
      }
      return send(200, ListOf(out, "item"));
    }
    if (n == 1 && method == "POST") {
      json b = Body(req);
      std::string id = m.NewId(10);
      std::string value = Str(b, "value");
      if (value.empty()) value = RandomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
      if (value.size() < 20) throw ApiException(BadRequest("API Key value should be at least 20 characters"));
      for (auto& k : m.ListKeys("apigw_api_keys")) {
        if (k.value("value", "") == value) throw ApiException(Conflict("API Key already exists"));
      }
      json key = {{"id", id},
                  {"value", value},
                  {"name", Str(b, "name")},
                  {"enabled", Bool(b, "enabled", false)},
                  {"createdDate", m.NowS()},
                  {"lastUpdatedDate", m.NowS()},
                  {"stageKeys", json::array()}};
      if (b.contains("description")) key["description"] = Str(b, "description");
      if (b.contains("customerId")) key["customerId"] = Str(b, "customerId");
      if (auto sk = b.find("stageKeys"); sk != b.end() && sk->is_array()) {
        for (const auto& s : *sk) {
          if (!s.is_object()) continue;
          std::string api = Str(s, "restApiId"), stage = Str(s, "stageName");
          json doc = m.Load(api, apigw::kRest);
          if (!doc["stages"].contains(stage)) throw ApiException(NotFound("Invalid Stage identifier specified"));
          key["stageKeys"].push_back(api + "/" + stage);
        }
      }
      if (b.contains("tags")) key["tags"] = StrMap(b, "tags");
      m.PutKey("apigw_api_keys", id, key);
      host_.RoutesChanged();
      return send(201, key);
    }
    if (n == 2) {
      json key = m.LoadKey("apigw_api_keys", seg[1], "API Key");
      if (method == "GET") {
        bool values = query.count("includeValue") && query["includeValue"] == "true";
        return send(200, ApiKeyView(key, values));
      }
      if (method == "DELETE") {
        m.DeleteKey("apigw_api_keys", seg[1]);
        host_.RoutesChanged();
        return resp->Send(Empty(202, rid));
      }
      if (method == "PATCH") {
        for (const PatchOp& p : PatchOps(Body(req))) {
          if (p.op != "replace") BadPatch(p);
          if (p.path == "/name") key["name"] = Required(p);
          else if (p.path == "/description") key["description"] = p.value.value_or("");
          else if (p.path == "/enabled") key["enabled"] = ParseBoolValue(p);
          else if (p.path == "/customerId") key["customerId"] = p.value.value_or("");
          else BadPatch(p);
        }
        key["lastUpdatedDate"] = m.NowS();
        m.PutKey("apigw_api_keys", seg[1], key);
        host_.RoutesChanged();
        return send(200, ApiKeyView(key, false));
      }
    }
    unknown();
  }

  // ------------------------------------------------------------------ v1: /usageplans
  if (n >= 1 && seg[0] == "usageplans") {
    if (n == 1 && method == "GET") return send(200, ListOf(m.ListKeys("apigw_usage_plans"), "item"));
    if (n == 1 && method == "POST") {
      json b = Body(req);
      std::string id = m.NewId(6);
      json plan = {{"id", id}, {"name", Str(b, "name")}, {"apiStages", json::array()}, {"keys", json::array()}};
      if (b.contains("description")) plan["description"] = Str(b, "description");
      if (auto st = b.find("apiStages"); st != b.end() && st->is_array()) plan["apiStages"] = *st;
      if (auto t = b.find("throttle"); t != b.end() && t->is_object()) plan["throttle"] = *t;
      if (auto q = b.find("quota"); q != b.end() && q->is_object()) plan["quota"] = *q;
      m.PutKey("apigw_usage_plans", id, plan);
      plan.erase("keys");
      return send(201, plan);
    }
    if (n >= 2) {
      json plan = m.LoadKey("apigw_usage_plans", seg[1], "Usage Plan");
      if (n == 2 && method == "GET") {
        plan.erase("keys");
        return send(200, plan);
      }
      if (n == 2 && method == "DELETE") {
        m.DeleteKey("apigw_usage_plans", seg[1]);
        return resp->Send(Empty(202, rid));
      }
      if (n == 3 && seg[2] == "keys" && method == "POST") {
        json b = Body(req);
        json key = m.LoadKey("apigw_api_keys", Str(b, "keyId"), "API Key");
        plan["keys"].push_back(key["id"]);
        m.PutKey("apigw_usage_plans", seg[1], plan);
        return send(201, {{"id", key["id"]}, {"type", "API_KEY"}, {"value", key["value"]}, {"name", key.value("name", "")}});
      }
      if (n == 3 && seg[2] == "keys" && method == "GET") {
        std::vector<json> out;
        for (const auto& kid : plan["keys"]) {
          json key = m.LoadKey("apigw_api_keys", kid.get<std::string>(), "API Key");
          out.push_back({{"id", key["id"]}, {"type", "API_KEY"}, {"value", key["value"]}, {"name", key.value("name", "")}});
        }
        return send(200, ListOf(out, "item"));
      }
      if (n == 4 && seg[2] == "keys" && method == "DELETE") {
        json& keys = plan["keys"];
        auto it = std::find(keys.begin(), keys.end(), seg[3]);
        if (it == keys.end()) throw ApiException(NotFound("Invalid Usage Plan Key identifier specified"));
        keys.erase(it);
        m.PutKey("apigw_usage_plans", seg[1], plan);
        return resp->Send(Empty(202, rid));
      }
    }
    unknown();
  }

  // ------------------------------------------------------------------ v1: /restapis...
  if (n == 0 || seg[0] != "restapis") unknown();
  if (n == 1) {
    if (method == "GET") {
      std::vector<json> out;
      for (auto& d : m.List(apigw::kRest)) out.push_back(RestApiView(d));
      return send(200, ListOf(out, "item"));
    }
    if (method == "POST") {
      json b = Body(req);
      apigw::RestApiInput in;
      in.name = Str(b, "name");
      in.description = Str(b, "description");
      in.binary_media_types = StrList(b, "binaryMediaTypes");
      in.minimum_compression_size = Int(b, "minimumCompressionSize");
      if (b.contains("apiKeySource")) in.api_key_source = Str(b, "apiKeySource");
      if (auto ec = b.find("endpointConfiguration"); ec != b.end() && ec->is_object()) {
        in.endpoint_types = StrList(*ec, "types");
      }
      in.tags = StrMap(b, "tags");
      apigw::RestApiInfo made = ValueOrThrow(model_.CreateRestApi(in));
      return send(201, RestApiView(m.Load(made.id, apigw::kRest)));
    }
    unknown();
  }
  const std::string& api = seg[1];
  if (n == 2) {
    if (method == "GET") return send(200, RestApiView(m.Load(api, apigw::kRest)));
    if (method == "PATCH") {
      auto ops = PatchOps(Body(req));
      json doc = m.Mutate(api, apigw::kRest, [&](json& d) { PatchRestApi(d, ops); });
      return send(200, RestApiView(doc));
    }
    if (method == "DELETE") {
      if (!ValueOrThrow(model_.DeleteRestApi(api))) m.Load(api, apigw::kRest);  // throws NotFound
      return resp->Send(Empty(202, rid));
    }
    unknown();
  }
  const std::string& coll = seg[2];
  if (coll == "resources") {
    if (n == 3 && method == "GET") {
      json doc = m.Load(api, apigw::kRest);
      std::vector<json> out;
      for (auto& [k, r] : doc["resources"].items()) out.push_back(r);
      std::sort(out.begin(), out.end(),
                [](const json& a, const json& b) { return a.value("path", "") < b.value("path", ""); });
      return send(200, ListOf(out, "item"));
    }
    if (n < 4) unknown();
    const std::string& res = seg[3];
    if (n == 4) {
      if (method == "GET") {
        json doc = m.Load(api, apigw::kRest);
        return send(200, apigw::ApiGatewayModel::Impl::Resource(doc, res));
      }
      if (method == "POST") {
        json b = Body(req);
        std::string id = ValueOrThrow(model_.CreateResource(api, res, Str(b, "pathPart")));
        json doc = m.Load(api, apigw::kRest);
        return send(201, apigw::ApiGatewayModel::Impl::Resource(doc, id));
      }
      if (method == "DELETE") {
        if (!ValueOrThrow(model_.DeleteResource(api, res))) {
          json doc = m.Load(api, apigw::kRest);
          apigw::ApiGatewayModel::Impl::Resource(doc, res);  // throws NotFound
        }
        return resp->Send(Empty(202, rid));
      }
      unknown();
    }
    if (seg[4] != "methods" || n < 6) unknown();
    const std::string verb = apigw::CheckHttpMethod(seg[5]);
    auto load_method = [&]() {
      json doc = m.Load(api, apigw::kRest);
      return apigw::ApiGatewayModel::Impl::Method(doc, res, verb);
    };
    if (n == 6) {
      if (method == "PUT") {
        json b = Body(req);
        apigw::MethodInput in;
        if (b.contains("authorizationType")) in.authorization_type = Str(b, "authorizationType");
        in.api_key_required = Bool(b, "apiKeyRequired", false);
        ThrowIfError(model_.PutMethod(api, res, verb, in));
        return send(201, load_method());
      }
      if (method == "GET") return send(200, load_method());
      if (method == "DELETE") {
        if (!ValueOrThrow(model_.DeleteMethod(api, res, verb))) load_method();
        return resp->Send(Empty(204, rid));
      }
      unknown();
    }
    if (n == 7 && seg[6] == "integration") {
      auto load_integration = [&]() {
        json mth = load_method();
        auto it = mth.find("methodIntegration");
        if (it == mth.end()) throw ApiException(NotFound("Invalid Integration identifier specified"));
        return *it;
      };
      if (method == "PUT") {
        json b = Body(req);
        apigw::IntegrationInput in;
        in.type = Str(b, "type");
        in.integration_http_method = Str(b, "httpMethod");
        in.uri = Str(b, "uri");
        in.credentials = Str(b, "credentials");
        in.passthrough_behavior = Str(b, "passthroughBehavior");
        in.timeout_ms = Int(b, "timeoutInMillis");
        ThrowIfError(model_.PutIntegration(api, res, verb, in));
        return send(201, load_integration());
      }
      if (method == "GET") return send(200, load_integration());
      if (method == "PATCH") {
        auto ops = PatchOps(Body(req));
        json doc = m.Mutate(api, apigw::kRest, [&](json& d) {
          json& mth = apigw::ApiGatewayModel::Impl::Method(d, res, verb);
          if (!mth.contains("methodIntegration")) throw ApiException(NotFound("Invalid Integration identifier specified"));
          PatchIntegration(mth["methodIntegration"], ops);
        }, false);
        return send(200, apigw::ApiGatewayModel::Impl::Method(doc, res, verb)["methodIntegration"]);
      }
      if (method == "DELETE") {
        m.Mutate(api, apigw::kRest, [&](json& d) {
          json& mth = apigw::ApiGatewayModel::Impl::Method(d, res, verb);
          if (mth.erase("methodIntegration") == 0) throw ApiException(NotFound("Invalid Integration identifier specified"));
        }, false);
        return resp->Send(Empty(204, rid));
      }
    }
    unknown();
  }
  if (coll == "deployments") {
    if (n == 3 && method == "POST") {
      json b = Body(req);
      apigw::DeploymentInput in;
      in.stage_name = Str(b, "stageName");
      in.stage_description = Str(b, "stageDescription");
      in.description = Str(b, "description");
      in.variables = StrMap(b, "variables");
      std::string id = ValueOrThrow(model_.CreateDeployment(api, in));
      json doc = m.Load(api, apigw::kRest);
      return send(201, DeploymentView(doc["deployments"][id]));
    }
    if (n == 3 && method == "GET") {
      json doc = m.Load(api, apigw::kRest);
      std::vector<json> out;
      for (auto& [k, d] : doc["deployments"].items()) out.push_back(DeploymentView(d));
      return send(200, ListOf(out, "item"));
    }
    if (n == 4) {
      if (method == "GET") {
        json doc = m.Load(api, apigw::kRest);
        auto it = doc["deployments"].find(seg[3]);
        if (it == doc["deployments"].end()) throw ApiException(NotFound("Invalid Deployment identifier specified"));
        return send(200, DeploymentView(*it));
      }
      if (method == "DELETE") {
        if (!ValueOrThrow(model_.DeleteDeployment(api, seg[3]))) {
          m.Load(api, apigw::kRest);
          throw ApiException(NotFound("Invalid Deployment identifier specified"));
        }
        return resp->Send(Empty(202, rid));
      }
    }
    unknown();
  }
  if (coll == "stages") {
    if (n == 3 && method == "GET") {
      json doc = m.Load(api, apigw::kRest);
      std::string dep = query.count("deploymentId") ? query["deploymentId"] : "";
      json items = json::array();
      for (auto& [k, s] : doc["stages"].items()) {
        if (dep.empty() || s.value("deploymentId", "") == dep) items.push_back(s);
      }
      return send(200, json{{"item", items}});
    }
    if (n == 3 && method == "POST") {
      json b = Body(req);
      std::string name = Str(b, "stageName");
      ThrowIfError(model_.CreateStage(api, name, Str(b, "deploymentId"), Str(b, "description"), StrMap(b, "variables")));
      json doc = m.Load(api, apigw::kRest);
      return send(201, doc["stages"][name]);
    }
    if (n == 4) {
      const std::string& name = seg[3];
      auto not_found = [] { return ApiException(NotFound("Invalid Stage identifier specified")); };
      if (method == "GET") {
        json doc = m.Load(api, apigw::kRest);
        auto it = doc["stages"].find(name);
        if (it == doc["stages"].end()) throw not_found();
        return send(200, *it);
      }
      if (method == "PATCH") {
        auto ops = PatchOps(Body(req));
        json doc = m.Mutate(api, apigw::kRest, [&](json& d) {
          auto it = d["stages"].find(name);
          if (it == d["stages"].end()) throw not_found();
          PatchStage(*it, ops, m.NowS());
          if (!d["deployments"].contains(it->value("deploymentId", ""))) {
            throw ApiException(BadRequest("Invalid deploymentId specified"));
          }
        });
        return send(200, doc["stages"][name]);
      }
      if (method == "DELETE") {
        if (!ValueOrThrow(model_.DeleteStage(api, name))) {
          m.Load(api, apigw::kRest);
          throw not_found();
        }
        return resp->Send(Empty(202, rid));
      }
    }
    unknown();
  }
  unknown();
}

}  // namespace geysir::control
