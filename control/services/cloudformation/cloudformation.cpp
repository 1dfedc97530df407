#include "control/services/cloudformation/cloudformation.h"

#include <algorithm>

#include "control/services/lambda/lambda_api.h"
#include "control/services/cloudformation/cloudformation_resources.h"
#include "control/services/cloudformation/cloudformation_stacks.h"
#include "control/services/protocol.h"
#include "control/services/s3/s3_objects.h"
#include "control/store.h"

namespace geysir::control {
namespace {

using cfn::EventRecord;
using cfn::ResourceRecord;
using cfn::StackRecord;
using nlohmann::json;
using Form = std::map<std::string, std::string>;

constexpr const char* kXmlns = "http://cloudformation.amazonaws.com/doc/2010-05-15/";
// CloudFormation's own limit on a template passed in the request (TemplateBody); one read
// from S3 may be up to 1 MB.
constexpr size_t kMaxBodyTemplate = 51200;
constexpr uint64_t kMaxUrlTemplate = 1024 * 1024;

AwsError ValidationError(std::string message) { return MakeAwsError(400, "ValidationError", std::move(message)); }

std::string Get(const Form& f, const std::string& key) {
  auto it = f.find(key);
  return it == f.end() ? "" : it->second;
}

std::string Required(const Form& f, const std::string& key, const char* member) {
  auto it = f.find(key);
  if (it == f.end() || it->second.empty()) {
    throw ApiException(ValidationError(std::string("1 validation error detected: Value null at '") + member +
                                       "' failed to satisfy constraint: Member must not be null"));
  }
  return it->second;
}

std::vector<std::pair<std::string, std::string>> Pairs(const Form& f, const std::string& prefix, const char* key,
                                                       const char* value) {
  std::vector<std::string> keys = ListMembers(f, prefix, key);
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < keys.size(); ++i) {
    out.emplace_back(keys[i], Get(f, prefix + "." + std::to_string(i + 1) + "." + value));
  }
  return out;
}

// The template of a CreateStack / UpdateStack / ValidateTemplate: TemplateBody, or the object
// TemplateURL names in Geysir's S3. nullopt when neither is given.
std::optional<std::string> TemplateOf(ObjectSource& objects, const Form& f) {
  const bool has_body = f.count("TemplateBody") > 0;
  const bool has_url = f.count("TemplateURL") > 0;
  if (has_body && has_url) {
    throw ApiException(ValidationError("Specify exactly one of TemplateBody or TemplateUrl."));
  }
  if (has_body) {
    const std::string& body = f.at("TemplateBody");
    if (body.size() > kMaxBodyTemplate) {
      throw ApiException(ValidationError("1 validation error detected: Value at 'templateBody' failed to satisfy "
                                         "constraint: Member must have length less than or equal to 51200"));
    }
    return body;
  }
  if (!has_url) return std::nullopt;
  const std::string& url = f.at("TemplateURL");
  std::optional<s3::ObjectRef> ref = s3::ParseObjectUrl(url);
  if (!ref) throw ApiException(ValidationError("TemplateURL must be a supported URL."));
  Result<std::string> body = objects.ReadObject(ref->bucket, ref->key, kMaxUrlTemplate);
  if (!body.ok()) {
    if (body.status().code() == Code::kResourceExhausted) {
      throw ApiException(ValidationError("Template may not exceed 1048576 bytes in size."));
    }
    // AWS words an unreadable TemplateURL this way; the S3 reason (its error code first, when it
    // has one) says which part is missing.
    const Status& why = body.status();
    const std::string reason = why.aws_type().empty() ? why.message() : why.aws_type() + ": " + why.message();
    throw ApiException(ValidationError("S3 error: Access Denied (" + reason + "): TemplateURL " + url +
                                       " names no object in Geysir's S3"));
  }
  return std::move(body).value();
}

void StackXml(XmlWriter& x, const StackRecord& s) {
  x.Open("member");
  x.Leaf("StackId", s.stack_id);
  x.Leaf("StackName", s.name);
  if (!s.description.empty()) x.Leaf("Description", s.description);
  x.Open("Parameters");
  for (const auto& [k, v] : s.parameters) {
    x.Open("member");
    x.Leaf("ParameterKey", k);
    x.Leaf("ParameterValue", v);
    x.Close("member");
  }
  x.Close("Parameters");
  x.Leaf("CreationTime", IsoTimestamp(s.created_ms));
  if (s.updated_ms) x.Leaf("LastUpdatedTime", IsoTimestamp(s.updated_ms));
  x.Leaf("StackStatus", s.status);
  if (!s.status_reason.empty()) x.Leaf("StackStatusReason", s.status_reason);
  x.Leaf("DisableRollback", s.disable_rollback ? "true" : "false");
  x.Open("NotificationARNs");
  x.Close("NotificationARNs");
  x.Open("Capabilities");
  for (const std::string& c : s.capabilities) x.Leaf("member", c);
  x.Close("Capabilities");
  x.Open("Outputs");
  for (const json& o : s.outputs) {
    x.Open("member");
    x.Leaf("OutputKey", o.value("OutputKey", ""));
    x.Leaf("OutputValue", o.value("OutputValue", ""));
    if (o.contains("Description")) x.Leaf("Description", o.value("Description", ""));
    if (o.contains("ExportName")) x.Leaf("ExportName", o.value("ExportName", ""));
    x.Close("member");
  }
  x.Close("Outputs");
  x.Open("Tags");
  for (const auto& [k, v] : s.tags) {
    x.Open("member");
    x.Leaf("Key", k);
    x.Leaf("Value", v);
    x.Close("member");
  }
  x.Close("Tags");
  x.Leaf("EnableTerminationProtection", "false");
  x.Open("DriftInformation");
  x.Leaf("StackDriftStatus", "NOT_CHECKED");
  x.Close("DriftInformation");
  x.Close("member");
}

void ResourceFields(XmlWriter& x, const StackRecord& s, const ResourceRecord& r, const char* time_field) {
  x.Leaf("StackName", s.name);
  x.Leaf("StackId", s.stack_id);
  x.Leaf("LogicalResourceId", r.logical_id);
  if (!r.physical_id.empty()) x.Leaf("PhysicalResourceId", r.physical_id);
  x.Leaf("ResourceType", r.type);
  x.Leaf(time_field, IsoTimestamp(r.updated_ms));
  x.Leaf("ResourceStatus", r.status);
  if (!r.status_reason.empty()) x.Leaf("ResourceStatusReason", r.status_reason);
}

}  // namespace

