// Step "seccomp": a filter, inherited by the runtime and every child, that refuses the system
// calls a Lambda function never needs and that widen what a compromised function can attack.
// Everything else is allowed: the wall is the namespaces, mounts, uid and cgroups; this removes
// kernel surface and the ways around those walls.
//
// Refused calls fail with EPERM (not a kill): Python and the libraries under it probe some of
// these (e.g. glibc falls back from clone3) and must get an error they handle, and a function
// that tries one gets a clear "Operation not permitted" in its own log.
//
// Only the native ABI (x86-64 or aarch64) passes: a 32-bit syscall through int 0x80 would
// bypass a filter written for 64-bit numbers, so a foreign architecture kills the process
// (libseccomp's bad-arch action).
#include <sched.h>
#include <seccomp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "worker/sandbox/contain.h"

namespace geysir::worker::sandbox {

namespace {

struct ContextCloser {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};
using Context = std::unique_ptr<void, ContextCloser>;

struct Refusal {
  const char* name;
  const char* why;  // kept next to the name so each line of the table reads as a reason
};

// Each call, and why a function never needs it.
constexpr Refusal kRefused[] = {
    // Changing the file system tree: the sandbox's root is fixed, and a mount could cover
    // /var/task or reveal what pivot_root hid. (No capability is left for them either; this
    // removes the parsing code from reach.)
    {"mount", "mounts are the sandbox's, not the function's"},
    {"umount2", "unmounting could reveal what is under a mount"},
    {"pivot_root", "the root is fixed"},
    {"move_mount", "new mount API: same as mount"},
    {"open_tree", "new mount API: clones a mount tree"},
    {"fsopen", "new mount API: creates a file system context"},
    {"fsconfig", "new mount API"},
    {"fsmount", "new mount API"},
    {"fspick", "new mount API: reconfigures an existing mount"},
    {"mount_setattr", "new mount API: changes mount flags (e.g. read-only)"},
    {"chroot", "no use inside a sandbox root, and a classic step of escapes"},
    // Namespaces: entering another process's namespaces, or creating a user namespace (which
    // hands out every capability inside it and opens much kernel code to unprivileged use).
    {"setns", "joining another namespace"},
    // Other processes' memory and state: a function's children share its uid, and these are
    // how one process reads or steers another of the same uid.
    {"ptrace", "debugging/steering another process"},
    {"process_vm_readv", "reading another process's memory"},
    {"process_vm_writev", "writing another process's memory"},
    {"pidfd_getfd", "copying a descriptor out of another process"},
    {"process_madvise", "acting on another process's memory"},
    {"kcmp", "comparing kernel objects of other processes (an information leak)"},
    // The kernel itself: loading code into it or replacing it.
    {"kexec_load", "booting another kernel"},
    {"kexec_file_load", "booting another kernel"},
    {"init_module", "loading a kernel module"},
    {"finit_module", "loading a kernel module"},
    {"delete_module", "unloading a kernel module"},
    {"bpf", "loading programs into the kernel; a frequent source of kernel exploits"},
    {"perf_event_open", "kernel and CPU performance counters: side channels and kernel bugs"},
    {"io_uring_setup", "io_uring: large kernel surface, and its operations are not seen by seccomp"},
    {"io_uring_enter", "io_uring (see io_uring_setup)"},
    {"io_uring_register", "io_uring (see io_uring_setup)"},
    {"userfaultfd", "lets a process stall the kernel mid-copy: a building block of exploits"},
    // The kernel keyring is shared by uid across the machine, not per namespace.
    {"keyctl", "kernel keyring (not namespaced)"},
    {"add_key", "kernel keyring (not namespaced)"},
    {"request_key", "kernel keyring (not namespaced)"},
    // The machine: none of the function's business.
    {"reboot", "rebooting the host"},
    {"swapon", "host swap"},
    {"swapoff", "host swap"},
    {"acct", "host process accounting"},
    {"quotactl", "host disk quotas"},
    {"syslog", "the kernel's log (kernel addresses)"},
    {"iopl", "direct I/O port access"},
    {"ioperm", "direct I/O port access"},
    {"open_by_handle_at", "opens any file by handle, past the mount namespace (the 'shocker' escape)"},
    {"name_to_handle_at", "the other half of open_by_handle_at"},
    {"vhangup", "hangs up the terminal"},
};

// Namespace flags that clone() and unshare() must not carry. CLONE_NEWTIME is checked for
// unshare only: in clone()'s flags its bit is part of the exit-signal byte.
constexpr uint64_t kNamespaceFlags[] = {CLONE_NEWUSER, CLONE_NEWNS,  CLONE_NEWPID,   CLONE_NEWNET,
                                        CLONE_NEWIPC,  CLONE_NEWUTS, CLONE_NEWCGROUP};

Status Add(scmp_filter_ctx ctx, uint32_t action, const char* name, unsigned count = 0,
           const scmp_arg_cmp* cmp = nullptr) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return Status::Ok();  // not a call on this architecture (iopl on aarch64)
  int rc = seccomp_rule_add_array(ctx, action, nr, count, cmp);
  if (rc < 0) return Status::Sys(-rc, std::string("seccomp rule for ") + name);
  return Status::Ok();
}

}  // namespace

