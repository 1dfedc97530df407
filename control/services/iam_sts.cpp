// IAM and STS: see iam_sts.h.
#include "control/services/iam_sts.h"


#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>

#include <nlohmann/json.hpp>

#include "control/db.h"
#include "control/services/lambda/lambda_api.h"
#include "control/services/protocol.h"
#include "control/store.h"
#include "base/json_bounds.h"

namespace geysir::control {
namespace {

using nlohmann::json;
using net::HttpRequest;
using net::HttpResponse;

constexpr std::string_view kIamXmlns = "https://iam.amazonaws.com/doc/2010-05-08/";
constexpr std::string_view kStsXmlns = "https://sts.amazonaws.com/doc/2011-06-15/";

const std::vector<Migration> kIamSteps = {
    {1, "iam: roles and their inline policies",
     "CREATE TABLE iam_roles ("
     "  name TEXT NOT NULL COLLATE NOCASE PRIMARY KEY,"  // IAM names are unique ignoring case
     "  role_id TEXT NOT NULL,"
     "  path TEXT NOT NULL,"
     "  created_ms INTEGER NOT NULL,"
     "  assume_role_policy TEXT NOT NULL,"
     "  description TEXT NOT NULL,"
     "  max_session_duration INTEGER NOT NULL,"
     "  tags TEXT NOT NULL"  // JSON [[key, value], ...]
     ");"
     "CREATE TABLE iam_role_policies ("
     "  role_name TEXT NOT NULL COLLATE NOCASE REFERENCES iam_roles(name),"
     "  policy_name TEXT NOT NULL COLLATE NOCASE,"
     "  document TEXT NOT NULL,"
     "  PRIMARY KEY (role_name, policy_name)"
     ");"},
};

// IAM's and STS's error types whose status is not their code's: a size limit and an unknown
// action are plain 400s in the query protocol.
constexpr ErrorStatus kQueryErrorStatuses[] = {
    {"LimitExceeded", 400},
    {"InvalidAction", 400},
};

Status ValidationError(std::string message) { return AwsStatus(Code::kInvalidArgument, "ValidationError", std::move(message)); }

// Authentication failures arrive worded for Lambda; the query services name them so.
AwsError AsQueryError(const AwsError& e, const char* internal_code) {
  AwsError out = e;
  if (e.type == "InvalidSignatureException") {
    out.type = "SignatureDoesNotMatch";
  } else if (e.type == "UnrecognizedClientException") {
    out.type = "InvalidClientTokenId";
  } else if (e.type == "MissingAuthenticationTokenException") {
    out.type = "MissingAuthenticationToken";
  } else if (e.type == "IncompleteSignatureException") {
    out.type = "IncompleteSignature";
  } else if (e.type == "ServiceException" || e.type.empty()) {
    out.type = internal_code;
  }
  return out;
}

// An integer parameter, range-checked from its digits: "-1", "1e999999", "1.5", "+3" or 20
// digits are refused with ValidationError, never clamped, wrapped or read through a double.
Result<std::optional<int64_t>> IntParam(const std::map<std::string, std::string>& form, const std::string& name,
                                        int64_t lo, int64_t hi) {
  auto it = form.find(name);
  if (it == form.end()) return std::optional<int64_t>();
  const std::string& v = it->second;
  int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n < lo || n > hi) {
    std::string member = name;
    member[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(member[0])));
    return ValidationError("1 validation error detected: Value '" + v.substr(0, 32) + "' at '" + member +
                           "' failed to satisfy constraint: Member must be an integer between " +
                           std::to_string(lo) + " and " + std::to_string(hi));
  }
  return std::optional<int64_t>(n);
}

// IAM's list pagination: MaxItems (1..1000, default 100) and Marker, which is the first item of
// the page (handed out as the previous page's Marker). Writes IsTruncated and Marker; returns
// the range of `items` to list.
Result<std::pair<size_t, size_t>> Paginate(const std::map<std::string, std::string>& form,
                                           const std::vector<std::string>& items, XmlWriter& x) {
  GEYSIR_ASSIGN_OR_RETURN(const std::optional<int64_t> max_param, IntParam(form, "MaxItems", 1, 1000));
  const size_t max_items = static_cast<size_t>(max_param.value_or(100));
  size_t begin = 0;
  if (auto it = form.find("Marker"); it != form.end()) {
    auto at = std::find(items.begin(), items.end(), it->second);
    if (it->second.empty() || at == items.end()) {
      return ValidationError("Invalid Marker: it names no item of this listing (any more).");
    }
    begin = static_cast<size_t>(at - items.begin());
  }
  const size_t end = std::min(items.size(), begin + max_items);
  x.Leaf("IsTruncated", end < items.size() ? "true" : "false");
  if (end < items.size()) x.Leaf("Marker", items[end]);
  return std::pair<size_t, size_t>(begin, end);
}

