// Step "environment": the runtime sees Lambda's variables and the function's own, nothing
// inherited from the scheduler (no host secrets, no paths of ours).
#include <cstdio>
#include <ctime>
#include <map>

#include "worker/sandbox/contain.h"

namespace geysir::worker::sandbox {

namespace {

// Names Lambda reserves: a function's configuration cannot set them (control refuses them on
// deploy; the launcher skips them too, so a stale config cannot shadow what the runtime sets).
constexpr const char* kReserved[] = {
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
};

bool ValidName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    bool ok = alpha || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

}  // namespace

bool IsReservedEnvironmentName(const std::string& name) {
  for (const char* r : kReserved) {
    if (name == r) return true;
  }
  return false;
}

std::string LogStreamName(const TemplateSpec& spec, time_t now) {
  std::tm tm{};
  gmtime_r(&now, &tm);
  char date[32];
  std::snprintf(date, sizeof date, "%04d/%02d/%02d/", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  return std::string(date) + "[" + spec.function.version + "]" + spec.template_id;
}

std::vector<std::string> BuildEnvironment(const TemplateSpec& spec, time_t now) {
  const proto::FunctionConfig& f = spec.function;
  std::map<std::string, std::string> env = {
      // Unreserved defaults: the function may override these.
      {"PATH", "/usr/local/bin:/usr/bin:/bin"},
      {"LANG", "en_US.UTF-8"},
      {"TZ", ":UTC"},
      {"PYTHONPATH", f.code_dir},
      // Lambda sets no HOME; libraries that expand "~" then fail, so point it at the function's
      // writable scratch space.
      {"HOME", "/tmp"},
  };
  for (const auto& [name, value] : f.environment) {
    if (!ValidName(name) || IsReservedEnvironmentName(name)) continue;
    if (value.find('\0') != std::string::npos) continue;
    env[name] = value;
  }
  // Reserved: always ours.
  std::string log_group = f.log_group.empty() ? "/aws/lambda/" + f.name : f.log_group;
  env["AWS_LAMBDA_FUNCTION_NAME"] = f.name;
  env["AWS_LAMBDA_FUNCTION_VERSION"] = f.version;
  env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = std::to_string(f.memory_mb);
  env["AWS_LAMBDA_LOG_GROUP_NAME"] = log_group;
  env["AWS_LAMBDA_LOG_STREAM_NAME"] = LogStreamName(spec, now);
  env["AWS_REGION"] = f.region;
  env["AWS_DEFAULT_REGION"] = f.region;
  env["AWS_EXECUTION_ENV"] = "AWS_Lambda_" + f.runtime;
  env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "on-demand";
  env["LAMBDA_TASK_ROOT"] = f.code_dir;
  env["LAMBDA_RUNTIME_DIR"] = spec.runtime_dir;
  env["_HANDLER"] = f.handler;
  // The mode the scheduler runs this function in (the typed field control derived from this
  // variable): the runtime's children loop over invocations in "reuse" mode.
  env[proto::kExecutionModeVariable] = f.execution_mode == proto::ExecutionMode::kReuse ? "reuse" : "per-request";

  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [name, value] : env) out.push_back(name + "=" + value);
  return out;
}

}  // namespace geysir::worker::sandbox
