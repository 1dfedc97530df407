// ApiGatewayModel: storage of API Gateway objects, the C++ entry points CloudFormation calls,
// and the gateway's route table built from them. See apigateway_model.h and
// apigateway_internal.h (why each API is one JSON document).
#include "control/services/apigateway/apigateway_model.h"

#include <algorithm>
#include <set>

#include "control/code_store.h"
#include "control/db.h"
#include "control/services/lambda/lambda_api.h"
#include "control/service.h"
#include "control/services/apigateway/apigateway_internal.h"
#include "control/services/protocol.h"
#include "control/store.h"

namespace geysir::control::apigw {
namespace {

const std::vector<Migration>& Steps() {
  static const std::vector<Migration> kSteps = {
      {1, "API Gateway APIs, API keys, usage plans", R"sql(
CREATE TABLE apigw_apis (
  id         TEXT PRIMARY KEY NOT NULL,
  kind       TEXT NOT NULL,            -- 'rest' | 'http'
  name       TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  doc        TEXT NOT NULL             -- the whole API as JSON (apigateway_internal.h)
);
CREATE TABLE apigw_api_keys (
  id  TEXT PRIMARY KEY NOT NULL,
  doc TEXT NOT NULL
);
CREATE TABLE apigw_usage_plans (
  id  TEXT PRIMARY KEY NOT NULL,
  doc TEXT NOT NULL
);
)sql"},
  };
  return kSteps;
}

bool IsLambdaProxy(const std::string& type) { return type == "AWS_PROXY"; }

}  // namespace

AwsError NotFound(std::string message) { return MakeAwsError(404, "NotFoundException", std::move(message)); }
AwsError BadRequest(std::string message) { return MakeAwsError(400, "BadRequestException", std::move(message)); }
AwsError Conflict(std::string message) { return MakeAwsError(409, "ConflictException", std::move(message)); }
Status NotFoundStatus(std::string message) { return Status::NotFound(std::move(message)).WithAwsType("NotFoundException"); }
Status BadRequestStatus(std::string message) { return Status::Invalid(std::move(message)).WithAwsType("BadRequestException"); }
Status ConflictStatus(std::string message) { return Status::Conflict(std::move(message)).WithAwsType("ConflictException"); }

Result<std::string> HttpMethodOf(const std::string& method) {
  std::string m = method;
  for (char& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::set<std::string> kVerbs = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"};
  if (!kVerbs.count(m)) {
    return BadRequestStatus("Invalid HttpMethod specified. Valid options are GET,PUT,POST,DELETE,PATCH,OPTIONS,HEAD,ANY");
  }
  return m;
}

Status ValidatePathPart(const std::string& part) {
  if (part.empty() || part.find('/') != std::string::npos) {
    return BadRequestStatus("Resource's path part must be a non-empty string without '/': '" + part + "'");
  }
  if (part.front() == '{' || part.back() == '}') {
    bool ok = part.size() > 2 && part.front() == '{' && part.back() == '}';
    std::string inner = ok ? part.substr(1, part.size() - 2) : "";
    if (!inner.empty() && inner.back() == '+') inner.pop_back();
    for (char c : inner) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) ok = false;
    }
    if (!ok || inner.empty()) {
      return BadRequestStatus("Resource's path part only allow a-zA-Z0-9._- and curly braces at the beginning "
                              "and the end and an optional plus sign before the closing brace: '" + part + "'");
    }
  }
  return Status::Ok();
}

