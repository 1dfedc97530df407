"""Tries to leave the sandbox through /proc: the root and cwd of pid 1 and of its parent (the
template), /proc/self/exe opened for writing (overwriting the interpreter, CVE-2019-5736 style),
and /proc/self/root. Event: 'paths' to look for through each root (e.g. the data directory)."""
import hashlib
import os


def _read(path):
    try:
        with open(path, "rb") as f:
            return {"ok": True, "sha256": hashlib.sha256(f.read(1 << 20)).hexdigest()}
    except OSError as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e.strerror}"}


def _list(path):
    try:
        return {"ok": True, "entries": sorted(os.listdir(path))[:50]}
    except OSError as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e.strerror}"}


def handler(event, context):
    out = {"reads": {}, "lists": {}}
    roots = ["/proc/1/root", "/proc/1/cwd", f"/proc/{os.getppid()}/root", f"/proc/{os.getppid()}/cwd",
             "/proc/self/root"]
    for r in roots:
        out["reads"][r + "/etc/shadow"] = _read(r + "/etc/shadow")
        for p in event.get("paths", [])[:10]:
            out["reads"][r + p] = _read(r + p)
            out["lists"][r + os.path.dirname(p)] = _list(r + os.path.dirname(p))
    try:
        out["exe"] = os.readlink("/proc/self/exe")
    except OSError as e:
        out["exe"] = f"{type(e).__name__}: {e.strerror}"
    for mode, name in ((os.O_WRONLY, "O_WRONLY"), (os.O_RDWR, "O_RDWR"), (os.O_WRONLY | os.O_APPEND, "O_APPEND")):
        try:
            fd = os.open("/proc/self/exe", mode)
            os.close(fd)
            out["exe " + name] = {"ok": True}
        except OSError as e:
            out["exe " + name] = {"ok": False, "error": f"{type(e).__name__}: {e.strerror}"}
    return out
