// cgroup v2 (the unified hierarchy): one directory per cgroup under <mount>/<base>.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "worker/cgroup_drivers.h"

namespace geysir::worker {

namespace fs = cgroupfs;

namespace {

// v2 forbids processes in a cgroup whose controllers are delegated to its children ("no
// internal processes"), so Geysir's subtree only ever holds processes in its leaves.
class CgroupV2 final : public Cgroup {
 public:
  CgroupV2(std::string name, std::string dir) : name_(std::move(name)), dir_(std::move(dir)) {}
  ~CgroupV2() override { (void)Remove(); }

  Status AddProcess(pid_t pid) override { return fs::WriteFile(dir_ + "/cgroup.procs", std::to_string(pid)); }

  Status KillAll() override {
    if (removed_) return Status::Ok();
    if (fs::ReadPids(dir_ + "/cgroup.procs").empty()) return Status::Ok();
    // cgroup.kill (5.14+) kills every process, including ones forking at that very moment.
    if (fs::WriteFile(dir_ + "/cgroup.kill", "1").ok()) return Status::Ok();
    // Older kernels: freeze so nothing can fork while we walk the list, kill, thaw (a frozen
    // process dies only once thawed).
    bool frozen = fs::WriteFile(dir_ + "/cgroup.freeze", "1").ok();
    if (frozen) {
      int64_t deadline = MonotonicMs() + 100;
      while (fs::ReadKeyed(dir_ + "/cgroup.events", "frozen").value_or(1) == 0 && MonotonicMs() < deadline) usleep(500);
    }
    for (int round = 0; round < 5; ++round) {
      KillListed({dir_ + "/cgroup.procs"});
      if (frozen || fs::ReadPids(dir_ + "/cgroup.procs").empty()) break;
    }
    if (frozen) (void)fs::WriteFile(dir_ + "/cgroup.freeze", "0");
    return Status::Ok();
  }

  uint64_t PeakMemoryBytes() const override {
    // memory.peak arrived in 5.19; before it the best we have is the current usage.
    if (auto v = fs::ReadNumber(dir_ + "/memory.peak")) return *v;
    return fs::ReadNumber(dir_ + "/memory.current").value_or(0);
  }

  bool OomKilled() const override { return fs::ReadKeyed(dir_ + "/memory.events", "oom_kill").value_or(0) > 0; }

  std::vector<pid_t> Processes() const override { return fs::ReadPids(dir_ + "/cgroup.procs"); }

  Status Remove() override {
    if (removed_) return Status::Ok();
    if (!fs::Exists(dir_)) {
      removed_ = true;
      return Status::Ok();
    }
    (void)KillAll();
    int64_t deadline = MonotonicMs() + kRemoveWaitMs;
    while (!fs::ReadPids(dir_ + "/cgroup.procs").empty() && MonotonicMs() < deadline) {
      KillListed({dir_ + "/cgroup.procs"});
      usleep(1000);
    }
    GEYSIR_RETURN_IF_ERROR(RemoveDir(dir_, deadline));
    removed_ = true;
    return Status::Ok();
  }

  const std::string& name() const override { return name_; }
  std::string dir() const override { return dir_; }

 private:
  std::string name_;
  std::string dir_;
  bool removed_ = false;
};

class CgroupV2Driver final : public CgroupDriver {
 public:
  CgroupV2Driver(std::string mount, std::string root) : mount_(std::move(mount)), root_(std::move(root)) {}

  const char* version() const override { return "v2"; }

  Result<std::unique_ptr<Cgroup>> Create(const std::string& relative, const CgroupLimits& limits) override {
    if (relative.empty() || relative.front() == '/' || relative.back() == '/' ||
        relative.find("..") != std::string::npos || relative.find("//") != std::string::npos) {
      return Status::Invalid("cgroup name must be a relative path: " + relative);
    }
    // mkdir -p from the mount down, delegating the controllers at every level above the leaf.
    std::string full = root_ + "/" + relative;
    std::string dir = mount_;
    std::string rest = full.substr(mount_.size() + 1);
    size_t pos = 0;
    while (pos <= rest.size()) {
      size_t next = rest.find('/', pos);
      if (next == std::string::npos) next = rest.size();
      GEYSIR_RETURN_IF_ERROR(EnableControllers(dir, limits));
      dir += "/" + rest.substr(pos, next - pos);
      if (mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST) return Status::Sys(errno, "mkdir " + dir);
      pos = next + 1;
    }
    auto cg = std::make_unique<CgroupV2>(relative, full);
    if (limits.memory_bytes > 0) {
      GEYSIR_RETURN_IF_ERROR(fs::WriteFile(full + "/memory.max", std::to_string(limits.memory_bytes)));
      // The limit is the total: no swap on top of it (the file is absent without swap accounting).
      if (fs::Exists(full + "/memory.swap.max")) GEYSIR_RETURN_IF_ERROR(fs::WriteFile(full + "/memory.swap.max", "0"));
      // Kill the whole invocation on OOM rather than one arbitrary process of it.
      if (fs::Exists(full + "/memory.oom.group")) (void)fs::WriteFile(full + "/memory.oom.group", "1");
    }
    if (limits.pids_max > 0) GEYSIR_RETURN_IF_ERROR(fs::WriteFile(full + "/pids.max", std::to_string(limits.pids_max)));
    if (limits.cpu_weight > 0 && fs::Exists(full + "/cpu.weight")) {
      uint32_t w = std::clamp<uint32_t>(limits.cpu_weight, 1, 10000);
      GEYSIR_RETURN_IF_ERROR(fs::WriteFile(full + "/cpu.weight", std::to_string(w)));
    }
    return std::unique_ptr<Cgroup>(std::move(cg));
  }

