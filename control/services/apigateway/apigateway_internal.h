// The inside of ApiGatewayModel, shared by the model's C++ entry points (apigateway_model.cpp)
// and the "apigateway" service's HTTP handlers (apigateway.cpp). Not for use elsewhere: other
// parts of control use apigateway_model.h.
//
// Storage: each API (REST or HTTP) is ONE row holding ONE JSON document in AWS's own response
// shape (RestApi / v2 Api fields), with its children nested inside by id:
//   REST: resources{id -> Resource with resourceMethods{VERB -> Method with methodIntegration}},
//         deployments{id -> Deployment + "snapshot" (the resources when it was made)},
//         stages{name -> Stage}
//   HTTP: integrations{id}, routes{id}, stages{name}
// An API is small (tens of objects), always served whole to the gateway and changed by one
// call at a time, so reading and rewriting its document inside one transaction is simpler and
// no slower than a table per object type, and a response is the stored object minus the
// nested children. API keys and usage plans are rows of their own (they span APIs).
//
// Thread safety: control's loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "control/aws_error.h"
#include "control/services/apigateway/apigateway_model.h"
#include "net/http_server.h"
#include "proto/messages.h"

namespace geysir::control {

class ServiceHost;
class DomainRegistry;

namespace apigw {

using nlohmann::json;

// API Gateway's error shapes (x-amzn-ErrorType + {"message": ...}).
AwsError NotFound(std::string message);        // 404 NotFoundException
AwsError BadRequest(std::string message);      // 400 BadRequestException
AwsError Conflict(std::string message);        // 409 ConflictException
// The same errors as values, for what returns a Status: the AWS type names API Gateway's error
// and the code gives its status through FromStatus (control/aws_error.h).
Status NotFoundStatus(std::string message);    // kNotFound, NotFoundException
Status BadRequestStatus(std::string message);  // kInvalidArgument, BadRequestException
Status ConflictStatus(std::string message);    // kConflict, ConflictException

inline constexpr std::string_view kRest = "rest";
inline constexpr std::string_view kHttp = "http";

struct ApiGatewayModel::Impl {
  explicit Impl(ServiceHost& h) : host(h) {}
  ServiceHost& host;

  std::string NewId(size_t n) const;      // [a-z0-9]{n}
  int64_t NowS() const;
  std::string NowIso() const;
  std::string Account() const;

  // The document of API `id` of `kind`; NotFoundException when there is none. Find returns it,
  // Load (for the HTTP handlers) throws it as ApiException. Both throw DbError.
  Result<json> Find(const std::string& id, std::string_view kind);
  json Load(const std::string& id, std::string_view kind);
  // Every API of `kind`, oldest first.
  std::vector<json> List(std::string_view kind);
  // Inserts a new API document (doc["id"] or doc["apiId"] = id).
  void Insert(const std::string& id, std::string_view kind, const std::string& name, const json& doc);
  // Reads, calls fn, writes back, in one transaction; then RoutesChanged() when `routing`.
  // Returns the document as written.
  json Mutate(const std::string& id, std::string_view kind, const std::function<void(json&)>& fn,
              bool routing = true);
  // Mutate for an fn that answers with a Status: nothing is written unless it is OK, and then
  // the error (or Find's) is returned. Throws DbError.
  Result<json> Change(const std::string& id, std::string_view kind, const std::function<Status(json&)>& fn,
                      bool routing = true);
  bool Delete(const std::string& id, std::string_view kind);

  // Key-value rows for API keys and usage plans.
  json LoadKey(const std::string& table, const std::string& id, const std::string& what);
  std::vector<json> ListKeys(const std::string& table);
  void PutKey(const std::string& table, const std::string& id, const json& doc);
  bool DeleteKey(const std::string& table, const std::string& id);

  // REST helpers on a document: NotFoundException thrown, or nullptr from the Find forms.
  static json& Resource(json& doc, const std::string& resource_id);
  static json& Method(json& doc, const std::string& resource_id, const std::string& http_method);
  static json* FindResource(json& doc, const std::string& resource_id);
  static json* FindMethod(json& doc, const std::string& resource_id, const std::string& http_method);
  // Full path of a new child: "/" + part, or parent + "/" + part.
  static std::string ChildPath(const std::string& parent_path, const std::string& part);

  // The gateway's view of every API.
  void ContributeRoutes(proto::RouteTable& table);
};

// Validation shared by the model (the Status forms) and the handlers (the throwing forms).
Result<std::string> HttpMethodOf(const std::string& method);  // upper-cased; BadRequest if not a verb or ANY
Status ValidatePathPart(const std::string& part);              // BadRequest for "", "/", bad braces
// "METHOD /path" or "$default"; BadRequest otherwise. Returns {method, path}.
Result<std::pair<std::string, std::string>> RouteKeyOf(const std::string& route_key);
std::string CheckHttpMethod(const std::string& method);   // HttpMethodOf, thrown
void CheckPathPart(const std::string& part);             // ValidatePathPart, thrown
std::pair<std::string, std::string> ParseRouteKey(const std::string& route_key);  // RouteKeyOf, thrown
// The function a Lambda proxy integration uri names ("" when it names none).
std::string FunctionArnFromUri(const std::string& uri);

// The custom domain operations (v1 /domainnames..., v2 /v2/domainnames...) over control's domain
// registry (control/services/domains.h); apigateway_domains.cpp. False when `seg` (the decoded path
// segments) is not one of their paths; AWS-shaped ApiExceptions otherwise.
bool HandleDomainNames(ApiGatewayModel::Impl& m, DomainRegistry& reg, net::HttpRequest& req, const std::vector<std::string>& seg,
                       const std::shared_ptr<net::HttpResponder>& resp, const std::string& request_id);

}  // namespace apigw
}  // namespace geysir::control
