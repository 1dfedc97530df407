#include "control/services/cloudformation/cloudformation_stacks.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "control/aws_error.h"
#include "control/db.h"
#include "base/json_bounds.h"
#include "base/log.h"

namespace geysir::control::cfn {
namespace {

using nlohmann::json;

const std::vector<Migration>& Steps() {
  static const std::vector<Migration> steps = {
      {1, "stacks, their resources and events",
       "CREATE TABLE cfn_stacks ("
       "  stack_id TEXT PRIMARY KEY,"
       "  name TEXT NOT NULL UNIQUE,"
       "  status TEXT NOT NULL,"
       "  status_reason TEXT NOT NULL DEFAULT '',"
       "  description TEXT NOT NULL DEFAULT '',"
       "  template_body TEXT NOT NULL,"
       "  parameters TEXT NOT NULL DEFAULT '{}',"
       "  tags TEXT NOT NULL DEFAULT '[]',"
       "  outputs TEXT NOT NULL DEFAULT '[]',"
       "  capabilities TEXT NOT NULL DEFAULT '[]',"
       "  disable_rollback INTEGER NOT NULL DEFAULT 0,"
       "  created_ms INTEGER NOT NULL,"
       "  updated_ms INTEGER NOT NULL DEFAULT 0);"
       "CREATE TABLE cfn_resources ("
       "  stack_id TEXT NOT NULL REFERENCES cfn_stacks(stack_id) ON DELETE CASCADE,"
       "  logical_id TEXT NOT NULL,"
       "  type TEXT NOT NULL,"
       "  physical_id TEXT NOT NULL DEFAULT '',"
       "  status TEXT NOT NULL,"
       "  status_reason TEXT NOT NULL DEFAULT '',"
       "  properties TEXT NOT NULL DEFAULT '{}',"
       "  attributes TEXT NOT NULL DEFAULT '{}',"
       "  seq INTEGER NOT NULL,"
       "  updated_ms INTEGER NOT NULL,"
       "  PRIMARY KEY (stack_id, logical_id));"
       "CREATE TABLE cfn_events ("
       "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
       "  event_id TEXT NOT NULL,"
       "  stack_id TEXT NOT NULL REFERENCES cfn_stacks(stack_id) ON DELETE CASCADE,"
       "  stack_name TEXT NOT NULL,"
       "  logical_id TEXT NOT NULL,"
       "  physical_id TEXT NOT NULL DEFAULT '',"
       "  type TEXT NOT NULL,"
       "  status TEXT NOT NULL,"
       "  status_reason TEXT NOT NULL DEFAULT '',"
       "  timestamp_ms INTEGER NOT NULL);"
       "CREATE INDEX cfn_events_by_stack ON cfn_events(stack_id, id);"},
  };
  return steps;
}

constexpr int kMaxEventsPerStack = 1000;
constexpr const char* kStackType = "AWS::CloudFormation::Stack";

AwsError ValidationError(std::string message) { return MakeAwsError(400, "ValidationError", std::move(message)); }

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json ParseOr(const std::string& text, json fallback) {
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

json TagsJson(const std::vector<std::pair<std::string, std::string>>& tags) {
  json a = json::array();
  for (const auto& [k, v] : tags) a.push_back({{"Key", k}, {"Value", v}});
  return a;
}

std::vector<std::pair<std::string, std::string>> TagsFrom(const json& a) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!a.is_array()) return out;
  for (const json& t : a) out.emplace_back(t.value("Key", ""), t.value("Value", ""));
  return out;
}

StackRecord ReadStack(const Statement& s) {
  StackRecord r;
  r.stack_id = s.Text(0);
  r.name = s.Text(1);
  r.status = s.Text(2);
  r.status_reason = s.Text(3);
  r.description = s.Text(4);
  r.template_body = s.Text(5);
  json params = ParseOr(s.Text(6), json::object());
  for (const auto& [k, v] : params.items()) r.parameters[k] = v.is_string() ? v.get<std::string>() : v.dump();
  r.tags = TagsFrom(ParseOr(s.Text(7), json::array()));
  r.outputs = ParseOr(s.Text(8), json::array());
  json caps = ParseOr(s.Text(9), json::array());
  for (const json& c : caps) {
    if (c.is_string()) r.capabilities.push_back(c.get<std::string>());
  }
  r.disable_rollback = s.Int(10) != 0;
  r.created_ms = s.Int(11);
  r.updated_ms = s.Int(12);
  return r;
}

constexpr const char* kStackColumns =
    "stack_id, name, status, status_reason, description, template_body, parameters, tags, outputs, "
    "capabilities, disable_rollback, created_ms, updated_ms";

// What a provider call threw (the API Gateway model throws ApiException) as a Status.
template <typename F>
auto Guard(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const ApiException& e) {
    return Status::Invalid(e.error().message);
  } catch (const std::exception& e) {
    return Status::Internal(e.what());
  }
}