  Status CleanupStale() override {
    if (!fs::Exists(root_)) return Status::Ok();
    return RemoveTree(root_, MonotonicMs() + kRemoveWaitMs, 0);
  }

 private:
  // Delegates memory, pids and cpu from `dir` to its children (those available; enabling is
  // idempotent). A missing controller is an error only when `limits` need it: cpu is always
  // optional, and a cgroup without limits (tracking and killing only) needs none.
  Status EnableControllers(const std::string& dir, const CgroupLimits& limits) {
    auto have = fs::ReadFile(dir + "/cgroup.controllers");
    if (!have.ok()) return have.status();
    auto enabled = fs::ReadFile(dir + "/cgroup.subtree_control");
    for (const char* c : {"memory", "pids", "cpu"}) {
      std::string name = c;
      auto has = [&](const std::string& list) {
        size_t p = 0;
        while ((p = list.find(name, p)) != std::string::npos) {
          bool start = p == 0 || list[p - 1] == ' ';
          bool end = p + name.size() == list.size() || list[p + name.size()] == ' ' || list[p + name.size()] == '\n';
          if (start && end) return true;
          p += name.size();
        }
        return false;
      };
      if (!has(*have)) {
        bool needed = (name == "memory" && limits.memory_bytes > 0) || (name == "pids" && limits.pids_max > 0);
        if (!needed) continue;
        return Status::Error(Code::kNotFound, "cgroup controller " + name + " not available in " + dir);
      }
      if (enabled.ok() && has(*enabled)) continue;
      Status st = fs::WriteFile(dir + "/cgroup.subtree_control", "+" + name);
      if (st.sys_errno() == EBUSY && dir == mount_) {
        // The mount is the root of a cgroup namespace (a container) and holds processes: v2's
        // "no internal processes" rule forbids delegating from it. Move them into a leaf of
        // their own, as container inits do, and retry once.
        GEYSIR_RETURN_IF_ERROR(EvacuateMountRoot());
        st = fs::WriteFile(dir + "/cgroup.subtree_control", "+" + name);
      }
      GEYSIR_RETURN_IF_ERROR(st);
    }
    return Status::Ok();
  }

  Status EvacuateMountRoot() {
    std::string leaf = mount_ + "/init";
    if (mkdir(leaf.c_str(), 0755) < 0 && errno != EEXIST) return Status::Sys(errno, "mkdir " + leaf);
    for (pid_t p : fs::ReadPids(mount_ + "/cgroup.procs")) {
      Status st = fs::WriteFile(leaf + "/cgroup.procs", std::to_string(p));
      // A process that exited meanwhile is fine; kernel threads cannot move and are not ours.
      if (!st.ok() && st.sys_errno() != ESRCH && st.sys_errno() != EINVAL) return st;
    }
    return Status::Ok();
  }

  // Depth-first: kill what is inside, remove children, then the directory (bounded depth).
  Status RemoveTree(const std::string& dir, int64_t deadline, int depth) {
    if (depth > 16) return Status::Internal("cgroup tree too deep: " + dir);
    for (const auto& child : ListSubdirs(dir)) GEYSIR_RETURN_IF_ERROR(RemoveTree(child, deadline, depth + 1));
    if (!fs::WriteFile(dir + "/cgroup.kill", "1").ok()) KillListed({dir + "/cgroup.procs"});
    while (!fs::ReadPids(dir + "/cgroup.procs").empty() && MonotonicMs() < deadline) {
      KillListed({dir + "/cgroup.procs"});
      usleep(1000);
    }
    return RemoveDir(dir, deadline);
  }

  std::string mount_;
  std::string root_;
};

}  // namespace

Result<std::unique_ptr<CgroupDriver>> MakeCgroupV2Driver(const std::string& mount, const std::string& base) {
  return std::unique_ptr<CgroupDriver>(std::make_unique<CgroupV2Driver>(mount, mount + "/" + base));
}

}  // namespace geysir::worker
