// Step "cgroup": the launcher moves itself into the function's cgroup before anything else, so
// the runtime's whole life is accounted and limited.
#include <unistd.h>

#include <cerrno>

#include "worker/cgroup_fs.h"
#include "worker/sandbox/contain.h"

namespace geysir::worker::sandbox {

namespace fs = geysir::worker::cgroupfs;

Status JoinCgroup(const std::string& cgroup_dir) {
  if (cgroup_dir.empty()) return Status::Ok();
  std::string pid = std::to_string(getpid());
  if (fs::IsCgroup2(cgroup_dir)) return fs::WriteFile(cgroup_dir + "/cgroup.procs", pid);

  // v1: the scheduler names the memory cgroup; CgroupDriver (cgroup_v1.cpp) created the same
  // relative path in every hierarchy it uses. Join it in the others first, where it exists.
  auto hierarchies = fs::ListV1Hierarchies();
  const fs::V1Hierarchy* home = nullptr;
  std::string relative;
  for (const auto& h : hierarchies) {
    const std::string& m = h.mount;
    if (cgroup_dir.size() > m.size() + 1 && cgroup_dir.compare(0, m.size(), m) == 0 && cgroup_dir[m.size()] == '/') {
      home = &h;
      relative = cgroup_dir.substr(m.size());
      break;
    }
  }
  if (home != nullptr) {
    for (const auto& h : hierarchies) {
      if (&h == home) continue;
      std::string dir = fs::JoinPath(h.mount, relative);
      if (!fs::Exists(dir + "/cgroup.procs")) continue;
      GEYSIR_RETURN_IF_ERROR(fs::WriteFile(dir + "/cgroup.procs", pid));
    }
  }
  // The named directory last: it must exist (the scheduler created it).
  return fs::WriteFile(cgroup_dir + "/cgroup.procs", pid);
}

}  // namespace geysir::worker::sandbox