bool ValidStackName(const std::string& name) {
  if (name.empty() || name.size() > 128 || !std::isalpha(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; });
}

}  // namespace

StackEngine::StackEngine(Db& db, ProviderLookup providers, EngineOptions options)
    : db_(db), providers_(std::move(providers)), opt_(std::move(options)) {}

void StackEngine::Start() {
  db_.MigrateTrack("cloudformation", Steps());
  for (StackRecord& s : ListStacks()) {
    if (s.status.size() > 12 && s.status.compare(s.status.size() - 12, 12, "_IN_PROGRESS") == 0) {
      Recover(std::move(s));
    }
  }
}

Template StackEngine::ParseOrThrow(std::string_view body) const {
  Result<Template> t = ParseTemplate(body, [this](std::string_view type) { return providers_(type) != nullptr; });
  if (!t.ok()) throw ApiException(ValidationError(t.status().message()));
  return std::move(t).value();
}

Template StackEngine::Validate(std::string_view body) const { return ParseOrThrow(body); }

// ---------------------------------------------------------------------------------------------
// Reads

std::optional<StackRecord> StackEngine::FindStack(const std::string& name_or_id) const {
  Statement s = db_.Prepare(std::string("SELECT ") + kStackColumns +
                            " FROM cfn_stacks WHERE name = ?1 OR stack_id = ?1");
  s.BindAll(name_or_id);
  if (!s.Step()) return std::nullopt;
  return ReadStack(s);
}

StackRecord StackEngine::GetStack(const std::string& name_or_id) const {
  std::optional<StackRecord> s = FindStack(name_or_id);
  if (!s) throw ApiException(ValidationError("Stack with id " + name_or_id + " does not exist"));
  return *s;
}

std::vector<StackRecord> StackEngine::ListStacks() const {
  Statement s = db_.Prepare(std::string("SELECT ") + kStackColumns + " FROM cfn_stacks ORDER BY created_ms, name");
  std::vector<StackRecord> out;
  while (s.Step()) out.push_back(ReadStack(s));
  return out;
}