std::map<std::string, std::string> RequestForm(const HttpRequest& req) {
  std::map<std::string, std::string> form = ParseForm(req.body);
  for (auto& [k, v] : ParseForm(req.query)) form.emplace(k, v);
  return form;
}

Result<std::string> Required(const std::map<std::string, std::string>& form, const std::string& name) {
  auto it = form.find(name);
  if (it == form.end() || it->second.empty()) {
    return ValidationError("1 validation error detected: Value null at '" +
                           std::string(1, static_cast<char>(std::tolower(name[0]))) + name.substr(1) +
                           "' failed to satisfy constraint: Member must not be null");
  }
  return it->second;
}

std::string Optional(const std::map<std::string, std::string>& form, const std::string& name,
                     std::string fallback = {}) {
  auto it = form.find(name);
  return it == form.end() ? fallback : it->second;
}

Status CheckName(const std::string& value, const char* field, size_t max) {
  auto allowed = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("_+=,.@-").find(c) != std::string_view::npos;
  };
  if (value.empty() || value.size() > max || !std::all_of(value.begin(), value.end(), allowed)) {
    return ValidationError(std::string("1 validation error detected: Value '") + value + "' at '" + field +
                           "' failed to satisfy constraint: Member must satisfy regular expression "
                           "pattern: [\\w+=,.@-]+ and have length between 1 and " + std::to_string(max));
  }
  return Status::Ok();
}

Status CheckPolicy(const std::string& doc) {
  json j = ParseUntrustedJsonOrDiscarded(doc);
  if (!j.is_object()) {
    return AwsStatus(Code::kInvalidArgument, "MalformedPolicyDocument", "The policy document is not a JSON object.");
  }
  if (doc.size() > 10240) {
    return AwsStatus(Code::kResourceExhausted, "LimitExceeded", "Cannot exceed quota for PolicySize: 10240");
  }
  return Status::Ok();
}

// IAM returns policy documents URL-encoded (RFC 3986); botocore unquotes and parses them.
std::string UrlEncode(std::string_view in) { return net::PercentEncode(in); }

Result<std::string> RandomId(std::string_view prefix) {
  return std::string(prefix) + RandomString(17, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
}

struct Role {
  std::string name, role_id, path, assume_role_policy, description;
  int64_t created_ms = 0;
  int64_t max_session_duration = 3600;
  std::vector<std::pair<std::string, std::string>> tags;
};

std::optional<Role> FindRole(Db& db, const std::string& name) {
  Statement s = db.Prepare(
      "SELECT name, role_id, path, created_ms, assume_role_policy, description, max_session_duration, tags "
      "FROM iam_roles WHERE name = ?");
  s.Bind(1, name);
  if (!s.Step()) return std::nullopt;
  Role r;
  r.name = s.Text(0);
  r.role_id = s.Text(1);
  r.path = s.Text(2);
  r.created_ms = s.Int(3);
  r.assume_role_policy = s.Text(4);
  r.description = s.Text(5);
  r.max_session_duration = s.Int(6);
  json tags = json::parse(s.Text(7), nullptr, false);
  if (tags.is_array()) {
    for (const auto& t : tags) r.tags.emplace_back(t[0].get<std::string>(), t[1].get<std::string>());
  }
  return r;
}

Result<Role> RequireRole(Db& db, const std::string& name) {
  auto r = FindRole(db, name);
  if (!r) return AwsStatus(Code::kNotFound, "NoSuchEntity", "The role with name " + name + " cannot be found.");
  return *r;
}

// The role the request's RoleName names.
Result<Role> RequireRole(Db& db, const std::map<std::string, std::string>& form) {
  GEYSIR_ASSIGN_OR_RETURN(const std::string name, Required(form, "RoleName"));
  return RequireRole(db, name);
}

std::string TagsJson(const std::vector<std::pair<std::string, std::string>>& tags) {
  json j = json::array();
  for (const auto& [k, v] : tags) j.push_back({k, v});
  return j.dump();
}

std::vector<std::pair<std::string, std::string>> FormTags(const std::map<std::string, std::string>& form) {
  std::vector<std::pair<std::string, std::string>> tags;
  auto keys = ListMembers(form, "Tags.member", "Key");
  auto values = ListMembers(form, "Tags.member", "Value");
  for (size_t i = 0; i < keys.size(); ++i) tags.emplace_back(keys[i], i < values.size() ? values[i] : "");
  return tags;
}

void WriteTags(XmlWriter& x, const std::vector<std::pair<std::string, std::string>>& tags) {
  x.Open("Tags");
  for (const auto& [k, v] : tags) {
    x.Open("member");
    x.Leaf("Key", k);
    x.Leaf("Value", v);
    x.Close("member");
  }
  x.Close("Tags");
}

void WriteRole(XmlWriter& x, const Role& r, const ApiContext& api, const char* element = "Role") {
  x.Open(element);
  x.Leaf("Path", r.path);
  x.Leaf("RoleName", r.name);
  x.Leaf("RoleId", r.role_id);
  x.Leaf("Arn", "arn:aws:iam::" + api.account_id + ":role" + r.path + r.name);
  x.Leaf("CreateDate", IsoTimestamp(r.created_ms));
  x.Leaf("AssumeRolePolicyDocument", UrlEncode(r.assume_role_policy));
  if (!r.description.empty()) x.Leaf("Description", r.description);
  x.Leaf("MaxSessionDuration", std::to_string(r.max_session_duration));
  if (!r.tags.empty()) WriteTags(x, r.tags);
  x.Close(element);
}

HttpResponse WithRid(HttpResponse r, const std::string& rid) {
  r.headers.emplace_back("x-amz-request-id", rid);
  return r;
}

}  // namespace

