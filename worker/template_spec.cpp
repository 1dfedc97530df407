#include "worker/template_spec.h"

#include <exception>

namespace geysir::worker {

using nlohmann::json;

std::string TemplateSpecToJson(const TemplateSpec& spec) {
  json j{{"function", spec.function},
         {"template_id", spec.template_id},
         {"runtime_dir", spec.runtime_dir},
         {"python", spec.python.empty() ? std::string("/usr/bin/python3.11") : spec.python},
         {"uid", spec.uid},
         {"gid", spec.gid},
         {"cgroup_dir", spec.cgroup_dir},
         {"isolate", spec.isolate},
         {"network", spec.network},
         {"restore", spec.restore}};
  return j.dump();
}

Result<TemplateSpec> TemplateSpecFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::Invalid("--spec is not a JSON object");
  TemplateSpec spec;
  // nlohmann's typed getters throw on a type mismatch; this is the one place the spec is read,
  // so the exception is caught here and becomes a Status (the data plane does not throw).
  try {
    if (!j.contains("function") || !j["function"].is_object()) return Status::Invalid("--spec has no function");
    spec.function = j["function"].get<proto::FunctionConfig>();
    spec.template_id = j.value("template_id", "");
    spec.runtime_dir = j.value("runtime_dir", "");
    spec.python = j.value("python", "/usr/bin/python3.11");
    spec.uid = j.value("uid", spec.uid);
    spec.gid = j.value("gid", spec.gid);
    spec.cgroup_dir = j.value("cgroup_dir", "");
    spec.isolate = j.value("isolate", false);
    spec.network = j.value("network", "none");
    spec.restore = j.value("restore", false);
  } catch (const std::exception& e) {
    return Status::Invalid(std::string("--spec: ") + e.what());
  }
  if (spec.function.handler.empty()) return Status::Invalid("--spec: function.handler is empty");
  if (spec.function.code_dir.empty() || spec.function.code_dir[0] != '/') {
    return Status::Invalid("--spec: function.code_dir must be an absolute path");
  }
  if (spec.runtime_dir.empty() || spec.runtime_dir[0] != '/') {
    return Status::Invalid("--spec: runtime_dir must be an absolute path");
  }
  if (spec.python.empty() || spec.python[0] != '/') return Status::Invalid("--spec: python must be an absolute path");
  if (spec.network != "none" && spec.network != "egress") {
    return Status::Invalid("--spec: network must be \"none\" or \"egress\", not \"" + spec.network + "\"");
  }
  // (assign(n, c) rather than = "0": GCC 12 reports a false -Wrestrict on the latter)
  if (spec.template_id.empty()) spec.template_id.assign(1, '0');
  return spec;
}

}  // namespace geysir::worker
