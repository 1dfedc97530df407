"""Integration test fixtures: the real `geysir server`, started on port 0 with a temp data dir.

Nothing is built here: tests/run-all.sh builds first and passes the build directory in
GEYSIR_BUILD_DIR (default: <repo>/build/ci). Run with Debian's interpreter so the clients are
Debian's boto3 / botocore:  GEYSIR_BUILD_DIR=build/x /usr/bin/python3 -m pytest tests/integration
"""
import configparser
import contextlib
import http.client
import io
import json
import os
import platform
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import urllib.parse
import uuid
import zipfile

import boto3
import botocore.config
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.path.abspath(os.environ.get("GEYSIR_BUILD_DIR", os.path.join(REPO, "build", "ci")))
BIN = os.path.join(BUILD_DIR, "bin")
GEYSIR = os.path.join(BIN, "geysir")
AWS_CLI = "/usr/bin/aws"  # Debian's AWS CLI v2 (a pyenv shim may shadow `aws` on PATH)
ROLE = "arn:aws:iam::000000000000:role/lambda-role"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 45


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate until it returns a truthy value; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = predicate()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - report the last one on timeout
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else ""))


def make_zip(files, symlinks=None):
    """files: {name: str|bytes}; symlinks: {name: target}. Returns the zip as bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, content)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = 3  # unix, so external_attr carries the mode
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, target)
    return buf.getvalue()


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Server:
    """One `geysir server` process with its own data directory."""

    def __init__(self, extra_args=(), binary=GEYSIR):
        self.binary = binary
        self.data_dir = tempfile.mkdtemp(prefix="geysir-it-")
        self.log_path = os.path.join(self.data_dir, "server.log")
        self.extra_args = list(extra_args)
        self.proc = None
        self.info = None

    def start(self):
        if not os.access(self.binary, os.X_OK):
            pytest.fail(f"{self.binary} not built (set GEYSIR_BUILD_DIR; tests/run-all.sh builds first)")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "server", "--data-dir", self.data_dir, "--http-port", "0", "--control-port", "0",
             "--grace-s", "20", *self.extra_args],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        server_json = os.path.join(self.data_dir, "run", "server.json")

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"geysir server exited with {self.proc.returncode}:\n{self.log_tail()}")
            return os.path.exists(server_json)
        try:
            wait_until(up, START_TIMEOUT_S, what="run/server.json")
        except BaseException:
            print(self.log_tail())
            self.kill()
            raise
        with open(server_json) as f:
            self.info = json.load(f)
        self.http_port = self.info["http_port"]
        self.control_endpoint = self.info["control_endpoint"]
        self.credentials_file = self.info["credentials_file"]
        cp = configparser.ConfigParser()
        cp.read(self.credentials_file)
        section = "default" if cp.has_section("default") else cp.sections()[0]
        self.access_key = cp[section]["aws_access_key_id"]
        self.secret_key = cp[section]["aws_secret_access_key"]
        return self

    def log_tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def stop(self):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print(self.log_tail())
            self.kill()
            raise AssertionError(f"geysir server did not exit within {STOP_TIMEOUT_S}s of SIGTERM")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def cleanup(self):
        self.kill()
        if os.environ.get("GEYSIR_KEEP_DATA"):
            print(f"kept {self.data_dir}")
            return
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # --- clients -----------------------------------------------------------------------------

    def lambda_client(self, access_key=None, secret_key=None, read_timeout=60):
        return boto3.client(
            "lambda", endpoint_url=self.control_endpoint, region_name="us-east-1",
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=read_timeout,
                                          connect_timeout=5))

    def client(self, service, **config):
        """A boto3 client for any AWS service Geysir speaks ("s3", "iam", "events", ...), pointed
        at control with the admin key. `config` goes to botocore.config.Config."""
        cfg = {"retries": {"max_attempts": 1}, "read_timeout": 60, "connect_timeout": 5}
        cfg.update(config)
        return boto3.client(
            service, endpoint_url=self.control_endpoint, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=botocore.config.Config(**cfg))

    def isolation(self):
        """The per-request isolation mode this server runs ("fork" or "restore"), from control's
        health endpoint ("fork" where it does not say: a server from before restore mode)."""
        with contextlib.closing(http.client.HTTPConnection("127.0.0.1", self.info["control_port"], timeout=10)) as c:
            c.request("GET", "/geysir/v1/health")
            return json.loads(c.getresponse().read()).get("isolation", "fork")

    def aws_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_SHARED_CREDENTIALS_FILE": self.credentials_file, "AWS_CONFIG_FILE": "/dev/null",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": "", "AWS_PROFILE": "default"})
        return env

    def aws(self, *args, timeout=60):
        return subprocess.run([AWS_CLI, "--endpoint-url", self.control_endpoint, "--output", "json", *args],
                              env=self.aws_env(), capture_output=True, text=True, timeout=timeout)

    def geysir(self, *args, input=None, timeout=60):
        env = self.aws_env()
        env["GEYSIR_ENDPOINT"] = self.control_endpoint
        env["GEYSIR_DATA_DIR"] = self.data_dir
        return subprocess.run([GEYSIR, *args], env=env, capture_output=True, text=True, input=input,
                              timeout=timeout)

    # --- functions ---------------------------------------------------------------------------

    def wait_active(self, client, name, timeout=20):
        def active():
            c = client.get_function_configuration(FunctionName=name)
            if c.get("State") == "Failed":
                raise AssertionError(f"function {name} failed: {c.get('StateReason')}")
            return c.get("State", "Active") == "Active" and c.get("LastUpdateStatus", "Successful") != "InProgress"
        wait_until(active, timeout, what=f"{name} Active")

    def create(self, client, name, files, handler="app.handler", url=False, **kw):
        client.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler=handler,
                               Code={"ZipFile": make_zip(files)}, **kw)
        self.wait_active(client, name)
        if url:
            return client.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
        return None

    def url_request(self, url, method="GET", path=None, body=None, headers=None, timeout=30):
        """One HTTP request to a function URL, sent to loopback with the URL's Host header.
        Returns (status, headers dict (lower-case), body bytes)."""
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection("127.0.0.1", u.port or 80, timeout=timeout)
        try:
            h = {"Host": u.netloc}
            h.update(headers or {})
            target = path if path is not None else (u.path or "/") + (("?" + u.query) if u.query else "")
            conn.request(method, target, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def wait_url_status(self, url, status, timeout=15):
        """Routes reach the gateway asynchronously (pushed by control): poll until the URL answers."""
        return wait_until(lambda: (lambda r: r if r[0] == status else None)(self.url_request(url, timeout=10)),
                          timeout, interval=0.1, what=f"{url} -> {status}")

    def child_pids(self, binary):
        """Pids of the supervisor's children whose executable is `binary` (e.g. geysir-gateway)."""
        pids = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open(f"/proc/{p}/stat") as f:
                    st = f.read()
                ppid = int(st[st.rindex(")") + 2:].split()[1])
                if ppid != self.proc.pid:
                    continue
                exe = os.readlink(f"/proc/{p}/exe")
            except (OSError, ValueError):
                continue
            if os.path.basename(exe) == binary:
                pids.append(int(p))
        return pids


