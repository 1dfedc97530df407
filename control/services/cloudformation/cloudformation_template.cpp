#include "control/services/cloudformation/cloudformation_template.h"

#include <algorithm>

#include "base/base64.h"
#include "base/json_bounds.h"

namespace geysir::control::cfn {
namespace {

using nlohmann::json;

Status FormatError(const std::string& what) { return Status::Invalid("Template format error: " + what); }

std::string JoinList(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

// Intrinsics Geysir does not evaluate, with what to say about them.
const std::map<std::string, std::string>& Unsupported() {
  static const std::map<std::string, std::string> m = {
      {"Fn::If", "conditions"},           {"Fn::Equals", "conditions"},      {"Fn::And", "conditions"},
      {"Fn::Or", "conditions"},           {"Fn::Not", "conditions"},         {"Condition", "conditions"},
      {"Fn::FindInMap", "mappings"},      {"Fn::ImportValue", "cross-stack exports"},
      {"Fn::GetAZs", "availability zones"}, {"Fn::Cidr", "Fn::Cidr"},       {"Fn::Transform", "transforms"},
      {"Fn::Length", "Fn::Length"},       {"Fn::ToJsonString", "Fn::ToJsonString"}};
  return m;
}

// The ${Name} / ${Res.Attr} variables of an Fn::Sub string; "${!x}" is a literal "${x}".
std::vector<std::string> SubVariables(const std::string& s) {
  std::vector<std::string> vars;
  size_t i = 0;
  while ((i = s.find("${", i)) != std::string::npos) {
    size_t end = s.find('}', i + 2);
    if (end == std::string::npos) break;
    std::string name = s.substr(i + 2, end - i - 2);
    if (!name.empty() && name[0] != '!') vars.push_back(name);
    i = end + 1;
  }
  return vars;
}

bool IsPseudo(const std::string& name) { return name.rfind("AWS::", 0) == 0; }

// Collects the resources `v` references; fails on functions Geysir does not evaluate.
Status CollectRefs(const json& v, std::set<std::string>& refs) {
  if (v.is_array()) {
    for (const json& e : v) GEYSIR_RETURN_IF_ERROR(CollectRefs(e, refs));
    return Status::Ok();
  }
  if (!v.is_object()) return Status::Ok();
  if (v.size() == 1) {
    const std::string& fn = v.begin().key();
    const json& arg = v.begin().value();
    if (auto it = Unsupported().find(fn); it != Unsupported().end()) {
      return FormatError(fn + " is not supported by Geysir's CloudFormation (no " + it->second +
                         "); write the value out or resolve it before creating the stack");
    }
    if (fn == "Ref") {
      if (!arg.is_string()) return FormatError("Ref takes a string");
      refs.insert(arg.get<std::string>());
      return Status::Ok();
    }
    if (fn == "Fn::GetAtt") {
      if (arg.is_string()) {
        std::string s = arg.get<std::string>();
        size_t dot = s.find('.');
        if (dot == std::string::npos) return FormatError("Fn::GetAtt \"" + s + "\" is not of the form Resource.Attribute");
        refs.insert(s.substr(0, dot));
        return Status::Ok();
      }
      if (!arg.is_array() || arg.size() != 2 || !arg[0].is_string()) {
        return FormatError("Fn::GetAtt takes [LogicalId, AttributeName]");
      }
      refs.insert(arg[0].get<std::string>());
      return CollectRefs(arg[1], refs);
    }
    if (fn == "Fn::Sub") {
      std::string text;
      json vars = json::object();
      if (arg.is_string()) {
        text = arg.get<std::string>();
      } else if (arg.is_array() && arg.size() == 2 && arg[0].is_string() && arg[1].is_object()) {
        text = arg[0].get<std::string>();
        vars = arg[1];
        GEYSIR_RETURN_IF_ERROR(CollectRefs(vars, refs));
      } else {
        return FormatError("Fn::Sub takes a string or [String, {Var: Value}]");
      }
      for (const std::string& name : SubVariables(text)) {
        if (vars.contains(name)) continue;
        refs.insert(name.substr(0, name.find('.')));
      }
      return Status::Ok();
    }
  }
  for (const auto& [k, e] : v.items()) GEYSIR_RETURN_IF_ERROR(CollectRefs(e, refs));
  return Status::Ok();
}

std::string ScalarToString(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number()) return v.dump();
  return v.dump();
}

// Sentinel for AWS::NoValue while resolving: an object no template can contain.
const json& NoValue() {
  static const json v = {{"__geysir_no_value__", true}};
  return v;
}

Result<json> ResolveImpl(const json& v, const ResolveContext& ctx);

Result<std::string> ResolveString(const json& v, const ResolveContext& ctx, const char* fn) {
  Result<json> r = ResolveImpl(v, ctx);
  if (!r.ok()) return r.status();
  if (r->is_string() || r->is_number() || r->is_boolean()) return ScalarToString(*r);
  return Status::Invalid(std::string("Template error: ") + fn + " needs a string, got " + r->dump());
}

Result<json> RefValue(const std::string& name, const ResolveContext& ctx) {
  if (name == "AWS::NoValue") return NoValue();
  if (auto it = ctx.pseudo.find(name); it != ctx.pseudo.end()) return json(it->second);
  if (IsPseudo(name)) return Status::Invalid("Template error: pseudo parameter " + name + " is not supported");
  if (auto it = ctx.parameters.find(name); it != ctx.parameters.end()) return json(it->second);
  if (ctx.ref) {
    if (std::optional<std::string> id = ctx.ref(name)) return json(*id);
  }
  return Status::Invalid("Template error: unresolved reference " + name);
}

Result<json> GetAttValue(const std::string& logical, const std::string& attr, const ResolveContext& ctx) {
  if (ctx.get_att) {
    if (std::optional<json> v = ctx.get_att(logical, attr)) return *v;
  }
  return Status::Invalid("Template error: resource " + logical + " does not support attribute type " + attr +
                         " in Fn::GetAtt");
}

Result<json> ResolveSub(const json& arg, const ResolveContext& ctx) {
  std::string text;
  std::map<std::string, std::string> vars;
  if (arg.is_string()) {
    text = arg.get<std::string>();
  } else {
    if (!arg.is_array() || arg.size() != 2 || !arg[0].is_string() || !arg[1].is_object()) {
      return Status::Invalid("Template error: Fn::Sub takes a String or [String, {Name: Value}]");
    }
    text = arg[0].get<std::string>();
    for (const auto& [k, e] : arg[1].items()) {
      Result<std::string> s = ResolveString(e, ctx, "Fn::Sub");
      if (!s.ok()) return s.status();
      vars[k] = *s;
    }
  }
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t open = text.find("${", i);
    if (open == std::string::npos) break;
    size_t close = text.find('}', open + 2);
    if (close == std::string::npos) break;
    out.append(text, i, open - i);
    std::string name = text.substr(open + 2, close - open - 2);
    if (!name.empty() && name[0] == '!') {
      out += "${" + name.substr(1) + "}";
    } else if (auto it = vars.find(name); it != vars.end()) {
      out += it->second;
    } else {
      size_t dot = name.find('.');
      Result<json> v = dot == std::string::npos || IsPseudo(name)
                           ? RefValue(name, ctx)
                           : GetAttValue(name.substr(0, dot), name.substr(dot + 1), ctx);
      if (!v.ok()) return v.status();
      out += ScalarToString(*v);
    }
    i = close + 1;
  }
  out.append(text, std::min(i, text.size()));
  return json(out);
}

Result<json> ResolveImpl(const json& v, const ResolveContext& ctx) {
  if (v.is_array()) {
    json out = json::array();
    for (const json& e : v) {
      Result<json> r = ResolveImpl(e, ctx);
      if (!r.ok()) return r;
      if (*r != NoValue()) out.push_back(std::move(r).value());
    }
    return out;
  }
  if (!v.is_object()) return v;
  if (v.size() == 1) {
    const std::string& fn = v.begin().key();
    const json& arg = v.begin().value();
    // A template is the client's: every argument's shape is checked before it is read (a
    // get<> of the wrong type throws, and arg[1] of a shorter array reads past its end).
    if (fn == "Ref") {
      if (!arg.is_string()) return Status::Invalid("Template error: Ref takes a parameter or resource name (a String)");
      return RefValue(arg.get<std::string>(), ctx);
    }
    if (fn == "Fn::GetAtt") {
      if (arg.is_string()) {
        std::string s = arg.get<std::string>();
        size_t dot = s.find('.');
        if (dot == std::string::npos) {
          return Status::Invalid("Template error: Fn::GetAtt takes \"LogicalId.Attribute\" or [LogicalId, Attribute]");
        }
        return GetAttValue(s.substr(0, dot), s.substr(dot + 1), ctx);
      }
      if (!arg.is_array() || arg.size() != 2 || !arg[0].is_string()) {
        return Status::Invalid("Template error: Fn::GetAtt takes \"LogicalId.Attribute\" or [LogicalId, Attribute]");
      }
      Result<std::string> attr = ResolveString(arg[1], ctx, "Fn::GetAtt");
      if (!attr.ok()) return attr.status();
      return GetAttValue(arg[0].get<std::string>(), *attr, ctx);
    }
    if (fn == "Fn::Join") {
      if (!arg.is_array() || arg.size() != 2 || !arg[0].is_string()) {
        return Status::Invalid("Template error: Fn::Join takes [Delimiter, [Values]]");
      }
      Result<json> list = ResolveImpl(arg[1], ctx);
      if (!list.ok()) return list;
      if (!list->is_array()) return Status::Invalid("Template error: Fn::Join's second argument must be a list");
      std::string out;
      bool first = true;
      for (const json& e : *list) {
        if (!first) out += arg[0].get<std::string>();
        first = false;
        if (e.is_object() || e.is_array()) {
          return Status::Invalid("Template error: every Fn::Join element must be a string, got " + e.dump());
        }
        out += ScalarToString(e);
      }
      return json(out);
    }
    if (fn == "Fn::Sub") return ResolveSub(arg, ctx);
    if (fn == "Fn::Select") {
      if (!arg.is_array() || arg.size() != 2) return Status::Invalid("Template error: Fn::Select takes [Index, [Values]]");
      Result<std::string> index = ResolveString(arg[0], ctx, "Fn::Select");
      if (!index.ok()) return index.status();
      Result<json> list = ResolveImpl(arg[1], ctx);
      if (!list.ok()) return list;
      size_t n = 0;
      try {
        n = std::stoul(*index);
      } catch (const std::exception&) {
        return Status::Invalid("Template error: Fn::Select index " + *index + " is not a number");
      }
      if (!list->is_array() || n >= list->size()) {
        return Status::Invalid("Template error: Fn::Select cannot select nonexistent value at index " + *index);
      }
      return (*list)[n];
    }
    if (fn == "Fn::Split") {
      if (!arg.is_array() || arg.size() != 2 || !arg[0].is_string() || arg[0].get<std::string>().empty()) {
        return Status::Invalid("Template error: Fn::Split takes [Delimiter, String]");
      }
      Result<std::string> s = ResolveString(arg[1], ctx, "Fn::Split");
      if (!s.ok()) return s.status();
      const std::string delim = arg[0].get<std::string>();
      json out = json::array();
      size_t start = 0, pos;
      while ((pos = s->find(delim, start)) != std::string::npos) {
        out.push_back(s->substr(start, pos - start));
        start = pos + delim.size();
      }
      out.push_back(s->substr(start));
      return out;
    }
    if (fn == "Fn::Base64") {
      Result<std::string> s = ResolveString(arg, ctx, "Fn::Base64");
      if (!s.ok()) return s.status();
      std::string out;
      AppendBase64(out, *s);
      return json(out);
    }
    if (Unsupported().count(fn)) return Status::Invalid("Template format error: " + fn + " is not supported");
  }
  json out = json::object();
  for (const auto& [k, e] : v.items()) {
    Result<json> r = ResolveImpl(e, ctx);
    if (!r.ok()) return r;
    if (*r != NoValue()) out[k] = std::move(r).value();
  }
  return out;
}

}  // namespace

