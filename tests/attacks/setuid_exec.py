"""Executes a setuid-root binary and reports the identity it ran with. The test plants a
setuid-root copy of /usr/bin/id in this function's code (as an attacker who got mode bits
through would), and also tries the host's own setuid programs."""
import os
import subprocess


def _run(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=5)
        return {"rc": p.returncode, "out": p.stdout.strip()[:200], "err": p.stderr.strip()[:200]}
    except OSError as e:
        return {"rc": None, "err": f"{type(e).__name__}: {e.strerror}"}


def handler(event, context):
    planted = os.path.join(os.environ.get("LAMBDA_TASK_ROOT", "/var/task"), "suid-id")
    return {
        "planted id -u": _run([planted, "-u"]),
        "planted id": _run([planted]),
        "host su": _run(["/usr/bin/su", "-c", "id -u", "root"]),
        "host newgrp": _run(["/usr/bin/newgrp", "root"]),
    }