Result<std::pair<std::string, std::string>> RouteKeyOf(const std::string& route_key) {
  using Parsed = std::pair<std::string, std::string>;
  if (route_key == "$default") return Parsed{"ANY", "$default"};
  size_t sp = route_key.find(' ');
  if (sp == std::string::npos || sp + 1 >= route_key.size() || route_key[sp + 1] != '/') {
    return BadRequestStatus("Invalid route key: '" + route_key + "'. Expected '$default' or 'METHOD /path'.");
  }
  Result<std::string> method = HttpMethodOf(route_key.substr(0, sp));
  if (!method.ok()) return method.status();
  std::string path = route_key.substr(sp + 1);
  if (path.size() > 1) {
    size_t start = 1;
    while (start <= path.size()) {
      size_t slash = path.find('/', start);
      std::string part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      GEYSIR_RETURN_IF_ERROR(ValidatePathPart(part));
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
  }
  return Parsed{std::move(method).value(), path};
}

std::string CheckHttpMethod(const std::string& method) { return ValueOrThrow(HttpMethodOf(method)); }
void CheckPathPart(const std::string& part) { ThrowIfError(ValidatePathPart(part)); }
std::pair<std::string, std::string> ParseRouteKey(const std::string& route_key) {
  return ValueOrThrow(RouteKeyOf(route_key));
}

std::string FunctionArnFromUri(const std::string& uri) {
  static constexpr std::string_view kMarker = ":lambda:path/2015-03-31/functions/";
  if (uri.rfind("arn:aws:apigateway:", 0) == 0) {
    size_t at = uri.find(kMarker);
    if (at == std::string::npos) return "";
    std::string rest = uri.substr(at + kMarker.size());
    size_t end = rest.rfind("/invocations");
    return end == std::string::npos ? "" : rest.substr(0, end);
  }
  if (uri.rfind("arn:aws:lambda:", 0) == 0) return uri;
  return "";
}

// ---------------------------------------------------------------------------------------------
// Impl: storage

std::string ApiGatewayModel::Impl::NewId(size_t n) const {
  return RandomString(n, "abcdefghijklmnopqrstuvwxyz0123456789");
}
int64_t ApiGatewayModel::Impl::NowS() const { return host.NowMs() / 1000; }
std::string ApiGatewayModel::Impl::NowIso() const {
  std::string t = IsoTimestamp(host.NowMs());  // "...:00.000Z": AWS's v2 dates have no fraction
  if (t.size() == 24) t = t.substr(0, 19) + "Z";
  return t;
}
std::string ApiGatewayModel::Impl::Account() const { return host.api().account_id; }

Result<json> ApiGatewayModel::Impl::Find(const std::string& id, std::string_view kind) {
  auto st = host.store().db().Prepare("SELECT doc FROM apigw_apis WHERE id = ? AND kind = ?");
  st.BindAll(id, std::string(kind));
  if (!st.Step()) return NotFoundStatus("Invalid API identifier specified " + Account() + ":" + id);
  return json::parse(st.Text(0));
}

json ApiGatewayModel::Impl::Load(const std::string& id, std::string_view kind) { return ValueOrThrow(Find(id, kind)); }

std::vector<json> ApiGatewayModel::Impl::List(std::string_view kind) {
  auto st = host.store().db().Prepare("SELECT doc FROM apigw_apis WHERE kind = ? ORDER BY created_ms, id");
  st.Bind(1, std::string(kind));
  std::vector<json> out;
  while (st.Step()) out.push_back(json::parse(st.Text(0)));
  return out;
}

void ApiGatewayModel::Impl::Insert(const std::string& id, std::string_view kind, const std::string& name,
                                   const json& doc) {
  auto st = host.store().db().Prepare("INSERT INTO apigw_apis (id, kind, name, created_ms, doc) VALUES (?,?,?,?,?)");
  st.BindAll(id, std::string(kind), name, host.NowMs(), doc.dump());
  st.Run();
}

json ApiGatewayModel::Impl::Mutate(const std::string& id, std::string_view kind, const std::function<void(json&)>& fn,
                                   bool routing) {
  json doc;
  {
    Transaction tx(host.store().db());
    doc = Load(id, kind);
    fn(doc);  // may throw: the transaction rolls back and nothing is written
    auto st = host.store().db().Prepare("UPDATE apigw_apis SET doc = ? WHERE id = ?");
    st.BindAll(doc.dump(), id);
    st.Run();
    tx.Commit();
  }
  if (routing) host.RoutesChanged();
  return doc;
}

Result<json> ApiGatewayModel::Impl::Change(const std::string& id, std::string_view kind,
                                           const std::function<Status(json&)>& fn, bool routing) {
  json doc;
  {
    Transaction tx(host.store().db());
    Result<json> found = Find(id, kind);
    if (!found.ok()) return found.status();
    doc = std::move(found).value();
    GEYSIR_RETURN_IF_ERROR(fn(doc));  // a refusal: the transaction rolls back, nothing is written
    auto st = host.store().db().Prepare("UPDATE apigw_apis SET doc = ? WHERE id = ?");
    st.BindAll(doc.dump(), id);
    st.Run();
    tx.Commit();
  }
  if (routing) host.RoutesChanged();
  return doc;
}

bool ApiGatewayModel::Impl::Delete(const std::string& id, std::string_view kind) {
  auto st = host.store().db().Prepare("DELETE FROM apigw_apis WHERE id = ? AND kind = ?");
  st.BindAll(id, std::string(kind));
  bool gone = st.Run() > 0;
  if (gone) host.RoutesChanged();
  return gone;
}

json ApiGatewayModel::Impl::LoadKey(const std::string& table, const std::string& id, const std::string& what) {
  auto st = host.store().db().Prepare("SELECT doc FROM " + table + " WHERE id = ?");
  st.Bind(1, id);
  if (!st.Step()) throw ApiException(NotFound("Invalid " + what + " identifier specified"));
  return json::parse(st.Text(0));
}

std::vector<json> ApiGatewayModel::Impl::ListKeys(const std::string& table) {
  auto st = host.store().db().Prepare("SELECT doc FROM " + table + " ORDER BY rowid");
  std::vector<json> out;
  while (st.Step()) out.push_back(json::parse(st.Text(0)));
  return out;
}

void ApiGatewayModel::Impl::PutKey(const std::string& table, const std::string& id, const json& doc) {
  auto st = host.store().db().Prepare("INSERT INTO " + table +
                                      " (id, doc) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc");
  st.BindAll(id, doc.dump());
  st.Run();
}

bool ApiGatewayModel::Impl::DeleteKey(const std::string& table, const std::string& id) {
  auto st = host.store().db().Prepare("DELETE FROM " + table + " WHERE id = ?");
  st.Bind(1, id);
  return st.Run() > 0;
}

json* ApiGatewayModel::Impl::FindResource(json& doc, const std::string& resource_id) {
  json& resources = doc["resources"];
  auto it = resources.find(resource_id);
  return it == resources.end() ? nullptr : &*it;
}

json* ApiGatewayModel::Impl::FindMethod(json& doc, const std::string& resource_id, const std::string& http_method) {
  json* r = FindResource(doc, resource_id);
  if (r == nullptr) return nullptr;
  json& methods = (*r)["resourceMethods"];
  auto it = methods.find(http_method);
  return it == methods.end() ? nullptr : &*it;
}

json& ApiGatewayModel::Impl::Resource(json& doc, const std::string& resource_id) {
  json* r = FindResource(doc, resource_id);
  if (r == nullptr) throw ApiException(NotFound("Invalid Resource identifier specified"));
  return *r;
}

json& ApiGatewayModel::Impl::Method(json& doc, const std::string& resource_id, const std::string& http_method) {
  Resource(doc, resource_id);  // a missing resource is named first
  json* m = FindMethod(doc, resource_id, http_method);
  if (m == nullptr) throw ApiException(NotFound("Invalid Method identifier specified"));
  return *m;
}

std::string ApiGatewayModel::Impl::ChildPath(const std::string& parent_path, const std::string& part) {
  return parent_path == "/" ? "/" + part : parent_path + "/" + part;
}

// ---------------------------------------------------------------------------------------------
// Impl: the gateway's route table

void ApiGatewayModel::Impl::ContributeRoutes(proto::RouteTable& table) {
  // One lookup per distinct target function per table build.
  std::map<std::string, std::optional<proto::FunctionConfig>> functions;
  auto resolve = [&](const std::string& uri) -> std::optional<proto::FunctionConfig> {
    std::string arn = FunctionArnFromUri(uri);
    if (arn.empty()) return std::nullopt;
    auto [it, fresh] = functions.try_emplace(arn);
    if (!fresh) return it->second;
    // A qualified ARN (function:NAME:alias or :version) runs that version, as API Gateway does.
    Result<proto::FunctionConfig> f = host.ResolveFunction(arn);
    // A malformed or unknown target: the route stays without a function (answered 500).
    if (f.ok()) it->second = std::move(f).value();
    return it->second;
  };

  std::vector<std::string> keys;
  for (const json& k : ListKeys("apigw_api_keys")) {
    if (k.value("enabled", false)) keys.push_back(k.value("value", ""));
  }

  for (const json& doc : List(kRest)) {
    proto::ApiGatewayApi api;
    api.api_id = doc.value("id", "");
    api.kind = "rest";
    api.binary_media_types = doc.value("binaryMediaTypes", std::vector<std::string>{});
    api.api_keys = keys;
    // Members are copied out before iterating: a range-for over value(...).items() would
    // iterate a temporary that is already gone (C++20 extends only the outer temporary).
    const json deployments = doc.value("deployments", json::object());
    const json stages = doc.value("stages", json::object());
    for (const auto& [name, stage] : stages.items()) {
      proto::ApiStage s;
      s.name = name;
      s.variables = stage.value("variables", std::map<std::string, std::string>{});
      auto dep = deployments.find(stage.value("deploymentId", ""));
      if (dep != deployments.end()) {
        const json snapshot = dep->value("snapshot", json::object());
        for (const auto& [rid, res] : snapshot.items()) {
          const json methods = res.value("resourceMethods", json::object());
          for (const auto& [verb, m] : methods.items()) {
            proto::ApiRoute r;
            r.method = verb;
            r.path = res.value("path", "/");
            r.resource_id = rid;
            r.payload_format = "1.0";
            r.api_key_required = m.value("apiKeyRequired", false);
            if (auto in = m.find("methodIntegration"); in != m.end() && in->is_object()) {
              r.timeout_ms = static_cast<uint32_t>(in->value("timeoutInMillis", 29000));
              if (IsLambdaProxy(in->value("type", ""))) r.function = resolve(in->value("uri", ""));
            }
            s.routes.push_back(std::move(r));
          }
        }
      }
      api.stages.push_back(std::move(s));
    }
    table.apis.push_back(std::move(api));
  }

  for (const json& doc : List(kHttp)) {
    proto::ApiGatewayApi api;
    api.api_id = doc.value("apiId", "");
    api.kind = "http";
    api.api_keys = keys;
    const json integrations = doc.value("integrations", json::object());
    const json route_docs = doc.value("routes", json::object());
    std::vector<proto::ApiRoute> routes;
    for (const auto& [rid, route] : route_docs.items()) {
      proto::ApiRoute r;
      r.route_key = route.value("routeKey", "$default");
      auto [method, path] = ParseRouteKey(r.route_key);
      r.method = method;
      r.path = path;
      r.resource_id = rid;
      r.api_key_required = route.value("apiKeyRequired", false);
      std::string target = route.value("target", "");
      if (target.rfind("integrations/", 0) == 0) {
        auto in = integrations.find(target.substr(13));
        if (in != integrations.end()) {
          r.payload_format = in->value("payloadFormatVersion", "2.0");
          r.timeout_ms = static_cast<uint32_t>(in->value("timeoutInMillis", 30000));
          if (IsLambdaProxy(in->value("integrationType", ""))) r.function = resolve(in->value("integrationUri", ""));
        }
      }
      routes.push_back(std::move(r));
    }
    const json stages = doc.value("stages", json::object());
    for (const auto& [name, stage] : stages.items()) {
      proto::ApiStage s;
      s.name = name;
      s.variables = stage.value("stageVariables", std::map<std::string, std::string>{});
      s.routes = routes;
      api.stages.push_back(std::move(s));
    }
    table.apis.push_back(std::move(api));
  }
}

// ---------------------------------------------------------------------------------------------
// The model's entry points

ApiGatewayModel::ApiGatewayModel(ServiceHost& host) : impl_(std::make_unique<Impl>(host)) {}
ApiGatewayModel::~ApiGatewayModel() = default;

namespace {

// SQLite's DbError and nlohmann's exceptions (a malformed stored document) are the model's
// exception edges: each entry point converts them here, once, in the words control's API
// boundary used when they escaped to it.
template <typename F>
auto Guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("internal error: ") + e.what());
  }
}

