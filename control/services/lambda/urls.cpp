// Function URL configs: Create, Get, Update, Delete and List.
#include "control/services/lambda/lambda_internal.h"

#include "base/log.h"
#include "control/aws_error.h"

namespace geysir::control::lambda {

using nlohmann::json;
using net::HttpRequest;

namespace {

// kNotFound from the store: the function or its URL config is missing.
[[noreturn]] void RethrowUrlError(Lambda& l, const std::string& name, const Status& st) {
  if (st.code() == Code::kNotFound) {
    Result<FunctionRecord> f = l.store_.GetFunction(name);
    if (!f.ok() && f.status().code() == Code::kNotFound) {
      throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(l.api_, name)));
    }
    throw ApiException(ResourceNotFound("The resource you requested does not exist."));
  }
  ThrowIfError(st);
  throw ApiException(ServiceError(st.message()));  // not reached: ThrowIfError throws for every error
}

}  // namespace

void Lambda::CreateFunctionUrlConfig(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, call.Qualifier());
  const std::string arn = FunctionArn(api_, name);
  const net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  UrlConfigInput in = ParseUrlConfig(ParseJsonObject(req.body), true);
  FunctionUrlConfigRecord c;
  c.function_name = name;
  c.auth_type = *in.auth_type;
  if (in.cors) c.cors = *in.cors;
  if (in.invoke_mode) c.invoke_mode = *in.invoke_mode;
  Result<FunctionUrlConfigRecord> created = store_.CreateFunctionUrlConfig(c);
  if (!created.ok() && created.status().code() == Code::kAlreadyExists) {
    throw ApiException(ResourceConflict("Failed to create function url config for [functionArn = " + arn +
                                        "]. Error message:  FunctionUrlConfig exists for this Lambda function"));
  }
  if (!created.ok()) RethrowUrlError(*this, name, created.status());
  log::Info("function_url_created", {{"function", name}, {"url", FunctionUrl(api_, created->url_id)}});
  PushRoutes();
  resp->Send(JsonReply(201, FunctionUrlConfigJson(api_, *created, false), rid));
}

void Lambda::GetFunctionUrlConfig(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, call.Qualifier());
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  Result<FunctionUrlConfigRecord> c = store_.GetFunctionUrlConfig(name);
  if (!c.ok()) RethrowUrlError(*this, name, c.status());
  resp->Send(JsonReply(200, FunctionUrlConfigJson(api_, *c, true), rid));
}

void Lambda::UpdateFunctionUrlConfig(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, call.Qualifier());
  const net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  UrlConfigInput in = ParseUrlConfig(ParseJsonObject(req.body), false);
  Result<FunctionUrlConfigRecord> c =
      store_.UpdateFunctionUrlConfig(name, [&](FunctionUrlConfigRecord& r) -> Status {
        if (in.auth_type) r.auth_type = *in.auth_type;
        if (in.cors) r.cors = *in.cors;
        if (in.invoke_mode) r.invoke_mode = *in.invoke_mode;
        return Status::Ok();
      });
  if (!c.ok()) RethrowUrlError(*this, name, c.status());
  PushRoutes();
  resp->Send(JsonReply(200, FunctionUrlConfigJson(api_, *c, true), rid));
}

void Lambda::DeleteFunctionUrlConfig(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, call.Qualifier());
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  Status st = store_.DeleteFunctionUrlConfig(name);
  if (!st.ok()) RethrowUrlError(*this, name, st);
  log::Info("function_url_deleted", {{"function", name}});
  PushRoutes();
  resp->Send(EmptyReply(204, rid));
}

void Lambda::ListFunctionUrlConfigs(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, call.Qualifier());
  auto query = ParseQuery(call.req.query);
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  int max_items = 50;
  if (auto it = query.find("MaxItems"); it != query.end()) {
    auto v = ParseInt(it->second);
    if (!v || *v < 1 || *v > 50) {
      throw ApiException(InvalidParameterValue("MaxItems must be an integer between 1 and 50"));
    }
    max_items = static_cast<int>(*v);
  }
  Result<FunctionUrlConfigPage> page =
      store_.ListFunctionUrlConfigs(name, query.count("Marker") ? query["Marker"] : "", max_items);
  if (!page.ok()) RethrowUrlError(*this, name, page.status());
  json configs = json::array();
  for (const auto& c : page->configs) configs.push_back(FunctionUrlConfigJson(api_, c, true));
  json body = {{"FunctionUrlConfigs", std::move(configs)}};
  if (!page->next_marker.empty()) body["NextMarker"] = page->next_marker;
  resp->Send(JsonReply(200, body, rid));
}

}  // namespace geysir::control::lambda
