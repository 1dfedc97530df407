// cgroup v1: one directory per hierarchy (memory, pids, cpu, freezer), each at the same
// <mount>/<base>/<relative> path. The memory directory is the cgroup's "home" (dir()).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "worker/cgroup_drivers.h"

namespace geysir::worker {

namespace fs = cgroupfs;

namespace {

struct V1Dirs {
  std::string memory;
  std::string pids;
  std::string cpu;      // empty when the cpu controller is not mounted
  std::string freezer;  // empty when the freezer is not mounted

  std::vector<std::string> All() const {
    std::vector<std::string> out;
    for (const auto* d : {&memory, &pids, &cpu, &freezer}) {
      if (!d->empty()) out.push_back(*d);
    }
    return out;
  }
};

class CgroupV1 final : public Cgroup {
 public:
  CgroupV1(std::string name, V1Dirs dirs) : name_(std::move(name)), dirs_(std::move(dirs)) {}
  ~CgroupV1() override { (void)Remove(); }

  Status AddProcess(pid_t pid) override {
    std::string p = std::to_string(pid);
    // The memory hierarchy last, so a process is never limited in memory yet uncounted in pids.
    for (const auto* d : {&dirs_.pids, &dirs_.cpu, &dirs_.freezer, &dirs_.memory}) {
      if (!d->empty()) GEYSIR_RETURN_IF_ERROR(fs::WriteFile(*d + "/cgroup.procs", p));
    }
    return Status::Ok();
  }

  Status KillAll() override {
    if (removed_) return Status::Ok();
    std::vector<std::string> procs;
    for (const auto& d : dirs_.All()) procs.push_back(d + "/cgroup.procs");
    // The common case after an invocation: the child has exited and nothing is left.
    std::vector<pid_t> before = Listed(procs);
    if (before.empty()) return Status::Ok();
    // One plain round first: if nothing new appeared meanwhile, every process left is one we
    // have already sent SIGKILL and is only dying, and no freeze/thaw round trip is needed.
    KillListed(procs);
    std::vector<pid_t> after = Listed(procs);
    bool forked = false;
    for (pid_t p : after) forked = forked || std::find(before.begin(), before.end(), p) == before.end();
    if (!forked) return Status::Ok();
    // Something forked while we were killing: freeze so nothing more can, kill, thaw (a frozen
    // process dies once thawed).
    bool frozen = !dirs_.freezer.empty() && fs::WriteFile(dirs_.freezer + "/freezer.state", "FROZEN").ok();
    if (frozen) {
      int64_t deadline = MonotonicMs() + 100;
      for (;;) {
        auto state = fs::ReadFile(dirs_.freezer + "/freezer.state");
        if (!state.ok() || state->rfind("FROZEN", 0) == 0 || MonotonicMs() >= deadline) break;
        usleep(500);
      }
    }
    for (int round = 0; round < 5; ++round) {
      KillListed(procs);
      if (frozen || Empty(procs)) break;
    }
    if (frozen) (void)fs::WriteFile(dirs_.freezer + "/freezer.state", "THAWED");
    return Status::Ok();
  }

  uint64_t PeakMemoryBytes() const override {
    return fs::ReadNumber(dirs_.memory + "/memory.max_usage_in_bytes").value_or(0);
  }

  bool OomKilled() const override {
    // oom_kill in memory.oom_control exists since 4.13; before that, hitting the limit
    // (failcnt) is the closest signal we have.
    if (auto n = fs::ReadKeyed(dirs_.memory + "/memory.oom_control", "oom_kill")) return *n > 0;
    return fs::ReadNumber(dirs_.memory + "/memory.failcnt").value_or(0) > 0;
  }

  std::vector<pid_t> Processes() const override { return fs::ReadPids(dirs_.memory + "/cgroup.procs"); }

  Status Remove() override {
    if (removed_) return Status::Ok();
    (void)KillAll();
    int64_t deadline = MonotonicMs() + kRemoveWaitMs;
    std::vector<std::string> procs;
    for (const auto& d : dirs_.All()) procs.push_back(d + "/cgroup.procs");
    for (;;) {
      if (Empty(procs) || MonotonicMs() >= deadline) break;
      KillListed(procs);
      usleep(1000);
    }
    Status first;
    for (const auto& d : dirs_.All()) {
      Status st = RemoveDir(d, deadline);
      if (!st.ok() && first.ok()) first = st;
    }
    if (!first.ok()) return first;
    removed_ = true;
    return Status::Ok();
  }

  const std::string& name() const override { return name_; }
  std::string dir() const override { return dirs_.memory; }

 private:
  static std::vector<pid_t> Listed(const std::vector<std::string>& procs) {
    std::vector<pid_t> out;
    for (const auto& f : procs) {
      for (pid_t p : fs::ReadPids(f)) out.push_back(p);
    }
    return out;
  }