// A Change's answer for the Delete* calls: false when the API is gone, the error otherwise.
Result<bool> Found(const Result<json>& changed, bool found) {
  if (changed.ok()) return found;
  if (changed.status().code() == Code::kNotFound) return false;
  return changed.status();
}

}  // namespace

Status ApiGatewayModel::Migrate() {
  try {
    impl_->host.store().db().MigrateTrack("apigateway", Steps());
  } catch (const DbError& e) {
    return Status::Internal(std::string("apigateway tables: ") + e.what());
  }
  return Status::Ok();
}

Result<RestApiInfo> ApiGatewayModel::CreateRestApi(const RestApiInput& in) {
  if (in.name.empty()) return BadRequestStatus("Invalid REST API name specified: name is required");
  return Guarded([&]() -> Result<RestApiInfo> {
    Impl& m = *impl_;
    RestApiInfo info;
    info.id = m.NewId(10);
    info.root_resource_id = m.NewId(10);
    json doc = {
        {"id", info.id},
        {"name", in.name},
        {"createdDate", m.NowS()},
        {"apiKeySource", in.api_key_source.empty() ? "HEADER" : in.api_key_source},
        {"endpointConfiguration",
         {{"types", in.endpoint_types.empty() ? std::vector<std::string>{"EDGE"} : in.endpoint_types}}},
        {"disableExecuteApiEndpoint", false},
        {"rootResourceId", info.root_resource_id},
        {"resources", {{info.root_resource_id, {{"id", info.root_resource_id}, {"path", "/"}}}}},
        {"deployments", json::object()},
        {"stages", json::object()},
    };
    if (!in.description.empty()) doc["description"] = in.description;
    if (!in.binary_media_types.empty()) doc["binaryMediaTypes"] = in.binary_media_types;
    if (in.minimum_compression_size) doc["minimumCompressionSize"] = *in.minimum_compression_size;
    if (!in.tags.empty()) doc["tags"] = in.tags;
    m.Insert(info.id, kRest, in.name, doc);
    return info;
  });
}

