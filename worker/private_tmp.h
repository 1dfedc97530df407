// A private, size-limited /tmp for one forked child: the scheduler's half of "a /tmp per
// invocation" (worker/sandbox/README.md, "/tmp: one per invocation").
//
// The child (libgeysir_child.so, right after the fork) unshares a user namespace and a mount
// namespace of its own, forbids itself any further user namespace, drops every capability it was
// given in them, and announces itself ("forked"). The scheduler (root) then checks that the child
// really is in namespaces of its own, one level below its template's, writes the child's uid/gid
// maps (its own ids only, so it never is root in there), and mounts a fresh tmpfs of `size_mb` on
// /tmp in the child's mount namespace, from a thread that alone enters it (and comes back). The
// seccomp filter keeps refusing mount(2) to the function: the mount is made from outside.
//
// The tmpfs lives as long as the child's mount namespace: when the child (and anything it
// started, which the scheduler kills with its cgroup) is gone, so are its files.
//
// Blocking: ~0.1-0.3 ms of opens, ioctls, /proc writes and the mount. The scheduler runs it on a
// thread of its own (base/loop_worker.h), never on its loop.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "base/status.h"

namespace geysir::worker {

// A process's mount and user namespaces, by nsfs inode (what `ls -l /proc/PID/ns` shows).
struct NamespaceIds {
  ino_t mnt = 0;
  ino_t user = 0;
};

// The template's, looked up once per template (two /proc path walks, ~50 us of CPU on the CI VM,
// are a fifth of a child's mount) and passed in each request.
Result<NamespaceIds> TemplateNamespaces(pid_t template_pid);

struct PrivateTmpRequest {
  pid_t child = -1;         // as the scheduler sees it (the sender of its "forked")
  pid_t template_pid = -1;  // the child's template
  NamespaceIds template_ns;  // TemplateNamespaces(template_pid); zeros: looked up here
  uid_t uid = 0;            // the function's ids: what the maps name
  gid_t gid = 0;
  uint64_t size_mb = 512;   // EphemeralStorage; 0 = 512
};

// Code::kUnavailable with errno 0: the child is still in its template's namespaces (the kernel
// refused it a user namespace, e.g. user.max_user_namespaces = 0): it shares the template's
// /tmp. Any other error: the child's namespaces are not what they must be, or the mount failed;
// the child must not be used.
//
// Mounts from the calling thread, which it changes for good: the first call unshares the
// thread's fs_struct (CLONE_FS). Call it from a thread kept for this (the scheduler's
// LoopWorker), never from one whose working directory matters.
Status MountPrivateTmpOnThisThread(const PrivateTmpRequest& request);

// The same from a short-lived thread of its own (~0.5 ms more: tests, benchmarks).
Status MountPrivateTmp(const PrivateTmpRequest& request);

}  // namespace geysir::worker