def curl(url, *args, timeout=20):
    """Real curl (resolves *.localhost to loopback). Returns (status, body str)."""
    r = subprocess.run(["curl", "-sS", "--max-time", str(timeout), "-o", "-", "-w", "\n%{http_code}", *args, url],
                       capture_output=True, text=True, timeout=timeout + 5)
    out = r.stdout
    body, _, code = out.rpartition("\n")
    return int(code or 0), body


@contextlib.contextmanager
def running_server(extra_args=(), prepare=None):
    """One started `geysir server` for a fixture or a test: on leaving, it is stopped, must have
    exited 0 after SIGTERM and removed its server.json, and its data directory is removed.
    `prepare(server)` runs before it starts (to write files into its data directory)."""
    s = Server(extra_args=extra_args)
    try:
        if prepare:
            prepare(s)
        s.start()
        yield s
        rc = s.stop()
        assert rc == 0, f"geysir server exited {rc} after SIGTERM:\n{s.log_tail()}"
        assert not os.path.exists(os.path.join(s.data_dir, "run", "server.json")), "server.json left behind"
    finally:
        s.cleanup()


ISOLATION_MODES = ("fork", "restore")


def kernel_has_restore():
    """What restore mode needs (worker/restore/restore.h, Probe()): x86-64, Linux >= 6.7, and root
    for the sandbox. Decided from outside the code under test, so a probe that wrongly says no
    fails the tests that use this instead of skipping them."""
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    return (platform.machine() == "x86_64" and os.geteuid() == 0 and m is not None
            and (int(m.group(1)), int(m.group(2))) >= (6, 7))


