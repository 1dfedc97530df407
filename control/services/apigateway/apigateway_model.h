// ApiGatewayModel: API Gateway's objects as control keeps them — REST APIs (v1: RestApi,
// Resource, Method, Integration, Deployment, Stage) and HTTP APIs (v2: Api, Integration, Route,
// Stage) — and the C++ entry points the rest of control (CloudFormation) uses to create and
// delete them. The "apigateway" service's HTTP handlers (apigateway.cpp) call the same model, so
// an API made from a template and one made with boto3 are the same rows and serve the same way.
//
// Every mutation is one SQLite transaction (durable when it returns) and, when it changes what
// the gateway serves, ends with ServiceHost::RoutesChanged(): a REST API serves its stages'
// deployments (a deployment is a snapshot of the resources and methods when it was made, as on
// AWS, so CreateDeployment is what publishes changes); an HTTP API serves its current routes
// on every stage (auto-deploy; Geysir has no separate v2 deployments).
//
// Errors: nothing here throws. Each entry point returns a Status or Result whose AWS type is API
// Gateway's error and whose code gives its status (control/aws_error.h's FromStatus):
//   NotFoundException 404, kNotFound ("Invalid API identifier specified 000000000000:abc123", ...)
//   BadRequestException 400, kInvalidArgument (a malformed argument)
//   ConflictException 409, kConflict (a name taken)
// SQLite's DbError and a malformed stored document are caught here and become kInternal
// ("internal error: ..."). Delete* answer false, rather than an error, when the object is
// already gone, so a stack deletion can be repeated.
//
// Ids: REST and HTTP API ids are 10 characters of [a-z0-9] (as AWS makes them); resource,
// deployment, integration and route ids are 6-7 such characters. Ids are unique across both
// kinds of API, since both are served on <id>.execute-api.<base-domain>.
//
// Lambda targets: an AWS_PROXY integration's uri may be API Gateway's form
// "arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/FUNCTION_ARN/invocations" or (v2)
// the function's ARN itself. The function need not exist yet (as on AWS); a request routed to a
// missing function is answered 500 {"message":"Internal server error"}.
//
// Thread safety: control's loop thread only, like the Store.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace geysir::control {

class ServiceHost;

namespace apigw {

// ---- REST APIs (API Gateway v1, payload format 1.0) ----

struct RestApiInput {
  std::string name;                              // required
  std::string description;
  std::vector<std::string> binary_media_types;   // e.g. "*/*", "image/png"
  std::optional<int64_t> minimum_compression_size;
  std::string api_key_source = "HEADER";         // HEADER | AUTHORIZER
  std::vector<std::string> endpoint_types;       // default {"EDGE"}
  std::map<std::string, std::string> tags;
};

struct RestApiInfo {
  std::string id;                // Ref of AWS::ApiGateway::RestApi
  std::string root_resource_id;  // Fn::GetAtt [Api, RootResourceId]
};

struct MethodInput {
  std::string authorization_type = "NONE";  // only NONE is enforced as open; others are stored
  bool api_key_required = false;            // enforced: x-api-key must be an enabled API key
};

struct IntegrationInput {
  std::string type = "AWS_PROXY";          // AWS_PROXY is served; others are stored, answered 500
  std::string integration_http_method = "POST";
  std::string uri;                         // see "Lambda targets" above
  std::string credentials;
  std::string passthrough_behavior;
  std::optional<int64_t> timeout_ms;       // default 29000
};

struct DeploymentInput {
  std::string stage_name;                  // "" = make the deployment only
  std::string stage_description;
  std::string description;
  std::map<std::string, std::string> variables;  // stage variables for a new stage
};

// ---- HTTP APIs (API Gateway v2) ----

struct HttpApiInput {
  std::string name;                        // required
  std::string description;
  std::string protocol_type = "HTTP";      // only HTTP is supported (WEBSOCKET is refused)
  std::map<std::string, std::string> tags;
};

struct V2IntegrationInput {
  std::string integration_type = "AWS_PROXY";
  std::string integration_uri;             // the function ARN (or the apigateway form)
  std::string integration_method = "POST";
  std::string payload_format_version = "2.0";  // "1.0" | "2.0"
  std::optional<int64_t> timeout_ms;       // default 30000
};

struct V2RouteInput {
  std::string route_key;                   // "$default" or "METHOD /path/{param}/{proxy+}"
  std::string target;                      // "integrations/<IntegrationId>"
  std::string authorization_type = "NONE";
  bool api_key_required = false;
};

struct V2StageInput {
  std::string stage_name;                  // "$default" serves at the root, others as a prefix
  bool auto_deploy = false;
  std::string description;
  std::map<std::string, std::string> variables;
};

class ApiGatewayModel {
 public:
  explicit ApiGatewayModel(ServiceHost& host);

