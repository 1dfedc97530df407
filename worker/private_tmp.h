// A private, size-limited /tmp for one forked child: the scheduler's half of "a /tmp per
// invocation" (worker/sandbox/README.md, "/tmp: one per invocation").
//
// The child (bootstrap.py, right after the fork) unshares a user namespace and a mount namespace
// of its own, drops every capability it was given in them, and announces itself ("forked").
// MountPrivateTmp() then runs in the scheduler (root): it checks that the child really is in
// namespaces of its own, one level below its template's, writes the child's uid/gid maps (its
// own ids only, so it never is root in there), and mounts a fresh tmpfs of `size_mb` on /tmp in
// the child's mount namespace, from a short-lived thread that enters only that namespace. The
// seccomp filter keeps refusing mount(2) to the function: the mount is made from outside.
//
// The tmpfs lives as long as the child's mount namespace: when the child (and anything it
// started, which the scheduler kills with its cgroup) is gone, so are its files.
//
// Thread safety: callable from any thread; blocks for the mount (tens to hundreds of µs).
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "proto/status.h"

namespace geysir::worker {

// Code::kUnavailable with errno 0: the child is still in its template's namespaces (the kernel
// refused it a user namespace, e.g. user.max_user_namespaces = 0): it shares the template's
// /tmp. Any other error: the child's namespaces are not what they must be, or the mount failed;
// the child must not be used.
Status MountPrivateTmp(pid_t child, pid_t template_pid, uid_t uid, gid_t gid, uint64_t size_mb);

}  // namespace geysir::worker
