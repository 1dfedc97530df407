#include "worker/cgroup.h"

#include <dirent.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include "worker/cgroup_drivers.h"

namespace geysir::worker {

namespace fs = cgroupfs;

int64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void KillListed(const std::vector<std::string>& procs_files) {
  for (const auto& f : procs_files) {
    for (pid_t p : fs::ReadPids(f)) {
      if (p > 0) kill(p, SIGKILL);  // never 0 or -1: those would signal groups
    }
  }
}

Status RemoveDir(const std::string& dir, int64_t deadline_ms) {
  for (;;) {
    if (rmdir(dir.c_str()) == 0 || errno == ENOENT) return Status::Ok();
    if (errno != EBUSY || MonotonicMs() >= deadline_ms) return Status::Sys(errno, "rmdir " + dir);
    usleep(1000);
  }
}

std::vector<std::string> ListSubdirs(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
    out.push_back(dir + "/" + e->d_name);
  }
  closedir(d);
  return out;
}

Result<std::unique_ptr<CgroupDriver>> CgroupDriver::Detect(const std::string& base) {
  if (base.empty() || base.front() == '/' || base.find("..") != std::string::npos) {
    return Status::Invalid("cgroup base must be a relative path: " + base);
  }
  // A pure v2 host: /sys/fs/cgroup itself is cgroup2.
  if (fs::IsCgroup2("/sys/fs/cgroup")) return MakeCgroupV2Driver("/sys/fs/cgroup", base);
  // v1 (or hybrid). A hybrid host's unified hierarchy is used only if it has the controllers.
  auto v1 = fs::ListV1Hierarchies();
  bool have_memory = false, have_pids = false;
  for (const auto& h : v1) {
    have_memory = have_memory || h.Has("memory");
    have_pids = have_pids || h.Has("pids");
  }
  if (have_memory && have_pids) return MakeCgroupV1Driver(v1, base);
  if (auto v2 = fs::FindV2Mount()) {
    auto controllers = fs::ReadFile(v2->mount + "/cgroup.controllers");
    if (controllers.ok() && controllers->find("memory") != std::string::npos &&
        controllers->find("pids") != std::string::npos) {
      return MakeCgroupV2Driver(v2->mount, base);
    }
  }
  return Status::NotFound("no usable cgroup hierarchy: need v2 with memory+pids, or v1 memory and pids");
}

}  // namespace geysir::worker