const TemplateResource* Template::Find(std::string_view logical_id) const {
  for (const TemplateResource& r : resources) {
    if (r.logical_id == logical_id) return &r;
  }
  return nullptr;
}

Result<Template> ParseTemplate(std::string_view body, const std::function<bool(std::string_view)>& supported) {
  json doc = ParseUntrustedJsonOrDiscarded(body);
  if (doc.is_discarded()) {
    size_t first = body.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && body[first] != '{') {
      return FormatError("Geysir reads JSON templates only and this one is not JSON (YAML? convert it with "
                         "cfn-flip or any YAML-to-JSON tool)");
    }
    return FormatError("JSON not well-formed");
  }
  if (!doc.is_object()) return FormatError("the template must be a JSON object");
  static const std::set<std::string> kSections = {"AWSTemplateFormatVersion", "Description", "Metadata", "Parameters",
                                                  "Resources", "Outputs", "Conditions", "Mappings",
                                                  "Transform", "Rules"};
  for (const auto& [k, v] : doc.items()) {
    if (!kSections.count(k)) return FormatError("Invalid template property or properties [" + k + "]");
  }
  for (const char* s : {"Conditions", "Mappings", "Transform", "Rules"}) {
    if (doc.contains(s) && !(doc[s].is_object() && doc[s].empty())) {
      return FormatError(std::string(s) + " are not supported by Geysir's CloudFormation");
    }
  }
  Template t;
  if (doc.contains("Description")) {
    if (!doc["Description"].is_string()) return FormatError("Every Description member must be a string");
    t.description = doc["Description"].get<std::string>();
  }
  if (doc.contains("Parameters")) {
    if (!doc["Parameters"].is_object()) return FormatError("Parameters must be an object");
    for (const auto& [name, p] : doc["Parameters"].items()) {
      if (!p.is_object() || !p.contains("Type") || !p["Type"].is_string()) {
        return FormatError("Every Parameters object must contain a Type member (" + name + ")");
      }
      TemplateParameter tp;
      tp.name = name;
      tp.type = p["Type"].get<std::string>();
      static const std::set<std::string> kTypes = {"String", "Number", "CommaDelimitedList", "List<Number>"};
      if (!kTypes.count(tp.type)) {
        return FormatError("Unrecognized parameter type: " + tp.type + " (Geysir supports String, Number, "
                           "CommaDelimitedList, List<Number>)");
      }
      if (p.contains("Default")) tp.default_value = ScalarToString(p["Default"]);
      if (p.contains("AllowedValues") && p["AllowedValues"].is_array()) {
        for (const json& a : p["AllowedValues"]) tp.allowed_values.push_back(ScalarToString(a));
      }
      tp.no_echo = p.contains("NoEcho") && ScalarToString(p["NoEcho"]) == "true";
      if (p.contains("Description") && p["Description"].is_string()) tp.description = p["Description"];
      t.parameters.push_back(std::move(tp));
    }
  }
  if (!doc.contains("Resources") || !doc["Resources"].is_object() || doc["Resources"].empty()) {
    return FormatError("At least one Resources member must be defined.");
  }
  std::set<std::string> param_names;
  for (const TemplateParameter& p : t.parameters) param_names.insert(p.name);
  std::vector<std::string> unrecognized;
  std::map<std::string, TemplateResource> by_id;
  for (const auto& [id, r] : doc["Resources"].items()) {
    if (!r.is_object() || !r.contains("Type") || !r["Type"].is_string()) {
      return FormatError("[/Resources/" + id + "] Every Resources object must contain a Type member.");
    }
    if (r.contains("Condition")) return FormatError("[/Resources/" + id + "] Condition is not supported by Geysir");
    TemplateResource tr;
    tr.logical_id = id;
    tr.type = r["Type"].get<std::string>();
    if (!supported(tr.type) &&
        std::find(unrecognized.begin(), unrecognized.end(), tr.type) == unrecognized.end()) {
      unrecognized.push_back(tr.type);
    }
    if (r.contains("Properties")) {
      if (!r["Properties"].is_object()) return FormatError("[/Resources/" + id + "/Properties] must be an object");
      tr.properties = r["Properties"];
    }
    std::set<std::string> refs;
    GEYSIR_RETURN_IF_ERROR(CollectRefs(tr.properties, refs));
    if (r.contains("DependsOn")) {
      const json& d = r["DependsOn"];
      if (d.is_string()) {
        refs.insert(d.get<std::string>());
      } else if (d.is_array()) {
        for (const json& e : d) {
          if (!e.is_string()) return FormatError("[/Resources/" + id + "/DependsOn] must be strings");
          refs.insert(e.get<std::string>());
        }
      } else {
        return FormatError("[/Resources/" + id + "/DependsOn] must be a string or a list of strings");
      }
    }
    for (const std::string& ref : refs) {
      if (!param_names.count(ref) && !IsPseudo(ref)) tr.depends_on.insert(ref);
    }
    by_id.emplace(id, std::move(tr));
  }
  if (!unrecognized.empty()) return FormatError("Unrecognized resource types: [" + JoinList(unrecognized) + "]");
  std::vector<std::string> unresolved;
  for (const auto& [id, r] : by_id) {
    for (const std::string& d : r.depends_on) {
      if (!by_id.count(d) && std::find(unresolved.begin(), unresolved.end(), d) == unresolved.end()) {
        unresolved.push_back(d);
      }
    }
  }
  if (!unresolved.empty()) {
    return Status::Invalid("Template format error: Unresolved resource dependencies [" + JoinList(unresolved) +
                           "] in the Resources block of the template");
  }
  if (doc.contains("Outputs")) {
    if (!doc["Outputs"].is_object()) return FormatError("Outputs must be an object");
    for (const auto& [name, o] : doc["Outputs"].items()) {
      if (!o.is_object() || !o.contains("Value")) return FormatError("Every Outputs member must contain a Value object");
      std::set<std::string> refs;
      GEYSIR_RETURN_IF_ERROR(CollectRefs(o, refs));
      for (const std::string& ref : refs) {
        if (!param_names.count(ref) && !IsPseudo(ref) && !by_id.count(ref)) {
          return FormatError("Unresolved resource dependencies [" + ref + "] in the Outputs block of the template");
        }
      }
    }
    t.outputs = doc["Outputs"];
  }
  // Kahn's algorithm; the ready set is ordered, so ties go by logical id.
  std::map<std::string, size_t> pending;
  std::map<std::string, std::vector<std::string>> dependents;
  for (const auto& [id, r] : by_id) {
    pending[id] = r.depends_on.size();
    for (const std::string& d : r.depends_on) dependents[d].push_back(id);
  }
  std::set<std::string> ready;
  for (const auto& [id, n] : pending) {
    if (n == 0) ready.insert(id);
  }
  while (!ready.empty()) {
    std::string id = *ready.begin();
    ready.erase(ready.begin());
    for (const std::string& dep : dependents[id]) {
      if (--pending[dep] == 0) ready.insert(dep);
    }
    t.resources.push_back(std::move(by_id[id]));
  }
  if (t.resources.size() != by_id.size()) {
    std::vector<std::string> cycle;
    for (const auto& [id, n] : pending) {
      if (n > 0) cycle.push_back(id);
    }
    return Status::Invalid("Template format error: Circular dependency between resources: [" + JoinList(cycle) + "]");
  }
  return t;
}

