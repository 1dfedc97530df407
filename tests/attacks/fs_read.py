"""Tries to read files and list directories the function must not see (event: paths, dirs).

Reports, per path, the SHA-256 and size of what it could read (the test compares with the
host's bytes) or the error."""
import hashlib
import os


def _read(path):
    try:
        with open(path, "rb") as f:
            data = f.read(4 * 1024 * 1024)
        return {"ok": True, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    except OSError as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e.strerror}"}


def _list(path):
    try:
        return {"ok": True, "entries": sorted(os.listdir(path))[:200]}
    except OSError as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e.strerror}"}


def handler(event, context):
    return {"files": {p: _read(p) for p in event.get("paths", [])[:50]},
            "dirs": {d: _list(d) for d in event.get("dirs", [])[:50]}}
