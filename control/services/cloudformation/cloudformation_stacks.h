// StackEngine: Geysir's CloudFormation stacks — their tables (schema track "cloudformation")
// and the work of creating, updating and deleting the real objects a template describes,
// through one ResourceProvider per resource type (cloudformation_resources.h makes API Gateway
// and Lambda objects; tests plug in their own).
//
// All stack work is synchronous: CreateStack / UpdateStack / DeleteStack return after every
// resource has been made or removed, so the first DescribeStacks already sees the final status
// (CREATE_COMPLETE, ROLLBACK_COMPLETE, UPDATE_COMPLETE, UPDATE_ROLLBACK_COMPLETE, or the stack
// gone). The IN_PROGRESS statuses are written while the work runs; a control that dies
// half-way finds them at start-up and finishes the job (Recover): a half-created stack is
// rolled back, a half-updated one is brought back to its previous template, a half-deleted one
// is deleted. So no stack is ever left in progress.
//
// Updates: a resource whose type and resolved properties are unchanged keeps its physical id;
// one that changed (or depends on one that changed) is replaced — deleted, then created again
// from the new properties — and one no longer in the template is deleted. When creating fails,
// the previous template is applied again (UPDATE_ROLLBACK_COMPLETE); replaced resources come
// back with new physical ids. Deleting first (not AWS's create-then-delete) is deliberate: API
// Gateway objects occupy unique slots (a method on a resource, a path part under a parent), so
// a replacement made before its predecessor is gone would conflict.
//
// Errors the API sees are thrown as ApiException with CloudFormation's types and wording:
// ValidationError (400), AlreadyExistsException (400).
//
// Thread safety: control's loop thread only (it uses the store's SQLite connection).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/services/cloudformation/cloudformation_template.h"
#include "base/status.h"

namespace geysir::control {

class Db;

namespace cfn {

struct StackRecord {
  std::string stack_id;       // arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/UUID
  std::string name;
  std::string status;         // CREATE_COMPLETE, ROLLBACK_COMPLETE, UPDATE_COMPLETE, ...
  std::string status_reason;
  std::string description;
  std::string template_body;  // the template the stack's resources match
  std::map<std::string, std::string> parameters;
  std::vector<std::pair<std::string, std::string>> tags;  // in the order given
  nlohmann::json outputs = nlohmann::json::array();       // [{OutputKey, OutputValue, Description?, ExportName?}]
  std::vector<std::string> capabilities;
  bool disable_rollback = false;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;     // 0 = never updated
};

struct ResourceRecord {
  std::string stack_id;
  std::string logical_id;
  std::string type;
  std::string physical_id;  // "" until made
  std::string status;       // CREATE_IN_PROGRESS, CREATE_COMPLETE, CREATE_FAILED, ...
  std::string status_reason;
  nlohmann::json properties = nlohmann::json::object();  // resolved, as they were made
  nlohmann::json attributes = nlohmann::json::object();  // for Fn::GetAtt (and what Delete needs)
  int64_t seq = 0;          // creation order within the stack
  int64_t updated_ms = 0;
};

struct EventRecord {
  std::string event_id;
  std::string stack_id;
  std::string stack_name;
  std::string logical_id;
  std::string physical_id;
  std::string type;
  std::string status;
  std::string status_reason;
  int64_t timestamp_ms = 0;
};

// What a provider made.
struct Provisioned {
  std::string physical_id;                                // the resource's Ref value
  nlohmann::json attributes = nlohmann::json::object();   // Fn::GetAtt values, and anything Delete needs
};

// Makes and removes one resource type. Errors are Status values whose message becomes the
// resource's ResourceStatusReason (and part of the stack's), so they say what was wrong.
class ResourceProvider {
 public:
  virtual ~ResourceProvider() = default;
  virtual Result<Provisioned> Create(const std::string& stack_name, const std::string& logical_id,
                                     const nlohmann::json& properties) = 0;
  // Removes what Create made. A resource that is already gone is success (deletes repeat).
  virtual Status Delete(const ResourceRecord& resource) = 0;
};

// The providers by resource type. A type without a provider is refused at CreateStack /
// UpdateStack with "Unrecognized resource types: [...]".
using ProviderLookup = std::function<ResourceProvider*(std::string_view type)>;

struct EngineOptions {
  std::string region = "us-east-1";
  std::string account_id = "000000000000";
  std::function<int64_t()> now_ms;
  std::function<std::string()> new_uuid;
};

struct CreateStackInput {
  std::string name;
  std::string template_body;
  std::map<std::string, std::string> parameters;
  std::vector<std::pair<std::string, std::string>> tags;
  std::vector<std::string> capabilities;
  std::string on_failure = "ROLLBACK";  // ROLLBACK | DELETE | DO_NOTHING
};

struct UpdateStackInput {
  std::string name;                     // name or stack id
  std::optional<std::string> template_body;  // nullopt = UsePreviousTemplate
  std::map<std::string, std::string> parameters;
  std::vector<std::string> use_previous_parameters;
  std::optional<std::vector<std::pair<std::string, std::string>>> tags;  // nullopt = keep
  std::vector<std::string> capabilities;
};

class StackEngine {
 public:
  StackEngine(Db& db, ProviderLookup providers, EngineOptions options);

