// The JSON form of worker::TemplateSpec that SpawnTemplate passes to geysir-worker as --spec
// (docs/wire-formats.md, "Scheduler <-> template"). Internal to the worker module.
//
// Thread safety: pure functions over values.
#pragma once

#include <string>

#include "base/status.h"
#include "worker/launcher.h"

namespace geysir::worker {

// {"function": FunctionConfig, "template_id", "runtime_dir", "python", "uid", "gid", "cgroup_dir",
//  "isolate", "network"}.
// worker_binary is the launcher's own path and is not passed.
std::string TemplateSpecToJson(const TemplateSpec& spec);
// Validates what geysir-worker relies on (handler, code_dir, runtime_dir and python absolute).
Result<TemplateSpec> TemplateSpecFromJson(const std::string& text);

}  // namespace geysir::worker