  static bool Empty(const std::vector<std::string>& procs) {
    for (const auto& f : procs) {
      if (!fs::ReadPids(f).empty()) return false;
    }
    return true;
  }

  std::string name_;
  V1Dirs dirs_;
  bool removed_ = false;
};

class CgroupV1Driver final : public CgroupDriver {
 public:
  explicit CgroupV1Driver(V1Dirs roots) : roots_(std::move(roots)) {}

  const char* version() const override { return "v1"; }

  Result<std::unique_ptr<Cgroup>> Create(const std::string& relative, const CgroupLimits& limits) override {
    if (relative.empty() || relative.front() == '/' || relative.find("..") != std::string::npos) {
      return Status::Invalid("cgroup name must be a relative path: " + relative);
    }
    V1Dirs dirs;
    auto sub = [&](const std::string& root) { return root.empty() ? std::string() : root + "/" + relative; };
    dirs.memory = sub(roots_.memory);
    dirs.pids = sub(roots_.pids);
    dirs.cpu = sub(roots_.cpu);
    dirs.freezer = sub(roots_.freezer);
    for (const auto& d : dirs.All()) GEYSIR_RETURN_IF_ERROR(MkdirP(d));
    // From here the directories exist: the owner removes them if a limit cannot be written.
    auto cg = std::make_unique<CgroupV1>(relative, dirs);
    if (limits.memory_bytes > 0) {
      std::string bytes = std::to_string(limits.memory_bytes);
      GEYSIR_RETURN_IF_ERROR(fs::WriteFile(dirs.memory + "/memory.limit_in_bytes", bytes));
      // memory+swap to the same total: no swapping past the limit. Present only with swap
      // accounting; must be written after memory.limit_in_bytes (memsw >= mem).
      if (fs::Exists(dirs.memory + "/memory.memsw.limit_in_bytes")) {
        GEYSIR_RETURN_IF_ERROR(fs::WriteFile(dirs.memory + "/memory.memsw.limit_in_bytes", bytes));
      }
    }
    if (limits.pids_max > 0) GEYSIR_RETURN_IF_ERROR(fs::WriteFile(dirs.pids + "/pids.max", std::to_string(limits.pids_max)));
    if (limits.cpu_weight > 0 && !dirs.cpu.empty()) {
      // v2's weight 100 is v1's 1024 shares.
      uint64_t shares = std::clamp<uint64_t>(static_cast<uint64_t>(limits.cpu_weight) * 1024 / 100, 2, 262144);
      GEYSIR_RETURN_IF_ERROR(fs::WriteFile(dirs.cpu + "/cpu.shares", std::to_string(shares)));
    }
    return std::unique_ptr<Cgroup>(std::move(cg));
  }

  Status CleanupStale() override {
    int64_t deadline = MonotonicMs() + kRemoveWaitMs;
    // Kill first in every hierarchy (freezing is per cgroup and not worth it for leftovers),
    // then remove bottom-up.
    Status first;
    for (const auto& root : roots_.All()) {
      if (!fs::Exists(root)) continue;
      Status st = RemoveTree(root, deadline, 0);
      if (!st.ok() && first.ok()) first = st;
    }
    return first;
  }

 private:
  static Status MkdirP(const std::string& path) {
    for (size_t pos = 1; pos <= path.size(); ++pos) {
      if (pos != path.size() && path[pos] != '/') continue;
      std::string prefix = path.substr(0, pos);
      if (mkdir(prefix.c_str(), 0755) < 0 && errno != EEXIST) return Status::Sys(errno, "mkdir " + prefix);
    }
    return Status::Ok();
  }

  Status RemoveTree(const std::string& dir, int64_t deadline, int depth) {
    if (depth > 16) return Status::Internal("cgroup tree too deep: " + dir);
    for (const auto& child : ListSubdirs(dir)) GEYSIR_RETURN_IF_ERROR(RemoveTree(child, deadline, depth + 1));
    while (!fs::ReadPids(dir + "/cgroup.procs").empty() && MonotonicMs() < deadline) {
      KillListed({dir + "/cgroup.procs"});
      usleep(1000);
    }
    return RemoveDir(dir, deadline);
  }

  V1Dirs roots_;
};

}  // namespace

Result<std::unique_ptr<CgroupDriver>> MakeCgroupV1Driver(const std::vector<fs::V1Hierarchy>& hierarchies,
                                                        const std::string& base) {
  V1Dirs roots;
  for (const auto& h : hierarchies) {
    std::string root = h.mount + "/" + base;
    if (h.Has("memory")) roots.memory = root;
    if (h.Has("pids")) roots.pids = root;
    if (h.Has("cpu")) roots.cpu = root;
    if (h.Has("freezer")) roots.freezer = root;
  }
  if (roots.memory.empty() || roots.pids.empty()) return Status::NotFound("cgroup v1: memory or pids not mounted");
  return std::unique_ptr<CgroupDriver>(std::make_unique<CgroupV1Driver>(std::move(roots)));
}

}  // namespace geysir::worker