Result<bool> ApiGatewayModel::DeleteRestApi(const std::string& api_id) {
  return Guarded([&]() -> Result<bool> { return impl_->Delete(api_id, kRest); });
}

Result<std::string> ApiGatewayModel::CreateResource(const std::string& api_id, const std::string& parent_id,
                                                    const std::string& path_part) {
  GEYSIR_RETURN_IF_ERROR(ValidatePathPart(path_part));
  return Guarded([&]() -> Result<std::string> {
    std::string id = impl_->NewId(6);
    Result<json> changed = impl_->Change(api_id, kRest, [&](json& doc) -> Status {
      json* parent = Impl::FindResource(doc, parent_id);
      if (parent == nullptr) return NotFoundStatus("Invalid Resource identifier specified");
      std::string path = Impl::ChildPath(parent->value("path", "/"), path_part);
      for (const auto& [rid, r] : doc["resources"].items()) {
        if (r.value("path", "") == path) {
          return ConflictStatus("Another resource with the same parent already has this name: " + path_part);
        }
      }
      doc["resources"][id] = {{"id", id}, {"parentId", parent_id}, {"pathPart", path_part}, {"path", path}};
      return Status::Ok();
    }, false);
    if (!changed.ok()) return changed.status();
    return id;
  });
}

Result<bool> ApiGatewayModel::DeleteResource(const std::string& api_id, const std::string& resource_id) {
  return Guarded([&]() -> Result<bool> {
    bool found = false;
    Result<json> changed = impl_->Change(api_id, kRest, [&](json& doc) -> Status {
      json& resources = doc["resources"];
      if (!resources.contains(resource_id)) return Status::Ok();
      if (doc.value("rootResourceId", "") == resource_id) {
        return BadRequestStatus("Cannot delete the root resource of a REST API");
      }
      found = true;
      // The resource and everything under it.
      std::string prefix = resources[resource_id].value("path", "");
      std::vector<std::string> doomed;
      for (const auto& [rid, r] : resources.items()) {
        std::string p = r.value("path", "");
        if (p == prefix || p.rfind(prefix + "/", 0) == 0) doomed.push_back(rid);
      }
      for (const auto& rid : doomed) resources.erase(rid);
      return Status::Ok();
    }, false);
    return Found(changed, found);
  });
}

