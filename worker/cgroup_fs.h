// Small file-system helpers shared by the cgroup drivers (cgroup_v1.cpp, cgroup_v2.cpp) and the
// launcher's cgroup step (sandbox/cgroup_join.cpp): reading and writing control files, and
// finding where each hierarchy is mounted and where this process sits in it. Internal.
//
// Thread safety: stateless functions; each call is a few small synchronous file operations.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace geysir::worker::cgroupfs {

// Reads a small control file whole (at most 64 KiB).
Result<std::string> ReadFile(const std::string& path);
// Writes `value` with one write(2), as the kernel expects for control files.
Status WriteFile(const std::string& path, const std::string& value);
// The first unsigned number in a file, or nullopt ("max" and unreadable files included).
std::optional<uint64_t> ReadNumber(const std::string& path);
// The value of "key N" lines (memory.events, memory.oom_control, cgroup.events).
std::optional<uint64_t> ReadKeyed(const std::string& path, const std::string& key);
bool Exists(const std::string& path);
// pids listed in a cgroup.procs file.
std::vector<pid_t> ReadPids(const std::string& procs_path);

// A mounted v1 hierarchy: its controllers ("memory", or "cpu,cpuacct"), mount point, and the
// path of this process's cgroup inside it (from /proc/self/cgroup).
struct V1Hierarchy {
  std::vector<std::string> controllers;
  std::string mount;
  std::string own;  // "/" or "/some/path"
  bool Has(const std::string& controller) const;
};
std::vector<V1Hierarchy> ListV1Hierarchies();
// Mount point of the cgroup2 hierarchy (e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified), if any,
// and this process's path in it.
struct V2Mount {
  std::string mount;
  std::string own;
};
std::optional<V2Mount> FindV2Mount();

bool IsCgroup2(const std::string& path);

// Joins a mount point and cgroup paths without doubling or dropping slashes.
std::string JoinPath(const std::string& a, const std::string& b);

}  // namespace geysir::worker::cgroupfs
