// Step "rlimits": per-process ceilings the kernel enforces on the runtime and every child.
#include <sys/resource.h>

#include <cerrno>

#include "worker/sandbox/contain.h"

namespace geysir::worker::sandbox {

namespace {

Status Set(int resource, rlim_t value, const char* name) {
  rlimit r{value, value};
  if (setrlimit(resource, &r) < 0) return Status::Sys(errno, std::string("setrlimit ") + name);
  return Status::Ok();
}

}  // namespace

Status ApplyRlimits(const TemplateSpec& spec) {
  // No core dumps: a crashing handler must not write its memory (secrets, events) to disk.
  GEYSIR_RETURN_IF_ERROR(Set(RLIMIT_CORE, 0, "RLIMIT_CORE"));
  // Lambda's documented limit on open descriptors.
  GEYSIR_RETURN_IF_ERROR(Set(RLIMIT_NOFILE, 1024, "RLIMIT_NOFILE"));
  // No single file larger than the function's ephemeral storage (Lambda's /tmp size). The
  // private /tmp of the sandbox issue bounds the total; this bounds one runaway write now.
  uint64_t mb = spec.function.ephemeral_storage_mb == 0 ? 512 : spec.function.ephemeral_storage_mb;
  GEYSIR_RETURN_IF_ERROR(Set(RLIMIT_FSIZE, static_cast<rlim_t>(mb) << 20, "RLIMIT_FSIZE"));
  return Status::Ok();
}

}  // namespace geysir::worker::sandbox