Status ApiGatewayModel::PutMethod(const std::string& api_id, const std::string& resource_id,
                                  const std::string& http_method, const MethodInput& in) {
  Result<std::string> verb = HttpMethodOf(http_method);
  if (!verb.ok()) return verb.status();
  return Guarded([&]() -> Status {
    return impl_->Change(api_id, kRest, [&](json& doc) -> Status {
      json* r = Impl::FindResource(doc, resource_id);
      if (r == nullptr) return NotFoundStatus("Invalid Resource identifier specified");
      (*r)["resourceMethods"][*verb] = {
          {"httpMethod", *verb},
          {"authorizationType", in.authorization_type.empty() ? "NONE" : in.authorization_type},
          {"apiKeyRequired", in.api_key_required}};
      return Status::Ok();
    }, false).status();
  });
}

Result<bool> ApiGatewayModel::DeleteMethod(const std::string& api_id, const std::string& resource_id,
                                           const std::string& http_method) {
  return Guarded([&]() -> Result<bool> {
    bool found = false;
    Result<json> changed = impl_->Change(api_id, kRest, [&](json& doc) -> Status {
      json* r = Impl::FindResource(doc, resource_id);
      if (r == nullptr) return NotFoundStatus("Invalid Resource identifier specified");
      if (r->contains("resourceMethods")) {
        Result<std::string> verb = HttpMethodOf(http_method);
        if (!verb.ok()) return verb.status();
        found = (*r)["resourceMethods"].erase(*verb) > 0;
      }
      return Status::Ok();
    }, false);
    return Found(changed, found);
  });
}

