// The two CgroupDriver implementations, siblings behind worker/cgroup.h; Detect() picks one.
// Internal to the worker module.
//
// Thread safety: as worker/cgroup.h (loop thread only).
#pragma once

#include <memory>
#include <string>

#include "worker/cgroup.h"
#include "worker/cgroup_fs.h"

namespace geysir::worker {

// v2: `root` is the directory Geysir's subtree lives in (<mount>/<base>).
Result<std::unique_ptr<CgroupDriver>> MakeCgroupV2Driver(const std::string& mount, const std::string& base);
// v1: one directory per hierarchy used (memory, pids, cpu, freezer; memory and pids required).
Result<std::unique_ptr<CgroupDriver>> MakeCgroupV1Driver(const std::vector<cgroupfs::V1Hierarchy>& hierarchies,
                                                        const std::string& base);

// Shared by both: what a removal waits for, and the v2 weight to v1 shares mapping.
inline constexpr int kRemoveWaitMs = 1000;
// SIGKILL to every process listed in the given cgroup.procs files, through pidfds (one round;
// what is forked meanwhile is the caller's next round).
void KillListed(const std::vector<std::string>& procs_files);
// rmdir of a cgroup directory, retried while the kernel still reports it busy (bounded).
Status RemoveDir(const std::string& dir, int64_t deadline_ms);
int64_t MonotonicMs();
// Child directories of a cgroup directory (its child cgroups), as full paths.
std::vector<std::string> ListSubdirs(const std::string& dir);

}  // namespace geysir::worker