  // Creates the tables, then finishes any stack work a previous control left in progress.
  // Throws DbError.
  void Start();

  // Checks a template (ValidateTemplate); throws ValidationError.
  Template Validate(std::string_view body) const;

  // Returns the new stack's id. The stack is in its final status when this returns.
  std::string CreateStack(const CreateStackInput& in);
  // Returns the stack id. "No updates are to be performed." when nothing would change.
  std::string UpdateStack(const UpdateStackInput& in);
  // Deletes the stack and its resources; a stack that does not exist is success.
  void DeleteStack(const std::string& name_or_id);

  // nullopt when no live stack has that name or id.
  std::optional<StackRecord> FindStack(const std::string& name_or_id) const;
  // Throws ValidationError "Stack with id X does not exist".
  StackRecord GetStack(const std::string& name_or_id) const;
  std::vector<StackRecord> ListStacks() const;
  std::vector<ResourceRecord> ListResources(const std::string& stack_id) const;
  std::vector<EventRecord> ListEvents(const std::string& stack_id) const;  // newest first

 private:
  Template ParseOrThrow(std::string_view body) const;
  // Brings the stack's resources to `t`; throws nothing, returns the first failure ("Id: why")
  // and, when `failed` is given, the logical id (or "Outputs.Name") it failed on.
  Status Converge(const StackRecord& stack, const Template& t, const std::map<std::string, std::string>& params,
                  nlohmann::json* outputs, std::string* failed = nullptr);
  Status DeleteAllResources(const StackRecord& stack, std::string* failed = nullptr);
  Status CreateOne(const StackRecord& stack, const TemplateResource& r, const ResolveContext& ctx, int64_t seq);
  // Resolves against `resources` (by logical id), which must outlive the context.
  ResolveContext ContextFor(const StackRecord& stack, const std::map<std::string, std::string>& params,
                            const std::map<std::string, ResourceRecord>* resources) const;
  void Recover(StackRecord stack);
  void SetStatus(const StackRecord& stack, const std::string& status, const std::string& reason);
  void AddEvent(const StackRecord& stack, const std::string& logical_id, const std::string& physical_id,
                const std::string& type, const std::string& status, const std::string& reason);
  void SaveResource(const ResourceRecord& r);
  void DropResource(const std::string& stack_id, const std::string& logical_id);
  void InsertStack(const StackRecord& s);
  void SaveStack(const StackRecord& s);
  void RemoveStack(const std::string& stack_id);

  Db& db_;
  ProviderLookup providers_;
  EngineOptions opt_;
};

}  // namespace cfn
}  // namespace geysir::control