Status ApiGatewayModel::PutIntegration(const std::string& api_id, const std::string& resource_id,
                                       const std::string& http_method, const IntegrationInput& in) {
  Result<std::string> verb = HttpMethodOf(http_method);
  if (!verb.ok()) return verb.status();
  static const std::set<std::string> kTypes = {"AWS", "AWS_PROXY", "HTTP", "HTTP_PROXY", "MOCK"};
  if (!kTypes.count(in.type)) return BadRequestStatus("Invalid integration type specified: " + in.type);
  if (IsLambdaProxy(in.type) && FunctionArnFromUri(in.uri).empty()) {
    return BadRequestStatus("Invalid ARN specified in the request: AWS_PROXY integrations need uri "
                            "arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/FUNCTION_ARN/invocations");
  }
  return Guarded([&]() -> Status {
    return impl_->Change(api_id, kRest, [&](json& doc) -> Status {
      if (Impl::FindResource(doc, resource_id) == nullptr) return NotFoundStatus("Invalid Resource identifier specified");
      json* m = Impl::FindMethod(doc, resource_id, *verb);
      if (m == nullptr) return NotFoundStatus("Invalid Method identifier specified");
      json integ = {{"type", in.type},
                    {"httpMethod", in.integration_http_method.empty() ? "POST" : in.integration_http_method},
                    {"uri", in.uri},
                    {"passthroughBehavior", in.passthrough_behavior.empty() ? "WHEN_NO_MATCH" : in.passthrough_behavior},
                    {"timeoutInMillis", in.timeout_ms.value_or(29000)},
                    {"cacheNamespace", resource_id},
                    {"cacheKeyParameters", json::array()}};
      if (!in.credentials.empty()) integ["credentials"] = in.credentials;
      (*m)["methodIntegration"] = std::move(integ);
      return Status::Ok();
    }, false).status();
  });
}

Result<std::string> ApiGatewayModel::CreateDeployment(const std::string& api_id, const DeploymentInput& in) {
  return Guarded([&]() -> Result<std::string> {
    Impl& m = *impl_;
    std::string id = m.NewId(6);
    Result<json> changed = m.Change(api_id, kRest, [&](json& doc) -> Status {
      bool any_method = false;
      for (const auto& [rid, r] : doc["resources"].items()) {
        if (r.contains("resourceMethods") && !r["resourceMethods"].empty()) any_method = true;
      }
      if (!any_method) return BadRequestStatus("The REST API doesn't contain any methods");
      json dep = {{"id", id}, {"createdDate", m.NowS()}, {"snapshot", doc["resources"]}};
      if (!in.description.empty()) dep["description"] = in.description;
      doc["deployments"][id] = std::move(dep);
      if (!in.stage_name.empty()) {
        json& stages = doc["stages"];
        if (stages.contains(in.stage_name)) {
          stages[in.stage_name]["deploymentId"] = id;
          stages[in.stage_name]["lastUpdatedDate"] = m.NowS();
        } else {
          json stage = {{"stageName", in.stage_name},
                        {"deploymentId", id},
                        {"cacheClusterEnabled", false},
                        {"cacheClusterStatus", "NOT_AVAILABLE"},
                        {"methodSettings", json::object()},
                        {"tracingEnabled", false},
                        {"createdDate", m.NowS()},
                        {"lastUpdatedDate", m.NowS()}};
          if (!in.stage_description.empty()) stage["description"] = in.stage_description;
          if (!in.variables.empty()) stage["variables"] = in.variables;
          stages[in.stage_name] = std::move(stage);
        }
      }
      return Status::Ok();
    });
    if (!changed.ok()) return changed.status();
    return id;
  });
}

Result<bool> ApiGatewayModel::DeleteDeployment(const std::string& api_id, const std::string& deployment_id) {
  return Guarded([&]() -> Result<bool> {
    bool found = false;
    Result<json> changed = impl_->Change(api_id, kRest, [&](json& doc) -> Status {
      for (const auto& [name, s] : doc["stages"].items()) {
        if (s.value("deploymentId", "") == deployment_id) {
          return BadRequestStatus("Active stages pointing to this deployment must be moved or deleted");
        }
      }
      found = doc["deployments"].erase(deployment_id) > 0;
      return Status::Ok();
    }, false);
    return Found(changed, found);
  });
}

