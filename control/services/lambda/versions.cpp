// Versions and aliases: PublishVersion, ListVersionsByFunction, and Create/Get/Update/Delete/
// ListAliases.
#include "control/services/lambda/lambda_internal.h"

#include "base/log.h"
#include "control/aws_error.h"

namespace geysir::control::lambda {

using nlohmann::json;
using net::HttpRequest;

namespace {

// kNotFound from the store: the function, the alias or a version the alias would route to is
// missing. Which one is decided by looking, never by the store's message: the function first;
// then, when the store got as far as checking the alias's versions (`targets`: the alias as it
// would have been written), the first of them that does not exist, in the store's order;
// otherwise the alias itself.
[[noreturn]] void RethrowAliasError(Lambda& l, const std::string& name, const Status& st, const std::string& alias,
                                    const AliasRecord* targets) {
  if (st.code() == Code::kNotFound) {
    if (!l.store_.GetFunction(name).ok()) {
      throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(l.api_, name)));
    }
    if (targets == nullptr) {
      throw ApiException(ResourceNotFound("Cannot find alias arn: " + QualifiedArn(l.api_, name, alias)));
    }
    std::vector<std::string> versions = {targets->function_version};
    for (const auto& [version, weight] : targets->additional_weights) versions.push_back(version);
    for (const std::string& version : versions) {
      if (!l.store_.GetFunctionVersion(name, version).ok()) {
        throw ApiException(ResourceNotFound("Function not found: " + QualifiedArn(l.api_, name, version)));
      }
    }
  }
  if (st.code() == Code::kAlreadyExists) {
    throw ApiException(ResourceConflict("Alias already exists: " + QualifiedArn(l.api_, name, alias)));
  }
  ThrowIfError(st);
  throw ApiException(ServiceError(st.message()));  // not reached: ThrowIfError throws for every error
}

}  // namespace

void Lambda::PublishVersion(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, "");
  const net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  PublishInput in = ParsePublishVersion(ParseJsonObject(req.body));
  std::optional<AwsError> refused;
  Result<FunctionRecord> v = store_.PublishVersion(name, in.description, [&](const FunctionRecord& f) -> Status {
    if (in.code_sha256 && *in.code_sha256 != f.code_sha256) {
      refused = InvalidParameterValue("CodeSHA256 (" + *in.code_sha256 + ") is different from current CodeSHA256 in "
                                      "$LATEST (" + f.code_sha256 + "). Please try again.");
    } else if (in.revision_id && *in.revision_id != f.revision_id) {
      refused = PreconditionFailed("The Revision Id provided does not match the latest Revision Id. Call the "
                                   "GetFunction/GetAlias API to retrieve the latest Revision Id");
    }
    return refused ? Status::Invalid("precondition") : Status::Ok();
  });
  if (refused) throw ApiException(*refused);
  if (!v.ok() && v.status().code() == Code::kNotFound) {
    throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(api_, name)));
  }
  FunctionRecord out = ValueOrThrow(std::move(v));
  log::Info("function_version_published", {{"function", name}, {"version", out.version}});
  resp->Send(JsonReply(201, FunctionConfigurationJson(out), rid));
}

void Lambda::ListVersionsByFunction(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, "");
  const net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  auto query = ParseQuery(req.query);
  int max_items = 50;
  if (auto it = query.find("MaxItems"); it != query.end()) {
    auto v = ParseInt(it->second);
    if (!v || *v < 1 || *v > 10000) {
      throw ApiException(InvalidParameterValue("MaxItems must be an integer between 1 and 10000"));
    }
    max_items = static_cast<int>(*v);
  }
  Result<FunctionPage> page = store_.ListVersions(name, query.count("Marker") ? query["Marker"] : "", max_items);
  if (!page.ok() && page.status().code() == Code::kNotFound) {
    throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(api_, name)));
  }
  FunctionPage p = ValueOrThrow(std::move(page));
  json versions = json::array();
  for (const FunctionRecord& f : p.functions) {
    json v = FunctionConfigurationJson(f);
    if (f.version == "$LATEST") v["FunctionArn"] = f.arn + ":$LATEST";  // as Lambda lists it
    versions.push_back(std::move(v));
  }
  json body = {{"Versions", std::move(versions)}};
  if (!p.next_marker.empty()) body["NextMarker"] = p.next_marker;
  resp->Send(JsonReply(200, body, rid));
}