Status InstallSeccomp(bool restore) {
  Context ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return Status::Sys(ENOMEM, "seccomp_init");
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  for (const Refusal& r : kRefused) {
    if (restore && std::strcmp(r.name, "userfaultfd") == 0) continue;
    GEYSIR_RETURN_IF_ERROR(Add(ctx.get(), eperm, r.name));
  }
  if (restore) {
    // Restore mode: each new child makes one userfaultfd for the restorer to track its writes
    // with (worker/runtime/child_enter.c), then forbids itself any other with a filter of its
    // own. Only with UFFD_USER_MODE_ONLY: such a descriptor never handles a fault the kernel
    // takes while copying from or to user memory, so it cannot stall the kernel mid-copy (the
    // exploit building block the refusal above is about); it is what Linux itself grants
    // unprivileged processes under vm.unprivileged_userfaultfd = 0.
    scmp_arg_cmp kernel_faults_too = SCMP_A0(SCMP_CMP_MASKED_EQ, 1 /* UFFD_USER_MODE_ONLY */, 0);
    GEYSIR_RETURN_IF_ERROR(Add(ctx.get(), eperm, "userfaultfd", 1, &kernel_faults_too));
  }

  // clone/unshare: allowed (fork, threads, subprocess) unless a namespace flag is set; one rule
  // per flag, as rules for one call are alternatives.
  //
  // One exception, for unshare only: CLONE_NEWUSER, CLONE_NEWNS and CLONE_NEWIPC together (and
  // no one or two of them without the rest). It is how a freshly forked child gets a mount
  // namespace of its own, on whose /tmp the scheduler mounts the invocation's private tmpfs
  // (worker/private_tmp.h), and an IPC namespace of its own, so that System V and POSIX IPC
  // objects die with the invocation: the child unshares, sets user.max_user_namespaces to 0 in
  // the new user namespace and drops the capabilities it gave, so no user namespace can be made
  // below it, before any of the function's handler code runs (libgeysir_child.so,
  // worker/runtime/child_enter.c). What the template's init code can do with it: own a user
  // namespace that owns nothing but a copy of the mount table and an empty IPC namespace, in
  // which this filter still refuses every mount call, setns, pivot_root, chroot and every other
  // namespace type.
  constexpr uint64_t kChildSet = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC;
  for (uint64_t flag : kNamespaceFlags) {
    scmp_arg_cmp cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag);
    GEYSIR_RETURN_IF_ERROR(Add(ctx.get(), eperm, "clone", 1, &cmp));
    if ((flag & kChildSet) == 0) GEYSIR_RETURN_IF_ERROR(Add(ctx.get(), eperm, "unshare", 1, &cmp));
  }
  // Every proper, non-empty subset of the three.
  for (uint64_t part = 1; part < 8; ++part) {
    uint64_t subset = 0;
    if (part & 1) subset |= CLONE_NEWUSER;
    if (part & 2) subset |= CLONE_NEWNS;
    if (part & 4) subset |= CLONE_NEWIPC;
    if (subset == kChildSet) continue;
    scmp_arg_cmp cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, kChildSet, subset);
    GEYSIR_RETURN_IF_ERROR(Add(ctx.get(), eperm, "unshare", 1, &cmp));
  }
  scmp_arg_cmp newtime = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWTIME, CLONE_NEWTIME);
  GEYSIR_RETURN_IF_ERROR(Add(ctx.get(), eperm, "unshare", 1, &newtime));
  // clone3 passes its flags in memory, where a filter cannot look: ENOSYS makes glibc (and
  // anything else) fall back to clone(), whose flags are checked above.
  GEYSIR_RETURN_IF_ERROR(Add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), "clone3"));

  // personality: only the query (0xffffffff). Setting a persona can switch off ASLR
  // (ADDR_NO_RANDOMIZE) or make data executable (READ_IMPLIES_EXEC) for what the function execs.
  // Compared on all 64 bits: the kernel truncates to 32, so a value with high bits set could
  // smuggle a persona past a 32-bit compare. (A sign-extended -1 is refused too; glibc's
  // personality(0xffffffff) passes the zero-extended query.)
  scmp_arg_cmp not_query = SCMP_A0(SCMP_CMP_NE, 0xffffffffULL);
  GEYSIR_RETURN_IF_ERROR(Add(ctx.get(), eperm, "personality", 1, &not_query));

  // socket/socketpair: only the address families that go through the function's network
  // namespace (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK). Others reach past it: AF_VSOCK talks to
  // the hypervisor and the host's vsock services whatever namespace the socket is made in, and
  // the rest (AF_ALG, AF_TIPC, AF_RDS, AF_KEY, AF_BLUETOOTH, ...) are kernel code a function
  // never needs. EAFNOSUPPORT, what a kernel without that family says: code that probes a family
  // (Python's socket module, libraries) takes it as absent. A domain is an int; compared on all
  // 64 bits, a value with high bits set (which the kernel would truncate) is above AF_NETLINK
  // and refused.
  const uint32_t no_family = SCMP_ACT_ERRNO(EAFNOSUPPORT);
  for (const char* call : {"socket", "socketpair"}) {
    scmp_arg_cmp above = SCMP_A0(SCMP_CMP_GT, static_cast<uint64_t>(AF_NETLINK));
    GEYSIR_RETURN_IF_ERROR(Add(ctx.get(), no_family, call, 1, &above));
    for (uint64_t family = 0; family < AF_NETLINK; ++family) {
      if (family == AF_UNIX || family == AF_INET || family == AF_INET6) continue;
      scmp_arg_cmp is = SCMP_A0(SCMP_CMP_EQ, family);
      GEYSIR_RETURN_IF_ERROR(Add(ctx.get(), no_family, call, 1, &is));
    }
  }

  int rc = seccomp_load(ctx.get());
  if (rc < 0) return Status::Sys(-rc, "seccomp_load");
  return Status::Ok();
}

}  // namespace geysir::worker::sandbox