Status ApiGatewayModel::CreateStage(const std::string& api_id, const std::string& stage_name,
                                    const std::string& deployment_id, const std::string& description,
                                    const std::map<std::string, std::string>& variables) {
  if (stage_name.empty()) return BadRequestStatus("Stage name is required");
  return Guarded([&]() -> Status {
    Impl& m = *impl_;
    return m.Change(api_id, kRest, [&](json& doc) -> Status {
      if (!doc["deployments"].contains(deployment_id)) return NotFoundStatus("Invalid Deployment identifier specified");
      if (doc["stages"].contains(stage_name)) return ConflictStatus("Stage already exists");
      json stage = {{"stageName", stage_name},
                    {"deploymentId", deployment_id},
                    {"cacheClusterEnabled", false},
                    {"cacheClusterStatus", "NOT_AVAILABLE"},
                    {"methodSettings", json::object()},
                    {"tracingEnabled", false},
                    {"createdDate", m.NowS()},
                    {"lastUpdatedDate", m.NowS()}};
      if (!description.empty()) stage["description"] = description;
      if (!variables.empty()) stage["variables"] = variables;
      doc["stages"][stage_name] = std::move(stage);
      return Status::Ok();
    }).status();
  });
}

Result<bool> ApiGatewayModel::DeleteStage(const std::string& api_id, const std::string& stage_name) {
  return Guarded([&]() -> Result<bool> {
    bool found = false;
    Result<json> changed = impl_->Change(api_id, kRest, [&](json& doc) -> Status {
      found = doc["stages"].erase(stage_name) > 0;
      return Status::Ok();
    });
    return Found(changed, found);
  });
}

Result<std::string> ApiGatewayModel::CreateHttpApi(const HttpApiInput& in) {
  if (in.name.empty()) return BadRequestStatus("Invalid API name specified: name is required");
  if (in.protocol_type != "HTTP") {
    return BadRequestStatus("Unsupported protocolType '" + in.protocol_type + "': Geysir serves HTTP APIs only");
  }
  return Guarded([&]() -> Result<std::string> {
    Impl& m = *impl_;
    std::string id = m.NewId(10);
    json doc = {{"apiId", id},
                {"name", in.name},
                {"protocolType", "HTTP"},
                {"routeSelectionExpression", "$request.method $request.path"},
                {"apiKeySelectionExpression", "$request.header.x-api-key"},
                {"disableExecuteApiEndpoint", false},
                {"createdDate", m.NowIso()},
                {"apiEndpoint", Endpoint(id)},
                {"integrations", json::object()},
                {"routes", json::object()},
                {"stages", json::object()}};
    if (!in.description.empty()) doc["description"] = in.description;
    if (!in.tags.empty()) doc["tags"] = in.tags;
    m.Insert(id, kHttp, in.name, doc);
    return id;
  });
}

Result<bool> ApiGatewayModel::DeleteHttpApi(const std::string& api_id) {
  return Guarded([&]() -> Result<bool> { return impl_->Delete(api_id, kHttp); });
}

Result<std::string> ApiGatewayModel::CreateV2Integration(const std::string& api_id, const V2IntegrationInput& in) {
  static const std::set<std::string> kTypes = {"AWS", "AWS_PROXY", "HTTP", "HTTP_PROXY", "MOCK"};
  if (!kTypes.count(in.integration_type)) {
    return BadRequestStatus("Invalid integration type specified: " + in.integration_type);
  }
  if (in.payload_format_version != "1.0" && in.payload_format_version != "2.0") {
    return BadRequestStatus("Invalid payloadFormatVersion '" + in.payload_format_version + "': use 1.0 or 2.0");
  }
  if (IsLambdaProxy(in.integration_type) && FunctionArnFromUri(in.integration_uri).empty()) {
    return BadRequestStatus("Invalid integrationUri: an AWS_PROXY integration needs a Lambda function ARN");
  }
  return Guarded([&]() -> Result<std::string> {
    std::string id = impl_->NewId(7);
    Result<json> changed = impl_->Change(api_id, kHttp, [&](json& doc) -> Status {
      doc["integrations"][id] = {{"integrationId", id},
                                 {"integrationType", in.integration_type},
                                 {"integrationUri", in.integration_uri},
                                 {"integrationMethod", in.integration_method.empty() ? "POST" : in.integration_method},
                                 {"payloadFormatVersion", in.payload_format_version},
                                 {"connectionType", "INTERNET"},
                                 {"timeoutInMillis", in.timeout_ms.value_or(30000)}};
      return Status::Ok();
    });
    if (!changed.ok()) return changed.status();
    return id;
  });
}

Result<bool> ApiGatewayModel::DeleteV2Integration(const std::string& api_id, const std::string& integration_id) {
  return Guarded([&]() -> Result<bool> {
    bool found = false;
    Result<json> changed = impl_->Change(api_id, kHttp, [&](json& doc) -> Status {
      found = doc["integrations"].erase(integration_id) > 0;
      return Status::Ok();
    });
    return Found(changed, found);
  });
}

