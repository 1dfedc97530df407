// Cgroups for function processes, v2 and v1 as siblings behind one interface, chosen once at
// start-up by CgroupDriver::Detect().
//
// Layout: <root>/geysir/<pool>/... where <root> is /sys/fs/cgroup (v2) or, for v1, the same
// relative path under each controller hierarchy Geysir uses (memory, pids, cpu, freezer).
// A Cgroup is a move-only owner: Remove() (and the destructor) kills what is left inside and
// removes the directories, so no stray cgroup survives an invocation.
//
// Thread safety: loop thread only; every call is a few small synchronous file writes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace geysir::worker {

struct CgroupLimits {
  uint64_t memory_bytes = 0;   // 0: no limit. Swap is limited to the same total (memsw / swap.max = 0)
  uint32_t pids_max = 0;       // 0: no limit
  uint32_t cpu_weight = 0;     // 0: default; proportional to memory as Lambda does (1769 MB = 1 vCPU)
};

class Cgroup {
 public:
  virtual ~Cgroup() = default;
  virtual Status AddProcess(pid_t pid) = 0;
  virtual Status KillAll() = 0;                    // SIGKILL everything inside (cgroup.kill or freeze+kill)
  virtual uint64_t PeakMemoryBytes() const = 0;    // memory.peak / memory.max_usage_in_bytes
  virtual bool OomKilled() const = 0;              // memory.events oom_kill / memory.oom_control
  virtual std::vector<pid_t> Processes() const = 0;
  virtual Status Remove() = 0;                     // KillAll, wait for empty (bounded), rmdir
  virtual const std::string& name() const = 0;
  // The directory to pass as TemplateSpec::cgroup_dir: the v2 directory, or the v1 memory
  // directory (the launcher joins the same relative path in the other v1 hierarchies).
  // (Added after the first version; non-pure so existing fakes keep compiling.)
  virtual std::string dir() const { return {}; }
};

class CgroupDriver {
 public:
  virtual ~CgroupDriver() = default;
  // Picks v2 when /sys/fs/cgroup is cgroup2 (or a unified hierarchy with the needed
  // controllers), else v1. `base` names Geysir's subtree ("geysir" by default).
  static Result<std::unique_ptr<CgroupDriver>> Detect(const std::string& base);
  virtual const char* version() const = 0;         // "v1" or "v2"
  // Creates <base>/<relative> with limits. `relative` may contain '/'.
  virtual Result<std::unique_ptr<Cgroup>> Create(const std::string& relative, const CgroupLimits& limits) = 0;
  // Removes leftovers of a previous run (after a crash) under <base>.
  virtual Status CleanupStale() = 0;
};

}  // namespace geysir::worker
