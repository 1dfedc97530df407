"""Tries to create and modify files in its own code directory (/var/task, LAMBDA_TASK_ROOT)
and in paths the event names. Reports each attempt."""
import os


def _try(what, fn):
    try:
        fn()
        return {"ok": True}
    except OSError as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e.strerror}"}


def _write(path):
    with open(path, "wb") as f:
        f.write(b"pwned by fs_write\n")


def _append(path):
    with open(path, "ab") as f:
        f.write(b"# pwned\n")


def handler(event, context):
    root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    marker = event.get("marker", "pwned")
    out = {
        "create /var/task": _try("create", lambda: _write(f"/var/task/{marker}")),
        "create LAMBDA_TASK_ROOT": _try("create", lambda: _write(os.path.join(root, marker))),
        "append own code": _try("append", lambda: _append(os.path.join(root, "fs_write.py"))),
        "chmod own code": _try("chmod", lambda: os.chmod(os.path.join(root, "fs_write.py"), 0o777)),
        "mkdir in code": _try("mkdir", lambda: os.mkdir(os.path.join(root, marker + ".d"))),
    }
    for p in event.get("paths", [])[:20]:
        out[f"create {p}"] = _try("create", lambda p=p: _write(p))
    return out