CloudFormationService::CloudFormationService(ServiceHost& host, apigw::ApiGatewayModel& apis, ObjectSource& objects)
    : host_(host), apis_(apis), objects_(objects) {}
CloudFormationService::~CloudFormationService() = default;

Status CloudFormationService::Start() {
  providers_ = std::make_unique<cfn::ResourceProviders>(host_, apis_);
  cfn::EngineOptions o;
  o.region = host_.api().region;
  o.account_id = host_.api().account_id;
  o.now_ms = [this] { return host_.NowMs(); };
  o.new_uuid = [] { return NewUuid(); };
  cfn::ResourceProviders* providers = providers_.get();
  engine_ = std::make_unique<cfn::StackEngine>(
      host_.store().db(), [providers](std::string_view type) { return providers->Find(type); }, std::move(o));
  try {
    engine_->Start();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("CloudFormation tables: ") + e.what());
  }
  return Status::Ok();
}

net::HttpResponse CloudFormationService::ErrorResponse(const AwsError& error, const std::string& request_id) const {
  return QueryError(error, kXmlns, request_id);
}

Status CloudFormationService::Handle(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) {
  HandleOrThrow(req, resp, info);
  return Status::Ok();
}

void CloudFormationService::HandleOrThrow(net::HttpRequest& req, const Responder& resp, const RequestInfo& info) {
  const Form f = req.method == "GET" ? ParseForm(req.query) : ParseForm(req.body);
  const std::string action = Get(f, "Action");
  const std::string& rid = info.request_id;
  auto reply = [&](const XmlWriter& x) { resp->Send(QueryReply(action, kXmlns, x.str(), rid)); };
  XmlWriter x;

  if (action == "CreateStack") {
    cfn::CreateStackInput in;
    in.name = Required(f, "StackName", "stackName");
    std::optional<std::string> body = TemplateOf(objects_, f);
    if (!body) throw ApiException(ValidationError("Either Template URL or Template Body must be specified."));
    in.template_body = std::move(*body);
    for (auto& [k, v] : Pairs(f, "Parameters.member", "ParameterKey", "ParameterValue")) in.parameters[k] = v;
    in.tags = Pairs(f, "Tags.member", "Key", "Value");
    in.capabilities = ListMembers(f, "Capabilities.member");
    in.on_failure = Get(f, "OnFailure");
    if (in.on_failure.empty()) in.on_failure = Get(f, "DisableRollback") == "true" ? "DO_NOTHING" : "ROLLBACK";
    x.Leaf("StackId", engine_->CreateStack(in));
    return reply(x);
  }
  if (action == "UpdateStack") {
    cfn::UpdateStackInput in;
    in.name = Required(f, "StackName", "stackName");
    in.template_body = TemplateOf(objects_, f);
    if (!in.template_body && Get(f, "UsePreviousTemplate") != "true") {
      throw ApiException(ValidationError("Either Template URL or Template Body must be specified."));
    }
    std::vector<std::string> keys = ListMembers(f, "Parameters.member", "ParameterKey");
    for (size_t i = 0; i < keys.size(); ++i) {
      const std::string base = "Parameters.member." + std::to_string(i + 1) + ".";
      if (Get(f, base + "UsePreviousValue") == "true") {
        in.use_previous_parameters.push_back(keys[i]);
      } else {
        in.parameters[keys[i]] = Get(f, base + "ParameterValue");
      }
    }
    // Tags absent = keep the stack's; "Tags=" with no members = remove them all.
    if (f.count("Tags.member.1") || f.count("Tags.member.1.Key") || f.count("Tags")) {
      in.tags = Pairs(f, "Tags.member", "Key", "Value");
    }
    in.capabilities = ListMembers(f, "Capabilities.member");
    x.Leaf("StackId", engine_->UpdateStack(in));
    return reply(x);
  }
  if (action == "DeleteStack") {
    engine_->DeleteStack(Required(f, "StackName", "stackName"));
    resp->Send(QueryReply(action, kXmlns, "", rid, false));
    return;
  }
  if (action == "DescribeStacks") {
    std::vector<StackRecord> stacks;
    if (f.count("StackName")) {
      stacks.push_back(engine_->GetStack(f.at("StackName")));
    } else {
      stacks = engine_->ListStacks();
    }
    x.Open("Stacks");
    for (const StackRecord& s : stacks) StackXml(x, s);
    x.Close("Stacks");
    return reply(x);
  }
  if (action == "ListStacks") {
    std::vector<std::string> filter = ListMembers(f, "StackStatusFilter.member");
    x.Open("StackSummaries");
    for (const StackRecord& s : engine_->ListStacks()) {
      if (!filter.empty() && std::find(filter.begin(), filter.end(), s.status) == filter.end()) continue;
      x.Open("member");
      x.Leaf("StackId", s.stack_id);
      x.Leaf("StackName", s.name);
      if (!s.description.empty()) x.Leaf("TemplateDescription", s.description);
      x.Leaf("CreationTime", IsoTimestamp(s.created_ms));
      if (s.updated_ms) x.Leaf("LastUpdatedTime", IsoTimestamp(s.updated_ms));
      x.Leaf("StackStatus", s.status);
      if (!s.status_reason.empty()) x.Leaf("StackStatusReason", s.status_reason);
      x.Close("member");
    }
    x.Close("StackSummaries");
    return reply(x);
  }
  if (action == "DescribeStackResource") {
    StackRecord s = engine_->GetStack(Required(f, "StackName", "stackName"));
    const std::string logical = Required(f, "LogicalResourceId", "logicalResourceId");
    for (const ResourceRecord& r : engine_->ListResources(s.stack_id)) {
      if (r.logical_id != logical) continue;
      x.Open("StackResourceDetail");
      ResourceFields(x, s, r, "LastUpdatedTimestamp");
      x.Open("DriftInformation");
      x.Leaf("StackResourceDriftStatus", "NOT_CHECKED");
      x.Close("DriftInformation");
      x.Close("StackResourceDetail");
      return reply(x);
    }
    throw ApiException(ValidationError("Resource " + logical + " does not exist for stack " + s.name));
  }
  if (action == "DescribeStackResources") {
    if (!f.count("StackName")) {
      throw ApiException(ValidationError("Geysir needs StackName for DescribeStackResources (a lookup by "
                                         "PhysicalResourceId alone is not supported)"));
    }
    StackRecord s = engine_->GetStack(f.at("StackName"));
    const std::string logical = Get(f, "LogicalResourceId");
    const std::string physical = Get(f, "PhysicalResourceId");
    x.Open("StackResources");
    for (const ResourceRecord& r : engine_->ListResources(s.stack_id)) {
      if (!logical.empty() && r.logical_id != logical) continue;
      if (!physical.empty() && r.physical_id != physical) continue;
      x.Open("member");
      ResourceFields(x, s, r, "Timestamp");
      x.Close("member");
    }
    x.Close("StackResources");
    return reply(x);
  }
  if (action == "ListStackResources") {
    StackRecord s = engine_->GetStack(Required(f, "StackName", "stackName"));
    x.Open("StackResourceSummaries");
    for (const ResourceRecord& r : engine_->ListResources(s.stack_id)) {
      x.Open("member");
      x.Leaf("LogicalResourceId", r.logical_id);
      if (!r.physical_id.empty()) x.Leaf("PhysicalResourceId", r.physical_id);
      x.Leaf("ResourceType", r.type);
      x.Leaf("LastUpdatedTimestamp", IsoTimestamp(r.updated_ms));
      x.Leaf("ResourceStatus", r.status);
      if (!r.status_reason.empty()) x.Leaf("ResourceStatusReason", r.status_reason);
      x.Open("DriftInformation");
      x.Leaf("StackResourceDriftStatus", "NOT_CHECKED");
      x.Close("DriftInformation");
      x.Close("member");
    }
    x.Close("StackResourceSummaries");
    return reply(x);
  }
  if (action == "DescribeStackEvents") {
    StackRecord s = engine_->GetStack(Required(f, "StackName", "stackName"));
    x.Open("StackEvents");
    for (const EventRecord& e : engine_->ListEvents(s.stack_id)) {
      x.Open("member");
      x.Leaf("StackId", e.stack_id);
      x.Leaf("EventId", e.event_id);
      x.Leaf("StackName", e.stack_name);
      x.Leaf("LogicalResourceId", e.logical_id);
      if (!e.physical_id.empty()) x.Leaf("PhysicalResourceId", e.physical_id);
      x.Leaf("ResourceType", e.type);
      x.Leaf("Timestamp", IsoTimestamp(e.timestamp_ms));
      x.Leaf("ResourceStatus", e.status);
      if (!e.status_reason.empty()) x.Leaf("ResourceStatusReason", e.status_reason);
      x.Close("member");
    }
    x.Close("StackEvents");
    return reply(x);
  }
  if (action == "GetTemplate") {
    StackRecord s = engine_->GetStack(Required(f, "StackName", "stackName"));
    x.Leaf("TemplateBody", s.template_body);
    x.Open("StagesAvailable");
    x.Leaf("member", "Original");
    x.Leaf("member", "Processed");
    x.Close("StagesAvailable");
    return reply(x);
  }
  if (action == "ValidateTemplate") {
    std::optional<std::string> body = TemplateOf(objects_, f);
    if (!body) throw ApiException(ValidationError("Either Template URL or Template Body must be specified."));
    cfn::Template t = engine_->Validate(*body);
    x.Open("Parameters");
    for (const cfn::TemplateParameter& p : t.parameters) {
      x.Open("member");
      x.Leaf("ParameterKey", p.name);
      if (p.default_value) x.Leaf("DefaultValue", *p.default_value);
      x.Leaf("NoEcho", p.no_echo ? "true" : "false");
      if (!p.description.empty()) x.Leaf("Description", p.description);
      x.Close("member");
    }
    x.Close("Parameters");
    if (!t.description.empty()) x.Leaf("Description", t.description);
    x.Open("Capabilities");
    x.Close("Capabilities");
    return reply(x);
  }
  throw ApiException(MakeAwsError(400, "InvalidAction",
                                  action.empty() ? "Action is required (Action=CreateStack, DescribeStacks, ...)"
                                                 : "The action " + action + " is not valid for this web service."));
}

}  // namespace geysir::control