FunctionRecord Lambda::PublishAfterDeploy(const std::string& name) {
  FunctionRecord v = ValueOrThrow(store_.PublishVersion(name, ""));
  log::Info("function_version_published", {{"function", name}, {"version", v.version}, {"code_sha256", v.code_sha256}});
  return v;
}

void Lambda::CreateAlias(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, "");
  const net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  AliasInput in = ParseAlias(ParseJsonObject(req.body), true);
  AliasRecord a;
  a.function_name = name;
  a.name = *in.name;
  a.function_version = *in.function_version;
  a.description = in.description.value_or("");
  if (in.weights) a.additional_weights = *in.weights;
  Result<AliasRecord> created = store_.CreateAlias(a);
  if (!created.ok()) RethrowAliasError(*this, name, created.status(), a.name, &a);
  log::Info("alias_created", {{"function", name}, {"alias", a.name}, {"version", a.function_version}});
  // API Gateway integrations name functions by qualified ARN: the gateway's table follows.
  PushRoutes();
  resp->Send(JsonReply(201, AliasJson(api_, *created), rid));
}

void Lambda::GetAlias(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, "");
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  Result<AliasRecord> a = store_.GetAlias(name, call.route.sub);
  if (!a.ok()) RethrowAliasError(*this, name, a.status(), call.route.sub, nullptr);
  resp->Send(JsonReply(200, AliasJson(api_, *a), rid));
}

void Lambda::UpdateAlias(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, "");
  const net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  AliasInput in = ParseAlias(ParseJsonObject(req.body), false);
  bool precondition_failed = false;
  std::optional<AliasRecord> proposed;  // set once the store found the alias
  Result<AliasRecord> a = store_.UpdateAlias(name, call.route.sub, [&](AliasRecord& r) -> Status {
    if (in.revision_id && *in.revision_id != r.revision_id) {
      precondition_failed = true;
      return Status::Invalid("revision mismatch");
    }
    if (in.function_version) r.function_version = *in.function_version;
    if (in.description) r.description = *in.description;
    if (in.weights) r.additional_weights = *in.weights;
    proposed = r;
    return Status::Ok();
  });
  if (precondition_failed) {
    throw ApiException(PreconditionFailed("The Revision Id provided does not match the latest Revision Id. Call "
                                          "the GetFunction/GetAlias API to retrieve the latest Revision Id"));
  }
  if (!a.ok()) RethrowAliasError(*this, name, a.status(), call.route.sub, proposed ? &*proposed : nullptr);
  PushRoutes();
  resp->Send(JsonReply(200, AliasJson(api_, *a), rid));
}

void Lambda::DeleteAlias(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, "");
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  Status st = store_.DeleteAlias(name, call.route.sub);
  if (!st.ok()) RethrowAliasError(*this, name, st, call.route.sub, nullptr);
  PushRoutes();
  resp->Send(EmptyReply(204, rid));
}

void Lambda::ListAliases(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, "");
  auto query = ParseQuery(call.req.query);
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  Result<std::vector<AliasRecord>> list =
      store_.ListAliases(name, query.count("FunctionVersion") ? query["FunctionVersion"] : "");
  if (!list.ok()) RethrowAliasError(*this, name, list.status(), "", nullptr);
  json aliases = json::array();
  for (const AliasRecord& a : *list) aliases.push_back(AliasJson(api_, a));
  resp->Send(JsonReply(200, {{"Aliases", std::move(aliases)}}, rid));
}

}  // namespace geysir::control::lambda
