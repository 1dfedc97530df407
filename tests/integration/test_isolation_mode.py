"""The isolation mode switch: `geysir server --isolation auto|restore|fork` reaches the scheduler
and control, the mode in use shows in GET /geysir/v1/health and in the `isolation_mode` start-up
events, and a bad or unavailable choice is refused before anything starts.

Whether restore mode really isolates is test_isolation_probes.py's and test_attacks.py's job;
this file checks only that the operator gets the mode asked for, and can see it.
"""
import contextlib
import http.client
import json
import os
import subprocess
import tempfile

import pytest

from conftest import BIN, GEYSIR, kernel_has_restore, running_server, skip_unless_restore


def health(server):
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", server.info["control_port"], timeout=10)) as c:
        c.request("GET", "/geysir/v1/health")
        r = c.getresponse()
        assert r.status == 200
        return json.loads(r.read())


def events(server, name):
    """The `name` events of the server's log (supervisor and daemons share it), as dicts."""
    out = []
    with open(server.log_path, "rb") as f:
        for line in f.read().decode("utf-8", "replace").splitlines():
            if f'"event":"{name}"' in line:
                out.append(json.loads(line))
    return out


def scheduler_argv(server):
    pids = server.child_pids("geysir-scheduler")
    assert len(pids) == 1, pids
    with open(f"/proc/{pids[0]}/cmdline", "rb") as f:
        return f.read().decode().split("\0")


def test_help_lists_isolation():
    r = subprocess.run([GEYSIR, "server", "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    assert "--isolation" in r.stdout and "auto|restore|fork" in r.stdout


@pytest.mark.parametrize("requested", ["fork", "restore", "auto"])
def test_mode_reaches_scheduler_and_health(requested):
    if requested == "restore":
        skip_unless_restore()
    expected = requested if requested != "auto" else ("restore" if kernel_has_restore() else "fork")
    with running_server(extra_args=["--isolation", requested]) as s:
        assert health(s) == {"status": "ok", "isolation": expected}
        # The scheduler is told the resolved mode, never "auto": control and the scheduler agree.
        argv = scheduler_argv(s)
        assert argv[argv.index("--isolation") + 1] == expected, argv
        sup = [e for e in events(s, "isolation_mode") if e["component"] == "supervisor"]
        sched = [e for e in events(s, "isolation_mode") if e["component"] == "scheduler"]
        assert len(sup) == 1 and sup[0]["mode"] == expected and sup[0]["requested"] == requested, sup
        assert len(sched) == 1 and sched[0]["mode"] == expected and sched[0]["detail"], sched


def test_invalid_mode_is_refused_and_changes_nothing():
    with tempfile.TemporaryDirectory(prefix="geysir-it-") as tmp:
        data = os.path.join(tmp, "data")
        r = subprocess.run([GEYSIR, "server", "--data-dir", data, "--http-port", "0", "--control-port", "0",
                            "--isolation", "vm"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, r
        assert "--isolation is auto, restore or fork, got 'vm'" in r.stderr, r.stderr
        assert not os.path.exists(data), "a refused start must not create the data directory"
        r = subprocess.run([GEYSIR, "server", "--data-dir", data, "--isolation"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2 and not os.path.exists(data), r
    for binary, args in (("geysir-scheduler", ["--isolation", "vm"]), ("geysir-control", ["--isolation", "auto"])):
        r = subprocess.run([os.path.join(BIN, binary), *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, (binary, r)
        assert "--isolation is" in r.stderr, (binary, r.stderr)


def test_scheduler_refuses_restore_without_the_sandbox():
    # Restore mode restores sandboxed workers only; an explicit request it cannot honour is an
    # error at start that names what is missing, not a quiet fallback to fork.
    with tempfile.TemporaryDirectory(prefix="geysir-it-") as tmp:
        r = subprocess.run([os.path.join(BIN, "geysir-scheduler"), "--data-dir", tmp, "--no-sandbox", "--no-cgroups",
                            "--isolation", "restore"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, r
        assert "--isolation restore is not available here" in r.stderr, r.stderr
        expected = "--no-sandbox" if kernel_has_restore() else ""
        assert expected in r.stderr, r.stderr
        assert os.listdir(tmp) == [], "a refused start must not create anything in the data directory"