Status IamService::Start() {
  host_.store().db().MigrateTrack("iam", kIamSteps);
  return Status::Ok();
}

std::span<const ErrorStatus> IamService::error_statuses() const { return kQueryErrorStatuses; }

HttpResponse IamService::ErrorResponse(const AwsError& error, const std::string& request_id) const {
  return QueryError(AsQueryError(error, "ServiceFailure"), kIamXmlns, request_id);
}

Status IamService::Handle(HttpRequest& req, const Responder& resp, const RequestInfo& info) {
  const auto form = RequestForm(req);
  const std::string action = Optional(form, "Action");
  const std::string& rid = info.request_id;
  Db& db = host_.store().db();
  const ApiContext& api = host_.api();
  auto reply = [&](std::string_view xml) {
    resp->Send(QueryReply(action, kIamXmlns, xml, rid));
    return Status::Ok();
  };
  auto bare = [&]() {
    resp->Send(QueryReply(action, kIamXmlns, "", rid, false));
    return Status::Ok();
  };

  if (action == "CreateRole") {
    Role r;
    GEYSIR_ASSIGN_OR_RETURN(r.name, Required(form, "RoleName"));
    GEYSIR_RETURN_IF_ERROR(CheckName(r.name, "roleName", 64));
    GEYSIR_ASSIGN_OR_RETURN(r.assume_role_policy, Required(form, "AssumeRolePolicyDocument"));
    GEYSIR_RETURN_IF_ERROR(CheckPolicy(r.assume_role_policy));
    r.path = Optional(form, "Path", "/");
    if (r.path.empty() || r.path.front() != '/' || r.path.back() != '/') {
      return ValidationError("The specified value for path is invalid. It must begin and end with / and "
                             "contain only alphanumeric characters and/or / characters.");
    }
    r.description = Optional(form, "Description");
    GEYSIR_ASSIGN_OR_RETURN(const std::optional<int64_t> msd, IntParam(form, "MaxSessionDuration", 3600, 43200));
    if (msd) r.max_session_duration = *msd;
    r.tags = FormTags(form);
    GEYSIR_ASSIGN_OR_RETURN(r.role_id, RandomId("AROA"));
    r.created_ms = host_.NowMs();
    if (FindRole(db, r.name)) {
      return AwsStatus(Code::kAlreadyExists, "EntityAlreadyExists", "Role with name " + r.name + " already exists.");
    }
    Statement s = db.Prepare(
        "INSERT INTO iam_roles (name, role_id, path, created_ms, assume_role_policy, description, "
        "max_session_duration, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    s.BindAll(r.name, r.role_id, r.path, r.created_ms, r.assume_role_policy, r.description, r.max_session_duration,
              TagsJson(r.tags));
    s.Run();
    XmlWriter x;
    WriteRole(x, r, api);
    return reply(x.str());
  }
  if (action == "GetRole") {
    GEYSIR_ASSIGN_OR_RETURN(Role r, RequireRole(db, form));
    XmlWriter x;
    WriteRole(x, r, api);
    return reply(x.str());
  }
  if (action == "ListRoles") {
    std::string prefix = Optional(form, "PathPrefix", "/");
    std::vector<std::string> names;
    Statement s = db.Prepare("SELECT name, path FROM iam_roles ORDER BY name COLLATE NOCASE");
    while (s.Step()) {
      if (s.Text(1).rfind(prefix, 0) == 0) names.push_back(s.Text(0));
    }
    XmlWriter page;
    GEYSIR_ASSIGN_OR_RETURN(const auto range, Paginate(form, names, page));
    const auto [begin, end] = range;
    XmlWriter x;
    x.Open("Roles");
    for (size_t i = begin; i < end; ++i) {
      GEYSIR_ASSIGN_OR_RETURN(const Role listed, RequireRole(db, names[i]));
      WriteRole(x, listed, api, "member");
    }
    x.Close("Roles");
    return reply(x.str() + page.str());
  }
  if (action == "DeleteRole") {
    GEYSIR_ASSIGN_OR_RETURN(Role r, RequireRole(db, form));
    Statement p = db.Prepare("SELECT 1 FROM iam_role_policies WHERE role_name = ? LIMIT 1");
    p.Bind(1, r.name);
    if (p.Step()) return AwsStatus(Code::kConflict, "DeleteConflict", "Cannot delete entity, must delete policies first.");
    db.Prepare("DELETE FROM iam_roles WHERE name = ?").Bind(1, r.name).Run();
    return bare();
  }
  if (action == "UpdateAssumeRolePolicy") {
    GEYSIR_ASSIGN_OR_RETURN(Role r, RequireRole(db, form));
    GEYSIR_ASSIGN_OR_RETURN(const std::string doc, Required(form, "PolicyDocument"));
    GEYSIR_RETURN_IF_ERROR(CheckPolicy(doc));
    db.Prepare("UPDATE iam_roles SET assume_role_policy = ? WHERE name = ?").BindAll(doc, r.name).Run();
    return bare();
  }
  if (action == "UpdateRole") {
    GEYSIR_ASSIGN_OR_RETURN(Role r, RequireRole(db, form));
    if (form.count("Description")) r.description = form.at("Description");
    GEYSIR_ASSIGN_OR_RETURN(const std::optional<int64_t> msd, IntParam(form, "MaxSessionDuration", 3600, 43200));
    if (msd) r.max_session_duration = *msd;
    db.Prepare("UPDATE iam_roles SET description = ?, max_session_duration = ? WHERE name = ?")
        .BindAll(r.description, r.max_session_duration, r.name)
        .Run();
    return reply("");
  }
  if (action == "TagRole") {
    GEYSIR_ASSIGN_OR_RETURN(Role r, RequireRole(db, form));
    for (const auto& [k, v] : FormTags(form)) {
      const std::string& key = k;  // Clang 14 cannot capture a structured binding
      auto it = std::find_if(r.tags.begin(), r.tags.end(), [&](const auto& t) { return t.first == key; });
      if (it != r.tags.end()) it->second = v;
      else r.tags.emplace_back(k, v);
    }
    db.Prepare("UPDATE iam_roles SET tags = ? WHERE name = ?").BindAll(TagsJson(r.tags), r.name).Run();
    return bare();
  }
  if (action == "ListRoleTags") {
    GEYSIR_ASSIGN_OR_RETURN(Role r, RequireRole(db, form));
    std::vector<std::string> keys;
    for (const auto& [k, v] : r.tags) keys.push_back(k);
    XmlWriter page;
    GEYSIR_ASSIGN_OR_RETURN(const auto range, Paginate(form, keys, page));
    const auto [begin, end] = range;
    r.tags = std::vector(r.tags.begin() + static_cast<std::ptrdiff_t>(begin), r.tags.begin() + static_cast<std::ptrdiff_t>(end));
    XmlWriter x;
    WriteTags(x, r.tags);
    return reply(x.str() + page.str());
  }
  if (action == "PutRolePolicy") {
    GEYSIR_ASSIGN_OR_RETURN(Role r, RequireRole(db, form));
    GEYSIR_ASSIGN_OR_RETURN(const std::string policy, Required(form, "PolicyName"));
    GEYSIR_RETURN_IF_ERROR(CheckName(policy, "policyName", 128));
    GEYSIR_ASSIGN_OR_RETURN(const std::string doc, Required(form, "PolicyDocument"));
    GEYSIR_RETURN_IF_ERROR(CheckPolicy(doc));
    db.Prepare("INSERT OR REPLACE INTO iam_role_policies (role_name, policy_name, document) VALUES (?, ?, ?)")
        .BindAll(r.name, policy, doc)
        .Run();
    return bare();
  }
  if (action == "GetRolePolicy") {
    GEYSIR_ASSIGN_OR_RETURN(Role r, RequireRole(db, form));
    GEYSIR_ASSIGN_OR_RETURN(const std::string policy, Required(form, "PolicyName"));
    Statement s = db.Prepare("SELECT policy_name, document FROM iam_role_policies WHERE role_name = ? AND policy_name = ?");
    s.BindAll(r.name, policy);
    if (!s.Step()) return AwsStatus(Code::kNotFound, "NoSuchEntity", "The role policy with name " + policy + " cannot be found.");
    XmlWriter x;
    x.Leaf("RoleName", r.name);
    x.Leaf("PolicyName", s.Text(0));
    x.Leaf("PolicyDocument", UrlEncode(s.Text(1)));
    return reply(x.str());
  }
  if (action == "DeleteRolePolicy") {
    GEYSIR_ASSIGN_OR_RETURN(Role r, RequireRole(db, form));
    GEYSIR_ASSIGN_OR_RETURN(const std::string policy, Required(form, "PolicyName"));
    if (db.Prepare("DELETE FROM iam_role_policies WHERE role_name = ? AND policy_name = ?").BindAll(r.name, policy).Run() == 0) {
      return AwsStatus(Code::kNotFound, "NoSuchEntity", "The role policy with name " + policy + " cannot be found.");
    }
    return bare();
  }
  if (action == "ListRolePolicies") {
    GEYSIR_ASSIGN_OR_RETURN(Role r, RequireRole(db, form));
    std::vector<std::string> names;
    Statement s = db.Prepare("SELECT policy_name FROM iam_role_policies WHERE role_name = ? ORDER BY policy_name");
    s.Bind(1, r.name);
    while (s.Step()) names.push_back(s.Text(0));
    XmlWriter page;
    GEYSIR_ASSIGN_OR_RETURN(const auto range, Paginate(form, names, page));
    const auto [begin, end] = range;
    XmlWriter x;
    x.Open("PolicyNames");
    for (size_t i = begin; i < end; ++i) x.Leaf("member", names[i]);
    x.Close("PolicyNames");
    return reply(x.str() + page.str());
  }
  return AwsStatus(Code::kUnimplemented, "InvalidAction",
                   "Could not find operation " + action + " for version " + Optional(form, "Version") +
                       " (Geysir's IAM supports roles and inline role policies).");
}

