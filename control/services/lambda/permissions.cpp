// Resource-based policies: AddPermission, GetPolicy, RemovePermission.
#include "control/services/lambda/lambda_internal.h"

#include "base/log.h"
#include "control/aws_error.h"

namespace geysir::control::lambda {

using nlohmann::json;
using net::HttpRequest;

namespace {

// What a policy request addresses: the qualifier scopes the policy ("" = the function itself),
// and it must exist.
struct PolicyScope {
  FunctionRef ref;
  std::string qualifier;
  FunctionRecord latest;
  std::string resource;  // the ARN statements name
};

PolicyScope ScopeOf(Lambda& l, const Call& call) {
  PolicyScope s;
  s.ref = ResolveFunctionRef(call.route.function, call.Qualifier());
  s.qualifier = s.ref.qualifier == "$LATEST" ? "" : s.ref.qualifier;
  s.latest = l.GetOrThrow(s.ref.name);
  if (!s.qualifier.empty()) (void)l.ResolveOrThrow(s.ref, false);
  s.resource = QualifiedArn(l.api_, s.ref.name, s.qualifier);
  return s;
}

ApiException NoPolicy() { return ApiException(ResourceNotFound("The resource you requested does not exist.")); }

}  // namespace

void Lambda::AddPermission(Call& call) {
  const PolicyScope scope = ScopeOf(*this, call);
  const net::HttpRequest& req = call.req;
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  PermissionInput in = ParseAddPermission(api_, scope.resource, ParseJsonObject(req.body));
  if (in.revision_id && *in.revision_id != scope.latest.revision_id) {
    throw ApiException(PreconditionFailed("The Revision Id provided does not match the latest Revision Id. Call "
                                          "the GetFunction/GetAlias API to retrieve the latest Revision Id"));
  }
  Status st = store_.AddPermission(PermissionRecord{scope.ref.name, scope.qualifier, in.sid, in.statement});
  if (st.code() == Code::kAlreadyExists) throw ApiException(ResourceConflict(st.message()));
  ThrowIfError(st);
  log::Info("permission_added", {{"function", scope.ref.name}, {"qualifier", scope.qualifier}, {"sid", in.sid}});
  resp->Send(JsonReply(201, {{"Statement", DumpJson(in.statement)}}, rid));
}

void Lambda::RemovePermission(Call& call) {
  const PolicyScope scope = ScopeOf(*this, call);
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  Status st = store_.RemovePermission(scope.ref.name, scope.qualifier, call.route.sub);
  if (st.code() == Code::kNotFound) throw NoPolicy();
  ThrowIfError(st);
  resp->Send(EmptyReply(204, rid));
}

void Lambda::GetPolicy(Call& call) {
  const PolicyScope scope = ScopeOf(*this, call);
  const Responder& resp = call.resp;
  const std::string& rid = call.rid;
  std::vector<PermissionRecord> statements = ValueOrThrow(store_.ListPermissions(scope.ref.name, scope.qualifier));
  if (statements.empty()) throw NoPolicy();
  json list = json::array();
  for (const PermissionRecord& p : statements) list.push_back(p.statement);
  json policy = {{"Version", "2012-10-17"}, {"Id", "default"}, {"Statement", std::move(list)}};
  resp->Send(JsonReply(200, {{"Policy", DumpJson(policy)}, {"RevisionId", scope.latest.revision_id}}, rid));
}

}  // namespace geysir::control::lambda