std::vector<ResourceRecord> StackEngine::ListResources(const std::string& stack_id) const {
  Statement s = db_.Prepare(
      "SELECT logical_id, type, physical_id, status, status_reason, properties, attributes, seq, updated_ms "
      "FROM cfn_resources WHERE stack_id = ?1 ORDER BY seq");
  s.BindAll(stack_id);
  std::vector<ResourceRecord> out;
  while (s.Step()) {
    ResourceRecord r;
    r.stack_id = stack_id;
    r.logical_id = s.Text(0);
    r.type = s.Text(1);
    r.physical_id = s.Text(2);
    r.status = s.Text(3);
    r.status_reason = s.Text(4);
    r.properties = ParseOr(s.Text(5), json::object());
    r.attributes = ParseOr(s.Text(6), json::object());
    r.seq = s.Int(7);
    r.updated_ms = s.Int(8);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<EventRecord> StackEngine::ListEvents(const std::string& stack_id) const {
  Statement s = db_.Prepare(
      "SELECT event_id, stack_name, logical_id, physical_id, type, status, status_reason, timestamp_ms "
      "FROM cfn_events WHERE stack_id = ?1 ORDER BY id DESC");
  s.BindAll(stack_id);
  std::vector<EventRecord> out;
  while (s.Step()) {
    EventRecord e;
    e.stack_id = stack_id;
    e.event_id = s.Text(0);
    e.stack_name = s.Text(1);
    e.logical_id = s.Text(2);
    e.physical_id = s.Text(3);
    e.type = s.Text(4);
    e.status = s.Text(5);
    e.status_reason = s.Text(6);
    e.timestamp_ms = s.Int(7);
    out.push_back(std::move(e));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writes (each its own transaction: a provider call between them commits its own work)

void StackEngine::InsertStack(const StackRecord& r) {
  Transaction tx(db_);
  Statement s = db_.Prepare(std::string("INSERT INTO cfn_stacks (") + kStackColumns +
                            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)");
  json params = json::object();
  for (const auto& [k, v] : r.parameters) params[k] = v;
  s.BindAll(r.stack_id, r.name, r.status, r.status_reason, r.description, r.template_body, Dump(params),
            Dump(TagsJson(r.tags)), Dump(r.outputs), Dump(json(r.capabilities)), r.disable_rollback, r.created_ms,
            r.updated_ms);
  s.Run();
  tx.Commit();
}

void StackEngine::SaveStack(const StackRecord& r) {
  Transaction tx(db_);
  Statement s = db_.Prepare(
      "UPDATE cfn_stacks SET status = ?2, status_reason = ?3, description = ?4, template_body = ?5, "
      "parameters = ?6, tags = ?7, outputs = ?8, capabilities = ?9, updated_ms = ?10 WHERE stack_id = ?1");
  json params = json::object();
  for (const auto& [k, v] : r.parameters) params[k] = v;
  s.BindAll(r.stack_id, r.status, r.status_reason, r.description, r.template_body, Dump(params),
            Dump(TagsJson(r.tags)), Dump(r.outputs), Dump(json(r.capabilities)), r.updated_ms);
  s.Run();
  tx.Commit();
}

void StackEngine::SetStatus(const StackRecord& stack, const std::string& status, const std::string& reason) {
  {
    Transaction tx(db_);
    Statement s = db_.Prepare("UPDATE cfn_stacks SET status = ?2, status_reason = ?3 WHERE stack_id = ?1");
    s.BindAll(stack.stack_id, status, reason);
    s.Run();
    tx.Commit();
  }
  AddEvent(stack, stack.name, stack.stack_id, kStackType, status, reason);
  log::Info("stack_status", {{"stack", stack.name}, {"status", status}, {"reason", reason}});
}

void StackEngine::RemoveStack(const std::string& stack_id) {
  Transaction tx(db_);
  Statement s = db_.Prepare("DELETE FROM cfn_stacks WHERE stack_id = ?1");
  s.BindAll(stack_id);
  s.Run();
  tx.Commit();
}

void StackEngine::AddEvent(const StackRecord& stack, const std::string& logical_id, const std::string& physical_id,
                           const std::string& type, const std::string& status, const std::string& reason) {
  Transaction tx(db_);
  Statement s = db_.Prepare(
      "INSERT INTO cfn_events (event_id, stack_id, stack_name, logical_id, physical_id, type, status, "
      "status_reason, timestamp_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  s.BindAll(opt_.new_uuid(), stack.stack_id, stack.name, logical_id, physical_id, type, status, reason,
            opt_.now_ms());
  s.Run();
  // Bounded history: the newest kMaxEventsPerStack events of a stack are kept.
  Statement prune = db_.Prepare(
      "DELETE FROM cfn_events WHERE stack_id = ?1 AND id <= (SELECT id FROM cfn_events WHERE stack_id = ?1 "
      "ORDER BY id DESC LIMIT 1 OFFSET ?2)");
  prune.BindAll(stack.stack_id, kMaxEventsPerStack);
  prune.Run();
  tx.Commit();
}

void StackEngine::SaveResource(const ResourceRecord& r) {
  Transaction tx(db_);
  Statement s = db_.Prepare(
      "INSERT INTO cfn_resources (stack_id, logical_id, type, physical_id, status, status_reason, properties, "
      "attributes, seq, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
      "ON CONFLICT(stack_id, logical_id) DO UPDATE SET type = excluded.type, physical_id = excluded.physical_id, "
      "status = excluded.status, status_reason = excluded.status_reason, properties = excluded.properties, "
      "attributes = excluded.attributes, seq = excluded.seq, updated_ms = excluded.updated_ms");
  s.BindAll(r.stack_id, r.logical_id, r.type, r.physical_id, r.status, r.status_reason, Dump(r.properties),
            Dump(r.attributes), r.seq, r.updated_ms);
  s.Run();
  tx.Commit();
}

void StackEngine::DropResource(const std::string& stack_id, const std::string& logical_id) {
  Transaction tx(db_);
  Statement s = db_.Prepare("DELETE FROM cfn_resources WHERE stack_id = ?1 AND logical_id = ?2");
  s.BindAll(stack_id, logical_id);
  s.Run();
  tx.Commit();
}

// ---------------------------------------------------------------------------------------------
// The work

ResolveContext StackEngine::ContextFor(const StackRecord& stack, const std::map<std::string, std::string>& params,
                                       const std::map<std::string, ResourceRecord>* resources) const {
  ResolveContext ctx;
  ctx.parameters = params;
  ctx.pseudo = PseudoParameters(opt_.region, opt_.account_id, stack.name, stack.stack_id);
  ctx.ref = [resources](const std::string& id) -> std::optional<std::string> {
    auto it = resources->find(id);
    if (it == resources->end() || it->second.physical_id.empty()) return std::nullopt;
    return it->second.physical_id;
  };
  ctx.get_att = [resources](const std::string& id, const std::string& attr) -> std::optional<json> {
    auto it = resources->find(id);
    if (it == resources->end() || !it->second.attributes.contains(attr)) return std::nullopt;
    return it->second.attributes[attr];
  };
  return ctx;
}

Status StackEngine::CreateOne(const StackRecord& stack, const TemplateResource& t, const ResolveContext& ctx,
                              int64_t seq) {
  ResourceRecord r;
  r.stack_id = stack.stack_id;
  r.logical_id = t.logical_id;
  r.type = t.type;
  r.seq = seq;
  r.updated_ms = opt_.now_ms();
  r.status = "CREATE_IN_PROGRESS";
  Result<json> props = Resolve(t.properties, ctx);
  if (props.ok()) r.properties = *props;
  SaveResource(r);
  AddEvent(stack, r.logical_id, "", r.type, r.status, "");
  Status st;
  if (!props.ok()) {
    st = props.status();
  } else if (ResourceProvider* p = providers_(t.type)) {
    Result<Provisioned> made = Guard([&]() -> Result<Provisioned> { return p->Create(stack.name, t.logical_id, *props); });
    if (made.ok()) {
      r.physical_id = made->physical_id;
      r.attributes = made->attributes;
    } else {
      st = made.status();
    }
  } else {
    st = Status::Invalid("Geysir has no provider for resource type " + t.type);
  }
  r.updated_ms = opt_.now_ms();
  if (st.ok()) {
    r.status = "CREATE_COMPLETE";
    SaveResource(r);
    AddEvent(stack, r.logical_id, r.physical_id, r.type, r.status, "");
    return st;
  }
  r.status = "CREATE_FAILED";
  r.status_reason = st.message();
  SaveResource(r);
  AddEvent(stack, r.logical_id, r.physical_id, r.type, r.status, r.status_reason);
  log::Warn("stack_resource_failed", {{"stack", stack.name}, {"resource", t.logical_id}, {"type", t.type},
                                      {"reason", r.status_reason}});
  return st;
}

Status StackEngine::Converge(const StackRecord& stack, const Template& t,
                             const std::map<std::string, std::string>& params, json* outputs, std::string* failed) {
  auto fail = [failed](const std::string& where, const std::string& why) {
    if (failed) *failed = where;
    return Status::Invalid(where + ": " + why);
  };
  std::map<std::string, ResourceRecord> live;
  int64_t next_seq = 1;
  for (ResourceRecord& r : ListResources(stack.stack_id)) {
    next_seq = std::max(next_seq, r.seq + 1);
    live.emplace(r.logical_id, std::move(r));
  }

  // Which resources change: compare the properties as they would resolve now with those they
  // were made with. A reference to a changing resource resolves to a marker no stored value
  // contains, so everything depending on a replaced resource is replaced too.
  std::set<std::string> changed;
  std::map<std::string, ResourceRecord> view = live;
  ResolveContext detect = ContextFor(stack, params, &view);
  for (const TemplateResource& r : t.resources) {
    auto it = live.find(r.logical_id);
    bool same = it != live.end() && it->second.type == r.type &&
                (it->second.status == "CREATE_COMPLETE" || it->second.status == "UPDATE_COMPLETE");
    if (same) {
      Result<json> props = Resolve(r.properties, detect);
      same = props.ok() && *props == it->second.properties;
    }
    if (!same) {
      changed.insert(r.logical_id);
      ResourceRecord& v = view[r.logical_id];
      v.physical_id = "\x01replaced:" + r.logical_id;
      json marked = json::object();
      for (const auto& [k, e] : v.attributes.items()) marked[k] = "\x01replaced:" + r.logical_id + "." + k;
      v.attributes = std::move(marked);
    }
  }

  // Delete what changed or left the template, newest first.
  std::vector<ResourceRecord> doomed;
  for (const auto& [id, r] : live) {
    if (changed.count(id) || !t.Find(id)) doomed.push_back(r);
  }
  std::sort(doomed.begin(), doomed.end(), [](const auto& a, const auto& b) { return a.seq > b.seq; });
  for (ResourceRecord& r : doomed) {
    live.erase(r.logical_id);
    if (r.physical_id.empty()) {  // never made (a failed or interrupted create)
      DropResource(stack.stack_id, r.logical_id);
      continue;
    }
    AddEvent(stack, r.logical_id, r.physical_id, r.type, "DELETE_IN_PROGRESS", "");
    ResourceProvider* p = providers_(r.type);
    Status st = p ? Guard([&]() -> Status { return p->Delete(r); })
                  : Status::Invalid("Geysir has no provider for resource type " + r.type + " to delete it with");
    if (!st.ok()) {
      r.status = "DELETE_FAILED";
      r.status_reason = st.message();
      r.updated_ms = opt_.now_ms();
      SaveResource(r);
      AddEvent(stack, r.logical_id, r.physical_id, r.type, r.status, r.status_reason);
      return fail(r.logical_id, st.message());
    }
    DropResource(stack.stack_id, r.logical_id);
    AddEvent(stack, r.logical_id, r.physical_id, r.type, "DELETE_COMPLETE", "");
  }

  // Create what is new or changed, in dependency order.
  ResolveContext real = ContextFor(stack, params, &live);
  for (const TemplateResource& r : t.resources) {
    if (!changed.count(r.logical_id)) continue;
    Status st = CreateOne(stack, r, real, next_seq++);
    if (!st.ok()) return fail(r.logical_id, st.message());
    for (const ResourceRecord& made : ListResources(stack.stack_id)) {
      if (made.logical_id == r.logical_id) live[r.logical_id] = made;
    }
  }

  if (outputs) {
    json out = json::array();
    for (const auto& [name, o] : t.outputs.items()) {
      Result<json> v = Resolve(o["Value"], real);
      if (!v.ok()) return fail("Outputs." + name, v.status().message());
      json entry = {{"OutputKey", name}, {"OutputValue", v->is_string() ? v->get<std::string>() : v->dump()}};
      if (o.contains("Description") && o["Description"].is_string()) entry["Description"] = o["Description"];
      if (o.contains("Export") && o["Export"].is_object() && o["Export"].contains("Name")) {
        Result<json> n = Resolve(o["Export"]["Name"], real);
        if (n.ok() && n->is_string()) entry["ExportName"] = *n;
      }
      out.push_back(std::move(entry));
    }
    *outputs = std::move(out);
  }
  return Status::Ok();
}

Status StackEngine::DeleteAllResources(const StackRecord& stack, std::string* failed) {
  Template empty;
  return Converge(stack, empty, stack.parameters, nullptr, failed);
}

std::string StackEngine::CreateStack(const CreateStackInput& in) {
  if (!ValidStackName(in.name)) {
    throw ApiException(ValidationError("1 validation error detected: Value '" + in.name +
                                       "' at 'stackName' failed to satisfy constraint: Member must satisfy regular "
                                       "expression pattern: [a-zA-Z][-a-zA-Z0-9]*"));
  }
  if (FindStack(in.name)) {
    AwsError e = ValidationError("Stack [" + in.name + "] already exists");
    e.type = "AlreadyExistsException";
    throw ApiException(e);
  }
  if (in.on_failure != "ROLLBACK" && in.on_failure != "DELETE" && in.on_failure != "DO_NOTHING") {
    throw ApiException(ValidationError("OnFailure must be one of ROLLBACK, DELETE, DO_NOTHING"));
  }
  Template t = ParseOrThrow(in.template_body);
  Result<std::map<std::string, std::string>> params = BindParameters(t, in.parameters);
  if (!params.ok()) throw ApiException(ValidationError(params.status().message()));

  StackRecord stack;
  stack.stack_id = "arn:aws:cloudformation:" + opt_.region + ":" + opt_.account_id + ":stack/" + in.name + "/" +
                   opt_.new_uuid();
  stack.name = in.name;
  stack.status = "CREATE_IN_PROGRESS";
  stack.status_reason = "User Initiated";
  stack.description = t.description;
  stack.template_body = in.template_body;
  stack.parameters = *params;
  stack.tags = in.tags;
  stack.capabilities = in.capabilities;
  stack.disable_rollback = in.on_failure == "DO_NOTHING";
  stack.created_ms = opt_.now_ms();
  InsertStack(stack);
  AddEvent(stack, stack.name, stack.stack_id, kStackType, stack.status, stack.status_reason);

  json outputs;
  std::string failed;
  Status st = Converge(stack, t, stack.parameters, &outputs, &failed);
  if (st.ok()) {
    stack.outputs = std::move(outputs);
    stack.status = "CREATE_COMPLETE";
    stack.status_reason.clear();
    SaveStack(stack);
    AddEvent(stack, stack.name, stack.stack_id, kStackType, stack.status, "");
    log::Info("stack_created", {{"stack", stack.name}, {"resources", t.resources.size()}});
    return stack.stack_id;
  }
  const std::string reason = "The following resource(s) failed to create: [" + failed + "]. " + st.message();
  if (in.on_failure == "DO_NOTHING") {
    SetStatus(stack, "CREATE_FAILED", reason);
    return stack.stack_id;
  }
  SetStatus(stack, "ROLLBACK_IN_PROGRESS", reason + ". Rollback requested by user.");
  Status rb = DeleteAllResources(stack);
  if (!rb.ok()) {
    SetStatus(stack, "ROLLBACK_FAILED", reason + ". Rolling back failed too: " + rb.message());
    return stack.stack_id;
  }
  if (in.on_failure == "DELETE") {
    RemoveStack(stack.stack_id);
    return stack.stack_id;
  }
  SetStatus(stack, "ROLLBACK_COMPLETE", reason + ". Rollback requested by user.");
  return stack.stack_id;
}

std::string StackEngine::UpdateStack(const UpdateStackInput& in) {
  StackRecord stack = GetStack(in.name);
  static const std::set<std::string> kUpdatable = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"};
  if (!kUpdatable.count(stack.status)) {
    throw ApiException(ValidationError("Stack:" + stack.stack_id + " is in " + stack.status +
                                       " state and can not be updated."));
  }
  const std::string body = in.template_body ? *in.template_body : stack.template_body;
  Template t = ParseOrThrow(body);
  std::map<std::string, std::string> given = in.parameters;
  for (const std::string& k : in.use_previous_parameters) {
    auto it = stack.parameters.find(k);
    if (it == stack.parameters.end()) {
      throw ApiException(ValidationError("Invalid input for parameter key " + k + ". Cannot specify usePreviousValue "
                                         "as true for a parameter key not in the previous template"));
    }
    given[k] = it->second;
  }
  Result<std::map<std::string, std::string>> params = BindParameters(t, given);
  if (!params.ok()) throw ApiException(ValidationError(params.status().message()));
  const auto tags = in.tags ? *in.tags : stack.tags;
  if (ParseUntrustedJsonOrDiscarded(body) == ParseUntrustedJsonOrDiscarded(stack.template_body) &&
      *params == stack.parameters && tags == stack.tags) {
    throw ApiException(ValidationError("No updates are to be performed."));
  }

  SetStatus(stack, "UPDATE_IN_PROGRESS", "User Initiated");
  json outputs;
  std::string failed;
  Status st = Converge(stack, t, *params, &outputs, &failed);
  if (st.ok()) {
    stack.template_body = body;
    stack.description = t.description;
    stack.parameters = *params;
    stack.tags = tags;
    if (!in.capabilities.empty()) stack.capabilities = in.capabilities;
    stack.outputs = std::move(outputs);
    stack.status = "UPDATE_COMPLETE";
    stack.status_reason.clear();
    stack.updated_ms = opt_.now_ms();
    SaveStack(stack);
    AddEvent(stack, stack.name, stack.stack_id, kStackType, stack.status, "");
    log::Info("stack_updated", {{"stack", stack.name}, {"resources", t.resources.size()}});
    return stack.stack_id;
  }
  const std::string reason = "The following resource(s) failed to update: [" + failed + "]. " + st.message();
  SetStatus(stack, "UPDATE_ROLLBACK_IN_PROGRESS", reason);
  Template previous = ParseOrThrow(stack.template_body);
  Status rb = Converge(stack, previous, stack.parameters, &outputs);
  if (!rb.ok()) {
    SetStatus(stack, "UPDATE_ROLLBACK_FAILED", reason + ". Rolling back failed too: " + rb.message());
  } else {
    stack.outputs = std::move(outputs);
    stack.updated_ms = opt_.now_ms();
    stack.status = "UPDATE_ROLLBACK_COMPLETE";
    stack.status_reason = reason;
    SaveStack(stack);
    AddEvent(stack, stack.name, stack.stack_id, kStackType, stack.status, reason);
  }
  return stack.stack_id;
}

void StackEngine::DeleteStack(const std::string& name_or_id) {
  std::optional<StackRecord> stack = FindStack(name_or_id);
  if (!stack) return;  // deleting a stack that does not exist succeeds, as on AWS
  SetStatus(*stack, "DELETE_IN_PROGRESS", "User Initiated");
  std::string failed;
  Status st = DeleteAllResources(*stack, &failed);
  if (!st.ok()) {
    SetStatus(*stack, "DELETE_FAILED", "The following resource(s) failed to delete: [" + failed + "]. " + st.message());
    return;
  }
  RemoveStack(stack->stack_id);
  log::Info("stack_deleted", {{"stack", stack->name}});
}

void StackEngine::Recover(StackRecord stack) {
  log::Warn("stack_recovering", {{"stack", stack.name}, {"status", stack.status}});
  const std::string why = "Geysir's control stopped while this stack was in " + stack.status;
  if (stack.status == "DELETE_IN_PROGRESS") {
    Status st = DeleteAllResources(stack);
    if (st.ok()) {
      RemoveStack(stack.stack_id);
    } else {
      SetStatus(stack, "DELETE_FAILED", why + "; deleting its resources failed: " + st.message());
    }
    return;
  }
  if (stack.status == "UPDATE_IN_PROGRESS" || stack.status == "UPDATE_ROLLBACK_IN_PROGRESS" ||
      stack.status == "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS") {
    Result<Template> previous =
        ParseTemplate(stack.template_body, [this](std::string_view type) { return providers_(type) != nullptr; });
    json outputs;
    Status st = previous.ok() ? Converge(stack, *previous, stack.parameters, &outputs) : previous.status();
    SetStatus(stack, st.ok() ? "UPDATE_ROLLBACK_COMPLETE" : "UPDATE_ROLLBACK_FAILED",
              why + (st.ok() ? "; rolled back to the previous template" : "; rolling back failed: " + st.message()));
    return;
  }
  // CREATE_IN_PROGRESS, ROLLBACK_IN_PROGRESS, and anything else half-done: roll back.
  Status st = DeleteAllResources(stack);
  SetStatus(stack, st.ok() ? "ROLLBACK_COMPLETE" : "ROLLBACK_FAILED",
            why + (st.ok() ? "; its resources were rolled back" : "; rolling back failed: " + st.message()));
}

}  // namespace geysir::control::cfn