std::span<const ErrorStatus> StsService::error_statuses() const { return kQueryErrorStatuses; }

HttpResponse StsService::ErrorResponse(const AwsError& error, const std::string& request_id) const {
  return QueryError(AsQueryError(error, "InternalFailure"), kStsXmlns, request_id);
}

Status StsService::Handle(HttpRequest& req, const Responder& resp, const RequestInfo& info) {
  const auto form = RequestForm(req);
  const std::string action = Optional(form, "Action");
  if (action == "GetCallerIdentity") {
    const std::string& account = host_.api().account_id;
    Result<AccessKey> key = host_.store().GetAccessKey(info.access_key_id);
    std::string user = key.ok() && key->is_admin ? "geysir-admin" : info.access_key_id;
    XmlWriter x;
    x.Leaf("Arn", "arn:aws:iam::" + account + ":user/" + user);
    // AWS's UserId of an IAM user is its unique id ("AIDA..."); the key id is ours.
    x.Leaf("UserId", "AIDA" + info.access_key_id.substr(std::min<size_t>(4, info.access_key_id.size())));
    x.Leaf("Account", account);
    resp->Send(WithRid(QueryReply(action, kStsXmlns, x.str(), info.request_id), info.request_id));
    return Status::Ok();
  }
  return AwsStatus(Code::kUnimplemented, "InvalidAction",
                   "Could not find operation " + action + " for version " + Optional(form, "Version") +
                       " (Geysir's STS supports GetCallerIdentity).");
}

}  // namespace geysir::control