  // Creates the tables (Db::MigrateTrack("apigateway", ...)); kInternal "apigateway tables: ...".
  Status Migrate();

  // REST APIs. CreateRestApi also makes the root resource "/".
  Result<RestApiInfo> CreateRestApi(const RestApiInput& in);
  Result<bool> DeleteRestApi(const std::string& api_id);
  // Returns the new resource's id. ConflictException if the parent already has that path part.
  Result<std::string> CreateResource(const std::string& api_id, const std::string& parent_id,
                                     const std::string& path_part);
  Result<bool> DeleteResource(const std::string& api_id, const std::string& resource_id);  // and its children
  // http_method: GET, POST, ..., or ANY. Replaces an existing method (and drops its integration).
  Status PutMethod(const std::string& api_id, const std::string& resource_id, const std::string& http_method,
                   const MethodInput& in);
  Result<bool> DeleteMethod(const std::string& api_id, const std::string& resource_id, const std::string& http_method);
  Status PutIntegration(const std::string& api_id, const std::string& resource_id, const std::string& http_method,
                        const IntegrationInput& in);
  // Snapshots the resources and methods; with a stage name, creates that stage or points it at
  // the new deployment. Returns the deployment id.
  Result<std::string> CreateDeployment(const std::string& api_id, const DeploymentInput& in);
  Result<bool> DeleteDeployment(const std::string& api_id, const std::string& deployment_id);
  Status CreateStage(const std::string& api_id, const std::string& stage_name, const std::string& deployment_id,
                     const std::string& description, const std::map<std::string, std::string>& variables);
  Result<bool> DeleteStage(const std::string& api_id, const std::string& stage_name);

  // HTTP APIs. Returns the ApiId.
  Result<std::string> CreateHttpApi(const HttpApiInput& in);
  Result<bool> DeleteHttpApi(const std::string& api_id);
  Result<std::string> CreateV2Integration(const std::string& api_id, const V2IntegrationInput& in);  // IntegrationId
  Result<bool> DeleteV2Integration(const std::string& api_id, const std::string& integration_id);
  Result<std::string> CreateV2Route(const std::string& api_id, const V2RouteInput& in);  // RouteId
  Result<bool> DeleteV2Route(const std::string& api_id, const std::string& route_id);
  Status CreateV2Stage(const std::string& api_id, const V2StageInput& in);
  Result<bool> DeleteV2Stage(const std::string& api_id, const std::string& stage_name);

  // "http://<api_id>.execute-api.<base-domain>:<port>" (v2's ApiEndpoint; the REST invoke URL
  // is this plus "/<stage>/").
  std::string Endpoint(const std::string& api_id) const;

  // The implementation (apigateway_model.cpp) keeps each API as one JSON document; the HTTP
  // handlers reach it through these.
  struct Impl;
  Impl& impl() { return *impl_; }
  ~ApiGatewayModel();
  ApiGatewayModel(const ApiGatewayModel&) = delete;
  ApiGatewayModel& operator=(const ApiGatewayModel&) = delete;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace apigw
}  // namespace geysir::control
