#include "control/services/cloudformation/cloudformation_resources.h"

#include "control/aws_error.h"
#include "control/service.h"
#include "control/services/apigateway/apigateway_model.h"

namespace geysir::control::cfn {
namespace {

using nlohmann::json;

// ---- property helpers: templates write scalars loosely ("true", 0, "0") ----

std::string Str(const json& props, const char* key, std::string fallback = "") {
  if (!props.contains(key) || props[key].is_null()) return fallback;
  const json& v = props[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return v.dump();
}

Result<std::string> Required(const json& props, const char* key) {
  std::string v = Str(props, key);
  if (v.empty()) return Status::Invalid(std::string("Property ") + key + " cannot be empty.");
  return v;
}

bool Bool(const json& props, const char* key, bool fallback = false) {
  if (!props.contains(key)) return fallback;
  const json& v = props[key];
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_string()) return v.get<std::string>() == "true";
  return fallback;
}

std::optional<int64_t> Int(const json& props, const char* key) {
  if (!props.contains(key)) return std::nullopt;
  const json& v = props[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    try {
      return std::stoll(v.get<std::string>());
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::vector<std::string> StrList(const json& props, const char* key) {
  std::vector<std::string> out;
  if (!props.contains(key) || !props[key].is_array()) return out;
  for (const json& e : props[key]) {
    if (e.is_string()) out.push_back(e.get<std::string>());
  }
  return out;
}

std::map<std::string, std::string> StrMap(const json& v) {
  std::map<std::string, std::string> out;
  if (!v.is_object()) return out;
  for (const auto& [k, e] : v.items()) out[k] = e.is_string() ? e.get<std::string>() : e.dump();
  return out;
}

// AWS::ApiGateway::* writes Tags as [{Key, Value}]; AWS::ApiGatewayV2::* as {Key: Value}.
std::map<std::string, std::string> TagList(const json& props) {
  std::map<std::string, std::string> out;
  if (!props.contains("Tags")) return out;
  if (props["Tags"].is_object()) return StrMap(props["Tags"]);
  if (props["Tags"].is_array()) {
    for (const json& t : props["Tags"]) {
      if (t.is_object()) out[t.value("Key", "")] = t.value("Value", "");
    }
  }
  return out;
}

Status Refuse(const json& props, std::initializer_list<const char*> keys, const std::string& type) {
  for (const char* k : keys) {
    if (props.contains(k)) {
      return Status::Invalid("Geysir does not support property " + std::string(k) + " of " + type +
                             "; remove it from the template");
    }
  }
  return Status::Ok();
}

// Every provider of API Gateway objects makes them in the API Gateway service's model, which
// the registry hands CloudFormation when it builds it.
class ApiGatewayProvider : public ResourceProvider {
 public:
  ApiGatewayProvider(ServiceHost& host, apigw::ApiGatewayModel& model) : host_(host), model_(model) {}

  // An object whose API is already gone (a RestApi deleted before its methods, or by hand)
  // is deleted: the model answers NotFoundException for it.
  Status Delete(const ResourceRecord& r) final {
    try {
      return DoDelete(r);
    } catch (const ApiException& e) {
      if (e.error().http_status == 404) return Status::Ok();
      throw;
    }
  }

 protected:
  virtual Status DoDelete(const ResourceRecord& r) = 0;

  Result<apigw::ApiGatewayModel*> Model() const { return &model_; }
  static std::string Attr(const ResourceRecord& r, const char* key) {
    return r.attributes.contains(key) && r.attributes[key].is_string() ? r.attributes[key].get<std::string>() : "";
  }
  ServiceHost& host_;
  apigw::ApiGatewayModel& model_;
};

class RestApiProvider final : public ApiGatewayProvider {
 public:
  using ApiGatewayProvider::ApiGatewayProvider;
  Result<Provisioned> Create(const std::string&, const std::string&, const json& p) override {
    GEYSIR_RETURN_IF_ERROR(Refuse(p, {"Body", "BodyS3Location", "CloneFrom"}, "AWS::ApiGateway::RestApi"));
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    apigw::RestApiInput in;
    GEYSIR_ASSIGN_OR_RETURN(auto name, Required(p, "Name"));
    in.name = name;
    in.description = Str(p, "Description");
    in.binary_media_types = StrList(p, "BinaryMediaTypes");
    in.minimum_compression_size = Int(p, "MinimumCompressionSize");
    in.api_key_source = Str(p, "ApiKeySourceType", "HEADER");
    if (p.contains("EndpointConfiguration")) in.endpoint_types = StrList(p["EndpointConfiguration"], "Types");
    in.tags = TagList(p);
    apigw::RestApiInfo info = ValueOrThrow(m->CreateRestApi(in));
    return Provisioned{info.id, {{"RootResourceId", info.root_resource_id}, {"RestApiId", info.id}}};
  }
  Status DoDelete(const ResourceRecord& r) override {
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    ValueOrThrow(m->DeleteRestApi(r.physical_id));
    return Status::Ok();
  }
};

class ResourceResourceProvider final : public ApiGatewayProvider {
 public:
  using ApiGatewayProvider::ApiGatewayProvider;
  Result<Provisioned> Create(const std::string&, const std::string&, const json& p) override {
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    GEYSIR_ASSIGN_OR_RETURN(auto api, Required(p, "RestApiId"));
    GEYSIR_ASSIGN_OR_RETURN(auto parent, Required(p, "ParentId"));
    GEYSIR_ASSIGN_OR_RETURN(auto part, Required(p, "PathPart"));
    std::string id = ValueOrThrow(m->CreateResource(api, parent, part));
    return Provisioned{id, {{"ResourceId", id}, {"RestApiId", api}}};
  }
  Status DoDelete(const ResourceRecord& r) override {
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    ValueOrThrow(m->DeleteResource(Attr(r, "RestApiId"), r.physical_id));
    return Status::Ok();
  }
};

class MethodProvider final : public ApiGatewayProvider {
 public:
  using ApiGatewayProvider::ApiGatewayProvider;
  Result<Provisioned> Create(const std::string& stack, const std::string& logical, const json& p) override {
    GEYSIR_RETURN_IF_ERROR(Refuse(p, {"AuthorizerId", "AuthorizationScopes", "RequestValidatorId"},
                                  "AWS::ApiGateway::Method"));
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    GEYSIR_ASSIGN_OR_RETURN(auto api, Required(p, "RestApiId"));
    GEYSIR_ASSIGN_OR_RETURN(auto resource, Required(p, "ResourceId"));
    GEYSIR_ASSIGN_OR_RETURN(auto method, Required(p, "HttpMethod"));
    apigw::MethodInput in;
    in.authorization_type = Str(p, "AuthorizationType", "NONE");
    in.api_key_required = Bool(p, "ApiKeyRequired");
    ThrowIfError(m->PutMethod(api, resource, method, in));
    if (p.contains("Integration") && p["Integration"].is_object()) {
      const json& i = p["Integration"];
      apigw::IntegrationInput ii;
      ii.type = Str(i, "Type", "AWS_PROXY");
      ii.integration_http_method = Str(i, "IntegrationHttpMethod", "POST");
      ii.uri = Str(i, "Uri");
      ii.credentials = Str(i, "Credentials");
      ii.passthrough_behavior = Str(i, "PassthroughBehavior");
      ii.timeout_ms = Int(i, "TimeoutInMillis");
      try {
        ThrowIfError(m->PutIntegration(api, resource, method, ii));
      } catch (...) {
        (void)m->DeleteMethod(api, resource, method);  // no half-made method left behind
        throw;
      }
    }
    // AWS makes the Ref of a method an opaque id; ours names the stack and logical id too.
    return Provisioned{stack + "-" + logical + "-" + api + resource + method,
                       {{"RestApiId", api}, {"ResourceId", resource}, {"HttpMethod", method}}};
  }
  Status DoDelete(const ResourceRecord& r) override {
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    ValueOrThrow(m->DeleteMethod(Attr(r, "RestApiId"), Attr(r, "ResourceId"), Attr(r, "HttpMethod")));
    return Status::Ok();
  }
};

class DeploymentProvider final : public ApiGatewayProvider {
 public:
  using ApiGatewayProvider::ApiGatewayProvider;
  Result<Provisioned> Create(const std::string&, const std::string&, const json& p) override {
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    GEYSIR_ASSIGN_OR_RETURN(auto api, Required(p, "RestApiId"));
    apigw::DeploymentInput in;
    in.stage_name = Str(p, "StageName");
    in.description = Str(p, "Description");
    if (p.contains("StageDescription") && p["StageDescription"].is_object()) {
      in.stage_description = Str(p["StageDescription"], "Description");
      if (p["StageDescription"].contains("Variables")) in.variables = StrMap(p["StageDescription"]["Variables"]);
    }
    std::string id = ValueOrThrow(m->CreateDeployment(api, in));
    return Provisioned{id, {{"DeploymentId", id}, {"RestApiId", api}, {"StageName", in.stage_name}}};
  }
  Status DoDelete(const ResourceRecord& r) override {
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    // The stage a deployment made goes with it, as on AWS.
    if (!Attr(r, "StageName").empty()) ValueOrThrow(m->DeleteStage(Attr(r, "RestApiId"), Attr(r, "StageName")));
    ValueOrThrow(m->DeleteDeployment(Attr(r, "RestApiId"), r.physical_id));
    return Status::Ok();
  }
};

class StageProvider final : public ApiGatewayProvider {
 public:
  using ApiGatewayProvider::ApiGatewayProvider;
  Result<Provisioned> Create(const std::string&, const std::string&, const json& p) override {
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    GEYSIR_ASSIGN_OR_RETURN(auto api, Required(p, "RestApiId"));
    GEYSIR_ASSIGN_OR_RETURN(auto stage, Required(p, "StageName"));
    GEYSIR_ASSIGN_OR_RETURN(auto deployment, Required(p, "DeploymentId"));
    ThrowIfError(m->CreateStage(api, stage, deployment, Str(p, "Description"),
                                p.contains("Variables") ? StrMap(p["Variables"]) : std::map<std::string, std::string>{}));
    return Provisioned{stage, {{"RestApiId", api}}};
  }
  Status DoDelete(const ResourceRecord& r) override {
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    ValueOrThrow(m->DeleteStage(Attr(r, "RestApiId"), r.physical_id));
    return Status::Ok();
  }
};

class HttpApiProvider final : public ApiGatewayProvider {
 public:
  using ApiGatewayProvider::ApiGatewayProvider;
  Result<Provisioned> Create(const std::string&, const std::string&, const json& p) override {
    GEYSIR_RETURN_IF_ERROR(Refuse(p, {"Body", "BodyS3Location", "Target", "RouteKey", "CredentialsArn"},
                                  "AWS::ApiGatewayV2::Api"));
    std::string protocol = Str(p, "ProtocolType", "HTTP");
    if (protocol != "HTTP") {
      return Status::Invalid("Geysir serves HTTP APIs only; ProtocolType " + protocol + " is not supported");
    }
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    apigw::HttpApiInput in;
    GEYSIR_ASSIGN_OR_RETURN(auto name, Required(p, "Name"));
    in.name = name;
    in.description = Str(p, "Description");
    in.protocol_type = protocol;
    in.tags = TagList(p);
    std::string id = ValueOrThrow(m->CreateHttpApi(in));
    return Provisioned{id, {{"ApiId", id}, {"ApiEndpoint", m->Endpoint(id)}}};
  }
  Status DoDelete(const ResourceRecord& r) override {
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    ValueOrThrow(m->DeleteHttpApi(r.physical_id));
    return Status::Ok();
  }
};

class V2IntegrationProvider final : public ApiGatewayProvider {
 public:
  using ApiGatewayProvider::ApiGatewayProvider;
  Result<Provisioned> Create(const std::string&, const std::string&, const json& p) override {
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    GEYSIR_ASSIGN_OR_RETURN(auto api, Required(p, "ApiId"));
    apigw::V2IntegrationInput in;
    GEYSIR_ASSIGN_OR_RETURN(auto type, Required(p, "IntegrationType"));
    in.integration_type = type;
    in.integration_uri = Str(p, "IntegrationUri");
    in.integration_method = Str(p, "IntegrationMethod", "POST");
    in.payload_format_version = Str(p, "PayloadFormatVersion", "2.0");
    in.timeout_ms = Int(p, "TimeoutInMillis");
    std::string id = ValueOrThrow(m->CreateV2Integration(api, in));
    return Provisioned{id, {{"ApiId", api}}};
  }
  Status DoDelete(const ResourceRecord& r) override {
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    ValueOrThrow(m->DeleteV2Integration(Attr(r, "ApiId"), r.physical_id));
    return Status::Ok();
  }
};

class V2RouteProvider final : public ApiGatewayProvider {
 public:
  using ApiGatewayProvider::ApiGatewayProvider;
  Result<Provisioned> Create(const std::string&, const std::string&, const json& p) override {
    GEYSIR_RETURN_IF_ERROR(Refuse(p, {"AuthorizerId", "AuthorizationScopes"}, "AWS::ApiGatewayV2::Route"));
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    GEYSIR_ASSIGN_OR_RETURN(auto api, Required(p, "ApiId"));
    apigw::V2RouteInput in;
    GEYSIR_ASSIGN_OR_RETURN(auto key, Required(p, "RouteKey"));
    in.route_key = key;
    in.target = Str(p, "Target");
    in.authorization_type = Str(p, "AuthorizationType", "NONE");
    in.api_key_required = Bool(p, "ApiKeyRequired");
    std::string id = ValueOrThrow(m->CreateV2Route(api, in));
    return Provisioned{id, {{"ApiId", api}}};
  }
  Status DoDelete(const ResourceRecord& r) override {
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    ValueOrThrow(m->DeleteV2Route(Attr(r, "ApiId"), r.physical_id));
    return Status::Ok();
  }
};

class V2StageProvider final : public ApiGatewayProvider {
 public:
  using ApiGatewayProvider::ApiGatewayProvider;
  Result<Provisioned> Create(const std::string&, const std::string&, const json& p) override {
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    GEYSIR_ASSIGN_OR_RETURN(auto api, Required(p, "ApiId"));
    apigw::V2StageInput in;
    GEYSIR_ASSIGN_OR_RETURN(auto stage, Required(p, "StageName"));
    in.stage_name = stage;
    in.auto_deploy = Bool(p, "AutoDeploy");
    in.description = Str(p, "Description");
    if (p.contains("StageVariables")) in.variables = StrMap(p["StageVariables"]);
    ThrowIfError(m->CreateV2Stage(api, in));
    return Provisioned{stage, {{"ApiId", api}}};
  }
  Status DoDelete(const ResourceRecord& r) override {
    GEYSIR_ASSIGN_OR_RETURN(auto m, Model());
    ValueOrThrow(m->DeleteV2Stage(Attr(r, "ApiId"), r.physical_id));
    return Status::Ok();
  }
};

}  // namespace

ResourceProviders::ResourceProviders(ServiceHost& host, apigw::ApiGatewayModel& apis) {
  providers_.emplace("AWS::ApiGateway::RestApi", std::make_unique<RestApiProvider>(host, apis));
  providers_.emplace("AWS::ApiGateway::Resource", std::make_unique<ResourceResourceProvider>(host, apis));
  providers_.emplace("AWS::ApiGateway::Method", std::make_unique<MethodProvider>(host, apis));
  providers_.emplace("AWS::ApiGateway::Deployment", std::make_unique<DeploymentProvider>(host, apis));
  providers_.emplace("AWS::ApiGateway::Stage", std::make_unique<StageProvider>(host, apis));
  providers_.emplace("AWS::ApiGatewayV2::Api", std::make_unique<HttpApiProvider>(host, apis));
  providers_.emplace("AWS::ApiGatewayV2::Integration", std::make_unique<V2IntegrationProvider>(host, apis));
  providers_.emplace("AWS::ApiGatewayV2::Route", std::make_unique<V2RouteProvider>(host, apis));
  providers_.emplace("AWS::ApiGatewayV2::Stage", std::make_unique<V2StageProvider>(host, apis));
  providers_.emplace("AWS::Lambda::Permission", MakeLambdaPermissionProvider(host));
}

ResourceProviders::~ResourceProviders() = default;

ResourceProvider* ResourceProviders::Find(std::string_view type) const {
  auto it = providers_.find(type);
  return it == providers_.end() ? nullptr : it->second.get();
}

std::vector<std::string> ResourceProviders::Types() const {
  std::vector<std::string> out;
  for (const auto& [type, p] : providers_) out.push_back(type);
  return out;
}

}  // namespace geysir::control::cfn
