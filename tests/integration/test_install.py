"""`cmake --install` gives a working installation: every binary and the runtime land under the
prefix (the install() rules of the CMakeLists), and the installed `geysir server` finds its
daemons and runtime there and starts far enough to answer its health checks.
"""
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time

from conftest import BUILD_DIR, Server

BINARIES = ("geysir", "geysir-control", "geysir-scheduler", "geysir-gateway", "geysir-worker")
RUNTIME = ("bootstrap.py", "libgeysir_child.so")


def get(port, path):
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=10)) as c:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()


def test_cmake_install_gives_a_server_that_starts():
    started = time.monotonic()
    # Readable by the gateway's unprivileged user, as /usr/local is (tempfile makes it 0700).
    prefix = tempfile.mkdtemp(prefix="geysir-install-")
    os.chmod(prefix, 0o755)
    try:
        r = subprocess.run(["cmake", "--install", BUILD_DIR, "--prefix", prefix], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        for b in BINARIES:
            assert os.access(os.path.join(prefix, "bin", b), os.X_OK), f"{b} not installed:\n{r.stdout}"
        for f in RUNTIME:
            assert os.path.isfile(os.path.join(prefix, "share", "geysir", "runtime", "python", f)), r.stdout

        s = Server(extra_args=["--isolation", "fork"], binary=os.path.join(prefix, "bin", "geysir")).start()
        try:
            status, body = get(s.info["control_port"], "/geysir/v1/health")
            assert status == 200 and json.loads(body)["status"] == "ok", body
            assert get(s.http_port, "/healthz")[0] == 200
            # The daemons it started are the installed ones, not the build tree's.
            for daemon in ("geysir-control", "geysir-scheduler", "geysir-gateway"):
                pids = s.child_pids(daemon)
                assert pids, f"no {daemon} running"
                assert os.readlink(f"/proc/{pids[0]}/exe") == os.path.join(prefix, "bin", daemon)
            assert s.stop() == 0, s.log_tail()
        finally:
            s.cleanup()
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
    assert time.monotonic() - started < 30, "install and start took longer than 30 s"
