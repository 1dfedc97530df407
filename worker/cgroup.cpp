#include "worker/cgroup.h"

#include <dirent.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "base/unique_fd.h"
#include "worker/cgroup_drivers.h"

namespace geysir::worker {

namespace fs = cgroupfs;

int64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Through pidfds, never by pid number: the processes in a function's cgroup are reaped by its
// template, and a reaped pid may be handed to any process on the host before our kill() lands.
// So: a pidfd for every listed pid, then the lists read again, and SIGKILL only through the
// pidfds whose pid is still listed. Such a pid names a process of the cgroup now, and its pidfd
// names the process that held the pid when it was opened: the same one, or (had it died and the
// pid been reused in between) a dead one, which the signal no longer reaches. (While the cgroup is
// frozen nothing in it can exit, and the second read changes nothing.) Linux < 5.3, without
// pidfd_open: kill() by pid.
void KillListed(const std::vector<std::string>& procs_files) {
  std::vector<std::pair<pid_t, UniqueFd>> opened;
  for (const auto& f : procs_files) {
    for (pid_t p : fs::ReadPids(f)) {
      if (p <= 0) continue;  // never 0 or -1: those would signal groups
      UniqueFd fd(static_cast<int>(syscall(SYS_pidfd_open, p, 0)));
      if (fd) {
        opened.emplace_back(p, std::move(fd));
      } else if (errno == ENOSYS) {
        kill(p, SIGKILL);
      }
    }
  }
  if (opened.empty()) return;
  std::vector<pid_t> still;
  for (const auto& f : procs_files) {
    for (pid_t p : fs::ReadPids(f)) still.push_back(p);
  }
  std::sort(still.begin(), still.end());
  for (auto& [p, fd] : opened) {
    if (std::binary_search(still.begin(), still.end(), p)) syscall(SYS_pidfd_send_signal, fd.get(), SIGKILL, nullptr, 0);
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