Result<std::string> ApiGatewayModel::CreateV2Route(const std::string& api_id, const V2RouteInput& in) {
  GEYSIR_RETURN_IF_ERROR(RouteKeyOf(in.route_key).status());  // validates
  return Guarded([&]() -> Result<std::string> {
    std::string id = impl_->NewId(7);
    Result<json> changed = impl_->Change(api_id, kHttp, [&](json& doc) -> Status {
      for (const auto& [rid, r] : doc["routes"].items()) {
        if (r.value("routeKey", "") == in.route_key) {
          return ConflictStatus("Unable to create Route with routeKey '" + in.route_key +
                                "' because a route with the same routeKey already exists");
        }
      }
      if (!in.target.empty()) {
        if (in.target.rfind("integrations/", 0) != 0 || !doc["integrations"].contains(in.target.substr(13))) {
          return BadRequestStatus("Invalid target: '" + in.target + "'. Expected integrations/<IntegrationId> "
                                  "of an integration of this API");
        }
      }
      json route = {{"routeId", id},
                    {"routeKey", in.route_key},
                    {"authorizationType", in.authorization_type.empty() ? "NONE" : in.authorization_type},
                    {"apiKeyRequired", in.api_key_required},
                    {"apiGatewayManaged", false}};
      if (!in.target.empty()) route["target"] = in.target;
      doc["routes"][id] = std::move(route);
      return Status::Ok();
    });
    if (!changed.ok()) return changed.status();
    return id;
  });
}

Result<bool> ApiGatewayModel::DeleteV2Route(const std::string& api_id, const std::string& route_id) {
  return Guarded([&]() -> Result<bool> {
    bool found = false;
    Result<json> changed = impl_->Change(api_id, kHttp, [&](json& doc) -> Status {
      found = doc["routes"].erase(route_id) > 0;
      return Status::Ok();
    });
    return Found(changed, found);
  });
}

Status ApiGatewayModel::CreateV2Stage(const std::string& api_id, const V2StageInput& in) {
  if (in.stage_name.empty()) return BadRequestStatus("Stage name is required");
  if (in.stage_name != "$default") {
    for (char c : in.stage_name) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) {
        return BadRequestStatus("Stage name must be $default or alphanumeric, '-' and '_': '" + in.stage_name + "'");
      }
    }
  }
  return Guarded([&]() -> Status {
    Impl& m = *impl_;
    return m.Change(api_id, kHttp, [&](json& doc) -> Status {
      if (doc["stages"].contains(in.stage_name)) {
        return ConflictStatus("Unable to create stage '" + in.stage_name + "': a stage with that name already exists");
      }
      json stage = {{"stageName", in.stage_name},
                    {"autoDeploy", in.auto_deploy},
                    {"createdDate", m.NowIso()},
                    {"lastUpdatedDate", m.NowIso()},
                    {"defaultRouteSettings", {{"detailedMetricsEnabled", false}}},
                    {"routeSettings", json::object()},
                    {"stageVariables", in.variables},
                    {"tags", json::object()},
                    {"apiGatewayManaged", false}};
      if (!in.description.empty()) stage["description"] = in.description;
      doc["stages"][in.stage_name] = std::move(stage);
      return Status::Ok();
    }).status();
  });
}

Result<bool> ApiGatewayModel::DeleteV2Stage(const std::string& api_id, const std::string& stage_name) {
  return Guarded([&]() -> Result<bool> {
    bool found = false;
    Result<json> changed = impl_->Change(api_id, kHttp, [&](json& doc) -> Status {
      found = doc["stages"].erase(stage_name) > 0;
      return Status::Ok();
    });
    return Found(changed, found);
  });
}

std::string ApiGatewayModel::Endpoint(const std::string& api_id) const {
  // The function URL template says how the gateway is reached ("http://{url_id}.lambda-url.
  // localhost:8080/"); execute-api hosts sit beside lambda-url ones under the same base domain.
  std::string t = impl_->host.api().function_url_template;
  std::string marker = "{url_id}.lambda-url.";
  size_t at = t.find(marker);
  if (at == std::string::npos) return "http://" + api_id + ".execute-api.localhost";
  t.replace(at, marker.size(), api_id + ".execute-api.");
  while (!t.empty() && t.back() == '/') t.pop_back();
  return t;
}

}  // namespace geysir::control::apigw
