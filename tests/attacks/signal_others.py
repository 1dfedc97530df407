"""Tries to signal, ptrace and read the memory of every other process it can see.

mode 'info': reports its log stream name (it names the template) and its pids.
mode 'victim': sleeps, then answers (it must survive a concurrent attacker of the same function).
mode 'attack': waits for the victim to start, then for every pid in /proc other than its own
  (bounded: 2000 pids): kill(pid, 0), PTRACE_ATTACH (detached again at once), process_vm_readv;
  then, when event.kill is true, SIGKILL to every pid it was allowed to signal. Reports the pids
  each succeeded on, with their command lines, and its parent (the template)."""
import ctypes
import os
import signal
import time

libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH, PTRACE_DETACH = 16, 17


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def _cmd(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read(200).replace(b"\0", b" ").decode("latin-1").strip()
    except OSError:
        return "?"


def _vm_read(pid):
    buf = ctypes.create_string_buffer(16)
    local = IoVec(ctypes.cast(buf, ctypes.c_void_p), 16)
    # Any address: the point is whether the kernel lets us try (EPERM/ENOSYS) or reads (EFAULT).
    remote = IoVec(ctypes.c_void_p(0x400000), 16)
    libc.process_vm_readv.argtypes = [ctypes.c_int, ctypes.POINTER(IoVec), ctypes.c_ulong,
                                      ctypes.POINTER(IoVec), ctypes.c_ulong, ctypes.c_ulong]
    r = libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    e = ctypes.get_errno()
    return r >= 0 or e == 14  # EFAULT: allowed to read that process, the address was just unmapped


def handler(event, context):
    if event.get("mode") == "info":
        # The template's id is part of the log stream name: a restarted template has a new one.
        return {"stream": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME"), "pid": os.getpid(), "parent": os.getppid()}
    if event.get("mode") == "victim":
        time.sleep(float(event.get("sleep", 3)))
        return {"victim": "survived", "pid": os.getpid()}
    time.sleep(float(event.get("wait", 0.8)))
    me = os.getpid()
    parent = os.getppid()
    report = {"self": me, "parent": parent, "parent_cmd": _cmd(parent), "visible": 0,
              "signalled": [], "killed": [], "ptraced": [], "vm_read": []}
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())[:2000]
    report["visible"] = len(pids)
    for pid in pids:
        if pid == me:
            continue
        try:
            os.kill(pid, 0)
            report["signalled"].append([pid, _cmd(pid)])
        except OSError:
            pass
        if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
            report["ptraced"].append([pid, _cmd(pid)])
            time.sleep(0.01)
            libc.ptrace(PTRACE_DETACH, pid, None, None)
        if _vm_read(pid):
            report["vm_read"].append([pid, _cmd(pid)])
    if event.get("kill"):
        for pid, _ in report["signalled"]:
            try:
                os.kill(pid, signal.SIGKILL)
                report["killed"].append(pid)
            except OSError:
                pass
    return report