def skip_unless_restore():
    if not kernel_has_restore():
        pytest.skip(f"restore mode needs x86-64, Linux >= 6.7 and root ({platform.machine()}, "
                    f"{platform.release()}, uid {os.geteuid()})")


def isolation_args(mode):
    """`geysir server` arguments for per-request isolation `mode` ("fork" or "restore"); "restore"
    is skipped, with the reason, on a kernel that cannot have it."""
    if mode == "restore":
        skip_unless_restore()
    return ["--isolation", mode]


def assert_isolation(server, mode):
    """The server says it runs `mode` (GET /geysir/v1/health on control)."""
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", server.info["control_port"], timeout=10)) as c:
        c.request("GET", "/geysir/v1/health")
        health = json.loads(c.getresponse().read())
    assert health.get("isolation") == mode, f"started with --isolation {mode}, health says {health}"


# Skips CI may see (CI=true, set by .ci/run: root, Debian 12, every package of
# deploy/packages.txt), each a documented absence CI cannot or need not remove, by a pattern of
# its reason. Every other skip fails its test under CI or GEYSIR_REQUIRE_ALL=1: there a missing
# prerequisite is a regression that would otherwise pass as a skip. (Terraform is not a Debian
# package: a test that needs it must skip with a reason listed here.)
ALLOWED_SKIPS = {
    r"^restore mode needs x86-64, Linux >= 6\.7": "a kernel feature: CI's kernel is whatever its host boots",
    r"^the attack uses x86_64 syscall numbers": "the machine's architecture",
    r"^no (second Python with a newer boto3|pyenv python3 with boto3 1\.43) on this machine":
        "a newer boto3 from pyenv: not a Debian package",
    r"^an earlier step did not complete": "test_zappa.py's steps after a failed one, whose failure fails the run",
}


def skips_must_fail():
    return os.environ.get("CI") == "true" or os.environ.get("GEYSIR_REQUIRE_ALL") == "1"


def skip_reason(report):
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI, a skip whose reason ALLOWED_SKIPS does not list becomes a failure naming it."""
    report = (yield).get_result()
    if not report.skipped or hasattr(report, "wasxfail") or not skips_must_fail():
        return
    reason = skip_reason(report)
    if any(re.search(pattern, reason) for pattern in ALLOWED_SKIPS):
        return
    report.outcome = "failed"
    report.longrepr = (f"skipped, but under CI this must run: {reason}\n"
                       "(a legitimate absence belongs in ALLOWED_SKIPS, tests/integration/conftest.py)")


@pytest.fixture(scope="session")
def server():
    with running_server() as s:
        yield s


@pytest.fixture(scope="session")
def lam(server):
    return server.lambda_client()


@pytest.fixture
def fn_name(lam):
    """A fresh function name; the function is deleted after the test if it still exists."""
    name = unique("it")
    yield name
    try:
        lam.delete_function(FunctionName=name)
    except Exception:  # noqa: BLE001 - already deleted, or the test broke the server
        pass


# Tables a test module wants printed at the end of the run: title -> list of rows (tuples of
# strings). test_attacks.py fills "attack suite" with one row per attack and its outcome.
SUMMARY_TABLES = {}


def pytest_terminal_summary(terminalreporter):
    for title, rows in SUMMARY_TABLES.items():
        if not rows:
            continue
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        terminalreporter.section(title)
        for r in rows:
            terminalreporter.write_line("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
