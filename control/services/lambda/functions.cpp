// Functions: create, get, update, delete and list, their code and configuration (the deploy
// pipeline that CreateFunction and UpdateFunctionCode start is deploy.cpp).
#include "control/services/lambda/lambda_internal.h"

#include "base/log.h"
#include "control/aws_error.h"

namespace geysir::control::lambda {

using nlohmann::json;
using net::HttpRequest;
using net::HttpResponse;

void Lambda::CreateFunction(Call& call) {
  net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  auto d = std::make_unique<Deploy>();
  d->create = true;
  d->resp = resp;
  d->rid = rid;
  d->body = std::move(req.body);
  StartDeploy(std::move(d));
}

void Lambda::UpdateFunctionCode(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, call.Qualifier());
  net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  GetOrThrow(name);  // a missing function fails fast, before any unpacking
  auto d = std::make_unique<Deploy>();
  d->create = false;
  d->name = name;
  d->resp = resp;
  d->rid = rid;
  d->body = std::move(req.body);
  StartDeploy(std::move(d));
}

void Lambda::ListFunctions(Call& call) {
  const net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  auto query = ParseQuery(req.query);
  int max_items = 50;
  if (auto it = query.find("MaxItems"); it != query.end()) {
    auto v = ParseInt(it->second);
    if (!v || *v < 1 || *v > 10000) {
      throw ApiException(InvalidParameterValue("1 validation error detected: Value '" + it->second.substr(0, 50) +
                                               "' at 'maxItems' failed to satisfy constraint: Member must have value "
                                               "between 1 and 10000"));
    }
    max_items = static_cast<int>(*v);
  }
  std::string marker = query.count("Marker") ? query["Marker"] : "";
  FunctionPage page = ValueOrThrow(store_.ListFunctions(marker, max_items));
  json functions = json::array();
  for (const FunctionRecord& f : page.functions) functions.push_back(FunctionConfigurationJson(f));
  json body = {{"Functions", std::move(functions)}};
  if (!page.next_marker.empty()) body["NextMarker"] = page.next_marker;
  resp->Send(JsonReply(200, body, rid));
}

void Lambda::GetFunction(Call& call) {
  const FunctionRef ref = ResolveFunctionRef(call.route.function, call.Qualifier());
  const net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  FunctionRecord f = ResolveOrThrow(ref, false).target;
  // The link points back at this endpoint as the client reached it.
  const std::string* host = req.Header("Host");
  std::string base = "http://" + (host && !host->empty() ? *host : opt_.endpoint());
  json body = {
      {"Configuration", FunctionConfigurationJson(f)},
      {"Code", {{"RepositoryType", "S3"}, {"Location", base + url_signer_->PathFor(f.code_hex, NowS() + 600)}}},
  };
  if (!f.tags.empty()) body["Tags"] = f.tags;
  if (f.reserved_concurrency) body["Concurrency"] = {{"ReservedConcurrentExecutions", *f.reserved_concurrency}};
  resp->Send(JsonReply(200, body, rid));
}

void Lambda::GetFunctionConfiguration(Call& call) {
  const FunctionRef ref = ResolveFunctionRef(call.route.function, call.Qualifier());
  call.resp->Send(JsonReply(200, FunctionConfigurationJson(ResolveOrThrow(ref, false).target), call.rid));
}

void Lambda::GetCode(Call& call) {
  const std::string& hex = call.route.code_hex;
  const net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  if (!url_signer_->Verify(hex, ParseQuery(req.query), NowS())) {
    AwsError e;
    e.http_status = 403;
    e.type = "AccessDenied";
    e.message = "Request has expired or the signature is invalid; call GetFunction for a fresh Code.Location";
    resp->Send(ToHttpResponse(e, rid));
    return;
  }
  Result<std::string> zip = code_store_.ReadBlob(hex);
  if (!zip.ok()) throw ApiException(FromStatus(zip.status()));
  HttpResponse r;
  r.status = 200;
  r.headers = {{"Content-Type", "application/zip"}, {"x-amzn-RequestId", rid}};
  r.body = std::move(zip).value();
  resp->Send(std::move(r));
}

void Lambda::UpdateFunctionConfiguration(Call& call) {
  const std::string name = ResolveFunctionName(api_, call.route.function, call.Qualifier());
  const net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  ConfigPatch patch = ParseUpdateFunctionConfiguration(ParseJsonObject(req.body));
  bool precondition_failed = false;
  std::string replaced_revision;
  Result<FunctionRecord> updated = store_.UpdateFunction(name, [&](FunctionRecord& f) -> Status {
    if (patch.revision_id && *patch.revision_id != f.revision_id) {
      precondition_failed = true;
      return Status::Invalid("revision mismatch");
    }
    replaced_revision = f.revision_id;
    ApplyPatch(patch, f);
    return Status::Ok();
  });
  if (precondition_failed) {
    throw ApiException(PreconditionFailed("The Revision Id provided does not match the latest Revision Id. Call the "
                                          "GetFunction/GetAlias API to retrieve the latest Revision Id"));
  }
  if (!updated.ok() && updated.status().code() == Code::kNotFound) {
    throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(api_, name)));
  }
  FunctionRecord f = ValueOrThrow(std::move(updated));
  log::Info("function_configured", {{"function", name}, {"revision_id", f.revision_id}});
  // The old revision's sandboxes stop now rather than at the idle timeout.
  if (!replaced_revision.empty() && replaced_revision != f.revision_id) scheduler_.Retire({name, replaced_revision});
  if (HasUrl(name)) PushRoutes();
  resp->Send(JsonReply(200, FunctionConfigurationJson(f), rid));
}

void Lambda::DeleteFunction(Call& call) {
  const FunctionRef ref = ResolveFunctionRef(call.route.function, call.Qualifier());
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  const std::string& name = ref.name;
  if (!ref.qualifier.empty()) {
    // DeleteFunction with a Qualifier deletes one published version.
    if (ref.qualifier == "$LATEST") {
      throw ApiException(InvalidParameterValue("$LATEST version cannot be deleted without deleting the function."));
    }
    if (!IsVersionNumber(ref.qualifier)) {
      throw ApiException(InvalidParameterValue("Deletion of aliases is not supported by DeleteFunction: use DeleteAlias for " +
                                               ref.qualifier));
    }
    Result<FunctionRecord> version = store_.GetFunctionVersion(name, ref.qualifier);
    Status st = store_.DeleteFunctionVersion(name, ref.qualifier);
    if (st.code() == Code::kNotFound) {
      throw ApiException(ResourceNotFound("Function not found: " + QualifiedArn(api_, name, ref.qualifier)));
    }
    if (st.code() == Code::kConflict) throw ApiException(ResourceConflict(st.message()));
    ThrowIfError(st);
    log::Info("function_version_deleted", {{"function", name}, {"version", ref.qualifier}});
    // The version's sandboxes stop now (a version has a revision of its own).
    if (version.ok() && !version->revision_id.empty()) scheduler_.Retire({name, version->revision_id});
    resp->Send(EmptyReply(204, rid));
    return;
  }
  bool had_url = HasUrl(name);
  Status st = store_.DeleteFunction(name);
  if (st.code() == Code::kNotFound) {
    throw ApiException(ResourceNotFound("Function not found: " + FunctionArn(api_, name)));
  }
  ThrowIfError(st);
  log::Info("function_deleted", {{"function", name}});
  scheduler_.Retire({name, ""});  // every sandbox of it stops now, not at the idle timeout
  if (had_url) PushRoutes();
  resp->Send(EmptyReply(204, rid));
}

}  // namespace geysir::control::lambda
