// What /proc says about a stopped worker, read the way the restorer compares it: its mappings,
// the state lines of /proc/PID/status, its descriptors, and the other per-process state a
// restore cannot put back (internal to worker/restore).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"

namespace geysir::worker::restore {

// One line of /proc/PID/maps.
struct Mapping {
  uint64_t start = 0;
  uint64_t end = 0;
  char perms[4] = {'-', '-', '-', '-'};  // r w x p|s
  uint64_t offset = 0;
  uint64_t inode = 0;
  std::string path;  // "" for anonymous memory, "[heap]", "[stack]", a file...

  bool readable() const { return perms[0] == 'r'; }
  bool writable() const { return perms[1] == 'w'; }
  bool shared() const { return perms[3] == 's'; }
  bool anonymous() const { return inode == 0 && (path.empty() || path == "[heap]" || path == "[stack]"); }
  // The kernel's own pages ([vvar], [vsyscall]), and the vDSO, which userfaultfd cannot track
  // (the restorer compares its content instead).
  bool kernel_owned() const {
    return path == "[vvar]" || path == "[vvar_vclock]" || path == "[vsyscall]" || path == "[vdso]";
  }
  // What the restorer tracks: every private mapping, read-only and inaccessible ones too (a
  // write through /proc/self/mem, or after an mprotect, changes them just as well).
  bool tracked() const { return !shared() && !kernel_owned(); }
  int prot() const;
  // Same kind of memory (everything but where it starts and ends).
  bool SameKind(const Mapping& o) const;
  bool operator==(const Mapping&) const = default;
};

// /proc/PID/maps, with neighbouring lines of the same kind merged (the kernel splits and merges
// VMAs for reasons that change nothing the worker can observe).
Result<std::vector<Mapping>> ReadMappings(pid_t pid);

// The lines of /proc/PID/status that describe state a restore must find unchanged: threads,
// signal mask, pending, ignored and caught signals, umask, no_new_privs, seccomp.
Result<std::string> ReadStateLines(pid_t pid);
// The value of `key` ("Umask") in such lines; "" when absent.
std::string StatusValue(std::string_view lines, std::string_view key);
// The keys whose lines differ between two ReadStateLines() texts of one process.
std::vector<std::string> ChangedKeys(std::string_view was, std::string_view now);

// Descriptor number -> what it refers to, and the offset of regular files.
struct Descriptor {
  int fd = -1;
  std::string target;
  long long pos = -1;
  bool operator==(const Descriptor&) const = default;
};
Result<std::vector<Descriptor>> ReadDescriptors(pid_t pid);

// Everything else compared as text: cwd, rlimits, children, POSIX timers, /tmp's entries.
struct OtherState {
  std::string cwd;
  std::string scheduling;  // /proc/PID/stat: priority, nice, rt_priority, policy
  std::string timer_slack;
  std::string limits;
  std::string children;
  std::string timers;
  std::string tmp_entries;
  bool operator==(const OtherState&) const = default;
};
Result<OtherState> ReadOtherState(pid_t pid);

// The System V IPC objects (shared memory, message queues, semaphore sets) in the worker's IPC
// namespace; 0 when it shares the caller's (there are then no objects of its own to look for).
// Enters that namespace on the calling thread for the count and leaves it again.
Result<size_t> CountIpcObjects(pid_t pid);

// A view of the POSIX message queues in the worker's IPC namespace: an mqueue file system of that
// namespace, mounted nowhere (a detached mount: fsopen/fsmount), its root as a descriptor; none
// when it shares the caller's. Made once, on the calling thread, which enters the namespace for it
// and leaves it again.
Result<UniqueFd> OpenMessageQueues(pid_t pid);
// The number of entries in the directory `dir` (a descriptor, read from its start).
Result<size_t> CountEntries(int dir);

// The pids in a cgroup.procs file.
Result<std::vector<pid_t>> ReadProcs(const std::string& path);

Result<std::string> ReadWholeFile(const std::string& path);

}  // namespace geysir::worker::restore
