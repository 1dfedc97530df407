// AWS::Lambda::Permission for Geysir's CloudFormation: a statement in the function's
// resource-based policy, made by the same parser and Store call as the Lambda API's
// AddPermission, so GetPolicy shows it exactly as if Zappa had called AddPermission itself.
// Stored, not enforced (as every Lambda resource policy in Geysir).
#include "control/aws_error.h"
#include "control/services/lambda/lambda_api.h"
#include "control/service.h"
#include "control/services/cloudformation/cloudformation_resources.h"
#include "control/store.h"

namespace geysir::control::cfn {
namespace {

using nlohmann::json;

class PermissionProvider final : public ResourceProvider {
 public:
  explicit PermissionProvider(ServiceHost& host) : host_(host) {}

  Result<Provisioned> Create(const std::string& stack, const std::string& logical, const json& p) override {
    const std::string raw = p.value("FunctionName", "");
    if (raw.empty()) return Status::Invalid("Property FunctionName cannot be empty.");
    FunctionRef ref = ParseFunctionRef(raw);  // throws InvalidParameterValueException
    const std::string qualifier = ref.qualifier == "$LATEST" ? "" : ref.qualifier;
    Result<FunctionRecord> f = host_.store().GetFunction(ref.name);
    if (!f.ok()) {
      return Status::NotFound("Function not found: " + FunctionArn(host_.api(), ref.name) +
                              " (AWS::Lambda::Permission needs the function to exist first)");
    }
    // AWS names the statement after the stack and logical id plus a random suffix.
    const std::string sid = stack + "-" + logical + "-" + NewUuid().substr(0, 8);
    json body = {{"StatementId", sid}};
    for (const char* k : {"Action", "Principal", "SourceArn", "SourceAccount", "EventSourceToken",
                          "PrincipalOrgID", "FunctionUrlAuthType"}) {
      if (p.contains(k)) body[k] = p[k];
    }
    PermissionInput in = ParseAddPermission(host_.api(), QualifiedArn(host_.api(), ref.name, qualifier), body);
    Status st = host_.store().AddPermission(PermissionRecord{ref.name, qualifier, in.sid, in.statement});
    if (!st.ok()) return st;
    return Provisioned{in.sid, {{"FunctionName", ref.name}, {"Qualifier", qualifier}}};
  }

  Status Delete(const ResourceRecord& r) override {
    Status st = host_.store().RemovePermission(r.attributes.value("FunctionName", ""),
                                               r.attributes.value("Qualifier", ""), r.physical_id);
    // The function (and with it its policy) may be gone already: Zappa deletes the stack first,
    // but a user may not.
    if (st.code() == Code::kNotFound) return Status::Ok();
    return st;
  }

 private:
  ServiceHost& host_;
};

}  // namespace

std::unique_ptr<ResourceProvider> MakeLambdaPermissionProvider(ServiceHost& host) {
  return std::make_unique<PermissionProvider>(host);
}

}  // namespace geysir::control::cfn