Result<std::map<std::string, std::string>> BindParameters(const Template& t,
                                                          const std::map<std::string, std::string>& given) {
  std::vector<std::string> unknown;
  for (const auto& entry : given) {
    // Not a structured binding: Clang 14 (the fuzz build) cannot capture one in a lambda.
    const std::string& k = entry.first;
    bool found = std::any_of(t.parameters.begin(), t.parameters.end(),
                             [&](const TemplateParameter& p) { return p.name == k; });
    if (!found) unknown.push_back(k);
  }
  if (!unknown.empty()) return Status::Invalid("Parameters: [" + JoinList(unknown, ",") + "] do not exist in the template");
  std::map<std::string, std::string> out;
  std::vector<std::string> missing;
  for (const TemplateParameter& p : t.parameters) {
    auto it = given.find(p.name);
    if (it != given.end()) {
      out[p.name] = it->second;
    } else if (p.default_value) {
      out[p.name] = *p.default_value;
    } else {
      missing.push_back(p.name);
      continue;
    }
    if (!p.allowed_values.empty() &&
        std::find(p.allowed_values.begin(), p.allowed_values.end(), out[p.name]) == p.allowed_values.end()) {
      return Status::Invalid("Parameter '" + p.name + "' must be one of AllowedValues");
    }
    if (p.type == "Number") {
      try {
        size_t used = 0;
        (void)std::stod(out[p.name], &used);
        if (used != out[p.name].size()) throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        return Status::Invalid("Parameter '" + p.name + "' must be a number not " + out[p.name]);
      }
    }
  }
  if (!missing.empty()) return Status::Invalid("Parameters: [" + JoinList(missing, ",") + "] must have values");
  return out;
}

std::map<std::string, std::string> PseudoParameters(const std::string& region, const std::string& account_id,
                                                    const std::string& stack_name, const std::string& stack_id) {
  return {{"AWS::Region", region},         {"AWS::AccountId", account_id}, {"AWS::StackName", stack_name},
          {"AWS::StackId", stack_id},      {"AWS::Partition", "aws"},      {"AWS::URLSuffix", "amazonaws.com"},
          {"AWS::NotificationARNs", ""}};
}

Result<json> Resolve(const json& value, const ResolveContext& ctx) {
  return ResolveImpl(value, ctx);
}

}  // namespace geysir::control::cfn
