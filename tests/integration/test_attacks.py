"""The attack suite: real functions (tests/attacks/*.py) that each try one way out of the sandbox.

Every attack is deployed and invoked through the real platform (boto3 against control, function
URLs through the gateway). Each test
  1. compares what the attack reports with what the host really holds and asserts the attempt
     failed (the handler only reports; the verdict is made here, so a hole cannot hide);
  2. asserts the platform still serves: the server process is alive and a canary function
     deployed before any attack still answers, through the Lambda API and its function URL.
The outcome of every attack is printed in a table at the end of the run (conftest's
SUMMARY_TABLES). docs/security.md maps each row to the claim it verifies.

The whole suite runs once per per-request isolation mode (`geysir server --isolation fork`, then
`--isolation restore`): one Geysir server per mode serves the module (started here with an
operator-listed egress deny range, so the egress tests can prove it is refused), and the rows of
the table name the mode. Every loop in the attacks is bounded.
"""
import concurrent.futures
import errno
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid

import pytest

from conftest import (ISOLATION_MODES, SUMMARY_TABLES, assert_isolation, isolation_args, make_zip, running_server,
                      wait_until)

ATTACKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "attacks")
TABLE = SUMMARY_TABLES.setdefault("attack suite (tests/integration/test_attacks.py)",
                                  [("mode", "attack", "outcome", "evidence")])
# The isolation mode of the server the running tests use (srv sets it; pytest runs every test of
# one mode before starting the other's server).
CURRENT = {"mode": None}

# The egress tests' stand-in for the internet: a test network namespace holding a server at an
# address of the benchmarking range (RFC 2544, never routed on the internet), and a second
# address in a range the server below refuses because the operator listed it.
TEST_NET_ALLOWED = "198.18.{n}.2"
TEST_NET_DENIED = "198.19.{n}.2"
OPERATOR_DENY = "198.19.0.0/16"


def record(attack, blocked, evidence, labels=("blocked", "NOT BLOCKED")):
    """One table row; the caller asserts `blocked` right after. `labels` name the two outcomes
    (a row that checks something must work, rather than be refused, says "works"/"BROKEN")."""
    ev = " ".join(str(evidence).split())
    TABLE.append((CURRENT["mode"], attack, labels[0] if blocked else labels[1], ev[:140]))


# ---- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=ISOLATION_MODES)
def srv(request):
    def deny_list(s):
        # The operator's egress deny list (geysir-scheduler --egress-deny-file, default in the data dir).
        with open(os.path.join(s.data_dir, "egress-deny"), "w") as f:
            f.write(f"# ranges egress functions may not reach\n{OPERATOR_DENY}\n")
    mode = request.param
    with running_server(extra_args=isolation_args(mode), prepare=deny_list) as s:
        assert_isolation(s, mode)
        CURRENT["mode"] = mode
        yield s


@pytest.fixture(scope="module")
def lam(srv):
    return srv.lambda_client()


def _source(attack):
    with open(os.path.join(ATTACKS, attack + ".py")) as f:
        return f.read()


class Deployed:
    def __init__(self, srv, lam):
        self.srv, self.lam, self.names = srv, lam, []

    def __call__(self, attack, files=None, zip_bytes=None, **kw):
        name = f"atk-{attack.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
        zb = zip_bytes if zip_bytes is not None else make_zip({attack + ".py": _source(attack), **(files or {})})
        kw.setdefault("Timeout", 10)
        self.lam.create_function(FunctionName=name, Runtime="python3.11", Role="arn:aws:iam::000000000000:role/x",
                                 Handler=attack + ".handler", Code={"ZipFile": zb}, **kw)
        self.names.append(name)
        self.srv.wait_active(self.lam, name)
        return name


@pytest.fixture
def deploy(srv, lam):
    d = Deployed(srv, lam)
    yield d
    for n in d.names:
        try:
            lam.delete_function(FunctionName=n)
        except Exception:  # noqa: BLE001 - the assertion that failed already says why
            pass


def invoke(lam, name, event=None):
    """Returns (function_error or None, parsed payload (or raw text))."""
    r = lam.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode())
    raw = r["Payload"].read()
    try:
        out = json.loads(raw)
    except ValueError:
        out = raw.decode("utf-8", "replace")
    return r.get("FunctionError"), out


@pytest.fixture(scope="module")
def canary(srv, lam):
    """A bystander function deployed before any attack; every test checks it still answers."""
    name = "atk-canary"
    zb = make_zip({"canary.py": _source("canary")})
    lam.create_function(FunctionName=name, Runtime="python3.11", Role="arn:aws:iam::000000000000:role/x",
                        Handler="canary.handler", Code={"ZipFile": zb})
    srv.wait_active(lam, name)
    url = lam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    srv.wait_url_status(url, 200)
    return {"name": name, "url": url, "code_dir": os.path.join(srv.data_dir, "code", hashlib.sha256(zb).hexdigest())}


def assert_serving(srv, lam, canary):
    assert srv.proc.poll() is None, f"geysir server died:\n{srv.log_tail()}"
    n = uuid.uuid4().hex
    err, out = invoke(lam, canary["name"], {"n": n})
    assert err is None and out.get("n") == n, f"the canary no longer answers: {err} {out}"
    status, _, body = srv.url_request(canary["url"], timeout=15)
    assert status == 200 and json.loads(body)["ok"] is True, (status, body)


@pytest.fixture
def after(srv, lam, canary):
    """Runs the test, then proves the platform and the bystander still serve."""
    yield
    assert_serving(srv, lam, canary)


def host_ipv4_addresses():
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
    addrs = []
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            a = parts[parts.index("inet") + 1].split("/")[0]
            if not a.startswith("127.") and a not in addrs:
                addrs.append(a)
    return addrs


def processes_with(marker):
    """Host pids whose command line carries `marker` (bounded scan of /proc)."""
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if marker.encode() in f.read(4096):
                    found.append(int(p))
        except OSError:
            pass
    return found


def kill_marked(marker):
    """Cleans up after a hole: kills what this test's attack left (found by its unique marker)."""
    for pid in processes_with(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def needs_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: the sandbox (namespaces, cgroups, uid switch) is only built as root")


# ---- reading what is not the function's ----------------------------------------------------

def test_read_host_shadow(srv, lam, deploy, after):
    needs_root()
    name = deploy("fs_read")
    with open("/etc/shadow", "rb") as f:
        host = hashlib.sha256(f.read(4 * 1024 * 1024)).hexdigest()
    err, out = invoke(lam, name, {"paths": ["/etc/shadow", "/etc/gshadow"]})
    assert err is None, out
    got = out["files"]["/etc/shadow"]
    blocked = not got["ok"] or got["sha256"] != host
    record("read host /etc/shadow", blocked, got)
    assert blocked, f"the function read the host's /etc/shadow: {got}"


def test_read_data_dir_and_database(srv, lam, deploy, after):
    name = deploy("fs_read")
    d = srv.data_dir
    secrets = [os.path.join(d, "geysir.db"), os.path.join(d, "geysir.db-wal"), srv.credentials_file,
               os.path.join(d, "run", "server.json")]
    err, out = invoke(lam, name, {"paths": secrets, "dirs": [d, os.path.join(d, "code"), os.path.join(d, "run")]})
    assert err is None, out
    read = {p: r for p, r in out["files"].items() if r["ok"]}
    listed = {p: r["entries"][:5] for p, r in out["dirs"].items() if r["ok"]}
    blocked = not read and not listed
    record("read Geysir data dir, SQLite, credentials", blocked, {"read": list(read), "listed": listed} if not blocked
           else out["files"][srv.credentials_file]["error"])
    assert blocked, f"the function reached the data directory: read {list(read)}, listed {listed}"


def test_read_other_function_code(srv, lam, deploy, canary, after):
    name = deploy("fs_read")
    target = os.path.join(canary["code_dir"], "canary.py")
    assert os.path.exists(target), f"test setup: {target} missing (code store layout changed?)"
    err, out = invoke(lam, name, {"paths": [target], "dirs": [canary["code_dir"], os.path.dirname(canary["code_dir"])]})
    assert err is None, out
    got = out["files"][target]
    listed = {p: r["entries"][:5] for p, r in out["dirs"].items() if r["ok"]}
    blocked = not got["ok"] and not listed
    record("read another function's code", blocked, got if blocked else {"read": got, "listed": listed})
    assert blocked, f"the function read another function's code: {got}, listed {listed}"


def test_write_var_task(srv, lam, deploy, after):
    marker = "pwned-" + uuid.uuid4().hex[:8]
    name = deploy("fs_write")
    code_dir_files = None
    err, out = invoke(lam, name, {"marker": marker})
    assert err is None, out
    wrote = {k: v for k, v in out.items() if v["ok"]}
    # Whatever the function says, the host's copy of its code must be unchanged.
    for root, _, files in os.walk(os.path.join(srv.data_dir, "code")):
        code_dir_files = (code_dir_files or []) + [f for f in files if marker in f]
    blocked = not wrote and not code_dir_files
    record("write to /var/task (own code)", blocked, out["create /var/task"] if blocked else wrote)
    assert blocked, f"the function modified its code: {wrote}, files on the host {code_dir_files}"


# ---- reaching host services ----------------------------------------------------------------

def test_reach_control_gateway_and_host_services(srv, lam, deploy, after):
    name = deploy("net_connect", Timeout=30)
    control_port = int(srv.control_endpoint.rsplit(":", 1)[1])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("0.0.0.0", 0))  # a host service on every address
    listener.listen(16)
    try:
        service_port = listener.getsockname()[1]
        hosts = ["127.0.0.1"] + host_ipv4_addresses()
        targets = [[h, p] for h in hosts for p in (control_port, srv.http_port, service_port)]
        targets.append(["::1", control_port])
        err, out = invoke(lam, name, {"targets": targets, "timeout": 1.0})
    finally:
        listener.close()
    assert err is None, out
    reached = sorted(t for t, r in out.items() if r["connected"])
    for what, port in (("control API", control_port), ("gateway", srv.http_port), ("host service", service_port)):
        hits = [t for t in reached if t.endswith(f":{port}")]
        record(f"reach {what} over loopback/host addrs", not hits, hits or f"{len(hosts)} addresses refused")
    assert not reached, f"the function reached host services: {reached}"


def test_raw_socket(srv, lam, deploy, after):
    name = deploy("raw_socket")
    err, out = invoke(lam, name)
    assert err is None, out
    opened = [k for k, v in out.items() if v["ok"]]
    record("open a raw / packet socket", not opened, opened or out["AF_INET SOCK_RAW ICMP"]["error"])
    assert not opened, f"raw sockets opened: {opened}"


# ---- resource limits -----------------------------------------------------------------------

def test_fork_bomb(srv, lam, deploy, after):
    name = deploy("fork_bomb", Timeout=8)
    t0 = time.monotonic()
    err, out = invoke(lam, name, {"max": 5000})
    elapsed = time.monotonic() - t0
    # Either the function saw fork fail (pids limit) or it was killed; 5000 forks must not all work.
    blocked = err is not None or (out.get("errno") is not None and out.get("forked", 0) < 5000)
    record("fork bomb", blocked, out if err is None else f"{err}: {out}")
    assert blocked, f"5000 forks all succeeded: {out}"
    assert elapsed < 14, f"the fork bomb took {elapsed:.1f}s"


def test_memory_past_limit(srv, lam, deploy, after):
    name = deploy("memory_hog", MemorySize=128, Timeout=20)
    err, out = invoke(lam, name, {"blocks": 64})  # 1 GB in a 128 MB function
    blocked = err is not None
    record("allocate past MemorySize", blocked, out.get("errorType") if isinstance(out, dict) else out)
    assert blocked, f"1 GB allocated in a 128 MB function: {out}"
    assert out.get("errorType") == "Runtime.OutOfMemory", out


def test_spin_past_timeout(srv, lam, deploy, after):
    marker = "geysir-attack-spin-" + uuid.uuid4().hex[:8]
    name = deploy("spin", Timeout=1)
    try:
        t0 = time.monotonic()
        err, out = invoke(lam, name, {"marker": marker})
        elapsed = time.monotonic() - t0
        # Nothing of the invocation may keep running (and burning CPU) after its timeout.
        try:
            wait_until(lambda: not processes_with(marker), 3, interval=0.1, what="spinner gone")
            left = []
        except AssertionError:
            left = processes_with(marker)
        blocked = isinstance(out, dict) and out.get("errorType") == "Sandbox.Timedout" and elapsed < 6 and not left
        record("spin past the timeout", blocked, f"{out.get('errorType') if isinstance(out, dict) else out} after "
               f"{elapsed:.1f}s, {len(left)} spinner(s) left")
        assert blocked, f"timeout not enforced: {out} after {elapsed:.1f}s, left running: {left}"
    finally:
        kill_marked(marker)


def test_fill_tmp(srv, lam, deploy, after):
    marker = "fill-" + uuid.uuid4().hex[:8]
    name = deploy("fill_tmp", MemorySize=1024, Timeout=30, EphemeralStorage={"Size": 512})
    try:
        err, out = invoke(lam, name, {"marker": marker, "limit_mb": 768})
        assert err is None, out
        # The next invocation gets a /tmp of its own: nothing of the first one is there.
        err2, look = invoke(lam, name, {"mode": "look"})
        assert err2 is None, look
        leaked = [e for e in look["entries"] if e.startswith(marker)]
        on_host = [f for f in os.listdir("/tmp") if f.startswith(marker)]
        # Past 512 MB the write fails with ENOSPC: the tmpfs is full (not EFBIG: the files are
        # 64 MB each, below RLIMIT_FSIZE).
        bounded = out["errno"] == errno.ENOSPC and out["written_mb"] <= 512 + 8 and not on_host
        record("fill /tmp past EphemeralStorage", bounded, f"{out['written_mb']} MB then {out['error']}; "
               f"{len(on_host)} file(s) on the host's /tmp")
        record("/tmp private to each invocation (the next one)", not leaked,
               f"the next invocation sees {len(leaked)} of its files")
        assert bounded, f"/tmp not bounded: {out}, host /tmp has {on_host}"
        assert not leaked, f"the next invocation saw the previous one's files in /tmp: {leaked}"
    finally:
        for f in os.listdir("/tmp"):
            if f.startswith(marker):
                os.unlink(os.path.join("/tmp", f))


def test_tmp_private_between_concurrent_invocations(srv, lam, deploy, after):
    """Two invocations of one function running at the same time (children of one template,
    which meet over the function's loopback) each write a file in /tmp and list /tmp while the
    other's file exists: neither may see the other's. Then a third sees neither."""
    marker = "pair-" + uuid.uuid4().hex[:8]
    name = deploy("fill_tmp", Timeout=30)
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        a = ex.submit(invoke, lam, name, {"mode": "pair", "role": "a", "marker": marker, "wait_s": 20})
        b = ex.submit(invoke, lam, name, {"mode": "pair", "role": "b", "marker": marker, "wait_s": 20})
        (aerr, aout), (berr, bout) = a.result(timeout=90), b.result(timeout=90)
    assert aerr is None and berr is None, (aout, bout)
    # Both met (so both files existed while each listed) and each sees its own file.
    assert aout["peer_listed"] and bout["peer_listed"], (aout, bout)
    assert f"{marker}-a" in aout["entries"] and f"{marker}-b" in bout["entries"], (aout, bout)
    assert aout["pid"] != bout["pid"], (aout, bout)
    err, look = invoke(lam, name, {"mode": "look"})
    assert err is None, look
    a_saw, b_saw = f"{marker}-b" in aout["entries"], f"{marker}-a" in bout["entries"]
    later = [e for e in look["entries"] if e.startswith(marker)]
    on_host = [f for f in os.listdir("/tmp") if f.startswith(marker)]
    private = not a_saw and not b_saw and not later and not on_host
    record("/tmp private to each invocation (a concurrent one)", private,
           f"concurrent invocations see {int(a_saw) + int(b_saw)} of each other's files; a later one "
           f"{len(later)}; the host's /tmp {len(on_host)}")
    assert private, (f"/tmp shared: a saw b's file: {a_saw}, b saw a's: {b_saw}, a later invocation saw {later}, "
                     f"host /tmp has {on_host}")


def test_ipc_private_to_each_invocation(srv, lam, deploy, after):
    """One invocation makes a System V shared-memory segment (1 MiB, every page touched), a
    System V message queue and a POSIX message queue, and tries POSIX shared memory in /dev/shm;
    the next invocation of the same function (the same template) looks for each by its key or
    name. None may be there: each invocation has an IPC namespace of its own, gone with it."""
    needs_root()
    marker = "ipc-" + uuid.uuid4().hex[:8]
    key = 0x6e00_0000 | (uuid.uuid4().int & 0xffff)
    name = deploy("ipc_persist")
    err, planted = invoke(lam, name, {"mode": "plant", "key": key, "marker": marker})
    assert err is None, planted
    # SysV and POSIX message queues must work within an invocation (Lambda has them).
    made = [k for k in ("sysv shm", "sysv msg", "posix mq") if planted[k]["ok"]]
    assert made == ["sysv shm", "sysv msg", "posix mq"], planted
    err, look = invoke(lam, name, {"mode": "look", "key": key, "marker": marker})
    assert err is None, look
    for what in ("sysv shm", "sysv msg", "posix mq"):
        found = look[what]["found"]
        record(f"{what} survives to the next invocation", not found,
               look[what].get("content") if found else look[what]["error"])
    shm_found = look["posix shm"]["found"] or planted["posix shm"]["ok"]
    record("posix shm (/dev/shm) survives to the next invocation", not shm_found,
           f"plant: {planted['posix shm'].get('error', 'created')}; look: {look['posix shm'].get('error', 'found')}")
    leaked = [w for w in ("sysv shm", "sysv msg", "posix mq", "posix shm") if look[w]["found"]]
    assert not leaked, f"IPC objects of one invocation seen by the next: {leaked}: {look}"
    assert not planted["posix shm"]["ok"], f"/dev/shm is writable (shared by invocations): {planted}"


def test_sysv_shm_counts_against_memory_size(srv, lam, deploy, after):
    """A System V segment's pages are charged to the invocation that touches them: 256 MB of
    shared memory in a 128 MB function is an out-of-memory kill, not memory outside any limit."""
    needs_root()
    name = deploy("ipc_persist", MemorySize=128, Timeout=20)
    key = 0x6e01_0000 | (uuid.uuid4().int & 0xffff)
    err, out = invoke(lam, name, {"mode": "plant", "key": key, "marker": "big", "shm_mb": 256})
    charged = err is not None and isinstance(out, dict) and out.get("errorType") == "Runtime.OutOfMemory"
    record("sysv shm past MemorySize", charged, out.get("errorType") if isinstance(out, dict) else out)
    assert charged, f"256 MB of shared memory touched in a 128 MB function: {err} {out}"
    err, look = invoke(lam, name, {"mode": "look", "key": key, "marker": "big"})
    assert err is None and not look["sysv shm"]["found"], look


def test_socket_families_outside_the_network_namespace(srv, lam, deploy, after):
    """Network mode none: a function may open unix, inet and inet6 sockets (its loopback), but no
    family that reaches past its network namespace (AF_VSOCK: the hypervisor and the host's vsock
    services) or that only opens kernel code (AF_ALG, AF_TIPC, AF_RDS, ...)."""
    needs_root()
    name = deploy("socket_families")
    err, out = invoke(lam, name, {"port": 1024})
    assert err is None, out
    vsock = out["AF_VSOCK"]
    record("AF_VSOCK socket in network mode none", not vsock["ok"], vsock.get("error") or vsock)
    others = sorted(k for k, v in out.items()
                    if k not in ("AF_VSOCK", "AF_UNIX", "AF_INET", "AF_INET6", "vsock connect host") and v["ok"])
    record("other address families (alg, tipc, rds, key, xdp, ...)", not others,
           others or out["AF_ALG"]["error"])
    works = all(out[k]["ok"] for k in ("AF_UNIX", "AF_INET", "AF_INET6"))
    assert works, f"ordinary sockets refused: {out}"
    assert not vsock["ok"] and not out["vsock connect host"]["ok"], f"AF_VSOCK opened: {out}"
    assert not others, f"families outside the network namespace opened: {others}"


def test_mountinfo_shows_no_host_paths(srv, lam, deploy, after):
    """/proc/self/mountinfo names the source of every mount (for a bind mount: its path on the
    host's file system). Neither the data directory (the function's code lives there) nor the
    runtime's directory (the build or install tree) may show."""
    needs_root()
    name = deploy("mountinfo")
    err, out = invoke(lam, name)
    assert err is None, out
    build_dir = os.path.abspath(os.environ.get("GEYSIR_BUILD_DIR", os.path.join(os.path.dirname(ATTACKS), "..", "build", "ci")))
    host_paths = {os.path.realpath(srv.data_dir), srv.data_dir, os.path.realpath(build_dir),
                  os.path.dirname(os.path.dirname(ATTACKS))}
    shown = sorted({f"{p} in {f}" for f, text in out.items() for p in host_paths if p in text})
    sample = next((line for line in out["/proc/self/mountinfo"].splitlines() if "/var/task" in line), "")
    record("host paths in /proc/self/mountinfo", not shown, shown or sample)
    assert "/var/task" in out["/proc/self/mountinfo"], out
    assert not shown, f"host paths shown to the function: {shown}\n{out['/proc/self/mountinfo']}"


# ---- other processes -----------------------------------------------------------------------

def test_signal_ptrace_sibling_and_template(srv, lam, deploy, after):
    name = deploy("signal_others", Timeout=15)
    err, before = invoke(lam, name, {"mode": "info"})
    assert err is None, before
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        victim = ex.submit(invoke, lam, name, {"mode": "victim", "sleep": 3})
        time.sleep(0.3)
        err, report = invoke(lam, name, {"mode": "attack", "wait": 0.8, "kill": True})
        verr, vout = victim.result(timeout=30)
    assert err is None, report
    err, after_info = invoke(lam, name, {"mode": "info"})
    assert err is None, after_info
    victim_ok = verr is None and vout.get("victim") == "survived"
    template_ok = before["stream"] == after_info["stream"]
    others = lambda key: [p for p in report[key] if p[0] != report["self"]]  # noqa: E731
    record("kill a sibling child", victim_ok, vout if not victim_ok else
           f"victim survived; attacker could signal {len(others('signalled'))} pid(s)")
    record("kill the template", template_ok, f"template {'unchanged' if template_ok else 'restarted'}; "
           f"parent seen as {report['parent']} {report['parent_cmd'][:40]!r}")
    record("ptrace / process_vm_readv others", not others("ptraced") and not others("vm_read"),
           {"ptraced": others("ptraced")[:3], "vm_read": others("vm_read")[:3]})
    assert victim_ok, f"a concurrent child of the same function was killed: {verr} {vout}"
    assert template_ok, f"the template was killed and restarted: {before['stream']} -> {after_info['stream']}"
    assert not others("ptraced"), f"ptrace attached to {others('ptraced')}"
    assert not others("vm_read"), f"process_vm_readv read {others('vm_read')}"


# ---- kernel interfaces ---------------------------------------------------------------------

SYSCALL_ROWS = {
    "mount": ["mount tmpfs", "mount proc", "bind /", "pivot_root"],
    "unshare a user namespace": ["unshare user", "unshare user+mount", "unshare net", "raise max_user_namespaces"],
    "setns into the host's namespaces": ["setns /proc/1/ns/mnt", "setns /proc/1/ns/net", "setns parent mnt"],
    "load a kernel module": ["init_module", "finit_module", "delete_module"],
    "bpf / kexec": ["bpf", "kexec_load"],
}


def test_privileged_syscalls(srv, lam, deploy, after):
    if os.uname().machine != "x86_64":
        pytest.skip("the attack uses x86_64 syscall numbers")
    name = deploy("syscalls")
    err, out = invoke(lam, name)
    assert err is None, out
    holes = []
    for row, keys in SYSCALL_ROWS.items():
        worked = [k for k in keys if out[k]["ok"]]
        record(row, not worked, worked or ", ".join(f"{k}: {out[k]['errno']}" for k in keys[:2]))
        holes += worked
    assert not holes, f"privileged calls succeeded: {holes} ({out})"


def test_proc_escapes(srv, lam, deploy, after):
    name = deploy("proc_escape")
    db = os.path.join(srv.data_dir, "geysir.db")
    with open("/etc/shadow", "rb") as f:
        shadow = hashlib.sha256(f.read(1 << 20)).hexdigest()
    err, out = invoke(lam, name, {"paths": [db, srv.credentials_file]})
    assert err is None, out
    # Any read of the database or the credentials is a hole; /etc/shadow only if it is the host's.
    host_reads = [p for p, r in out["reads"].items()
                  if r["ok"] and (not p.endswith("/etc/shadow") or r["sha256"] == shadow)]
    host_lists = [p for p, r in out["lists"].items() if r["ok"]]
    record("escape through /proc/1/root (and the template's)", not host_reads and not host_lists,
           host_reads or host_lists or "no host file reachable")
    exe_writable = [k for k in ("exe O_WRONLY", "exe O_RDWR", "exe O_APPEND") if out[k]["ok"]]
    record("overwrite /proc/self/exe", not exe_writable, exe_writable or f"{out['exe']}: {out['exe O_WRONLY']['error']}")
    assert not host_reads and not host_lists, f"host files reached through /proc: {host_reads} {host_lists}"
    assert not exe_writable, f"/proc/self/exe opened for writing: {exe_writable}"


def test_leaked_fds(srv, lam, deploy, after):
    name = deploy("fd_leak")
    needles = [srv.data_dir, os.path.join(srv.data_dir, "geysir.db"), srv.credentials_file]
    err, out = invoke(lam, name, {"needles": needles})
    assert err is None, out
    suspicious = []
    data_entries = set(os.listdir(srv.data_dir))
    for e in out["fds"]:
        if "error" in e:
            continue  # the descriptor listdir itself used, gone by the time it was examined
        t, kind = e["target"], e["kind"]
        if kind in ("fifo", "socket"):
            # Pipes and sockets are fine when unnamed (socketpair/pipe): a named UNIX socket or a
            # connected INET socket would be a channel to a host service.
            if kind == "socket" and (e.get("family") != "AF_UNIX" or (e.get("sockname") not in ("", "b''", "None")
                                                                   and e.get("sockname") is not None)):
                suspicious.append(e)
            continue
        if kind == "chr" and t.startswith("/dev/"):
            continue
        if kind in ("file", "dir") and (t.startswith("/var/task") or t.startswith("/tmp") or t.startswith("/var/runtime")
                                        or t.startswith("/usr/") or t.startswith("/proc/")):
            if kind == "dir" and data_entries & set(e.get("top", [])) >= {"geysir.db"}:
                suspicious.append(e)
            continue
        suspicious.append(e)
    visible = [n for n, v in out["needles_visible"].items() if v]
    summary = ", ".join(f"{e['fd']}:{e.get('kind')}" for e in out["fds"] if "error" not in e)
    record("leaked file descriptor", not suspicious and not visible, suspicious[:2] or visible or summary)
    assert not suspicious and not visible, f"descriptors pointing outside the sandbox: {suspicious}, visible: {visible}"


def test_exec_setuid_binary(srv, lam, deploy, after):
    needs_root()
    with open("/usr/bin/id", "rb") as f:
        id_bin = f.read()
    files = {"setuid_exec.py": _source("setuid_exec")}
    zb = make_zip(files)
    # make_zip writes 0644; the planted binary needs its exec bit in the zip.
    import io
    import stat as st
    import zipfile
    buf = io.BytesIO(zb)
    with zipfile.ZipFile(buf, "a") as z:
        info = zipfile.ZipInfo("suid-id", date_time=(2024, 1, 1, 0, 0, 0))
        info.create_system = 3
        info.external_attr = (st.S_IFREG | 0o755) << 16
        z.writestr(info, id_bin)
    zb = buf.getvalue()
    name = deploy("setuid_exec", zip_bytes=zb)
    planted = os.path.join(srv.data_dir, "code", hashlib.sha256(zb).hexdigest(), "suid-id")
    assert os.path.exists(planted), f"test setup: {planted} missing"
    os.chown(planted, 0, 0)
    os.chmod(planted, 0o4755)  # as if the setuid bit had come through in the zip
    err, out = invoke(lam, name)
    assert err is None, out
    root = [k for k, v in out.items() if k.endswith("-u") and v.get("out") == "0" or "euid=0" in (v.get("out") or "")]
    record("exec a setuid binary", not root, root or f"planted: {out['planted id -u']}; su: rc {out['host su']['rc']}")
    assert not root, f"a setuid binary ran as root: {out}"


def test_background_process_after_response(srv, lam, deploy, after):
    marker = "geysir-attack-bg-" + uuid.uuid4().hex[:8]
    name = deploy("background")
    try:
        err, out = invoke(lam, name, {"marker": marker})
        assert err is None, out
        try:
            wait_until(lambda: not processes_with(marker), 3, interval=0.1, what="background processes gone")
            left = []
        except AssertionError:
            left = processes_with(marker)
        record("background process after response", not left, f"{len(left)} of 3 left running")
        assert not left, f"{len(left)} processes outlived the invocation: {left}"
    finally:
        kill_marked(marker)


# ---- network modes -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def test_net():
    """A test network namespace with an HTTP server, reachable from the host through a veth pair
    at TEST_NET_ALLOWED, plus TEST_NET_DENIED (inside OPERATOR_DENY) on the same server."""
    needs_root()
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (ip) to build the test network namespace")
    n = 1 + int(uuid.uuid4().hex[:4], 16) % 250
    ns, host_if = f"gyt-{uuid.uuid4().hex[:6]}", f"gyt{uuid.uuid4().hex[:6]}"
    allowed, denied = TEST_NET_ALLOWED.format(n=n), TEST_NET_DENIED.format(n=n)
    gw = allowed.rsplit(".", 1)[0] + ".1"

    def ip(*args):
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)
    server = None
    try:
        ip("netns", "add", ns)
        ip("link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip("addr", "add", gw + "/30", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("route", "add", denied + "/32", "dev", host_if)
        # Replies come back in through this interface and are forwarded on to the function.
        with open(f"/proc/sys/net/ipv4/conf/{host_if}/forwarding", "w") as f:
            f.write("1")
        ip("-n", ns, "addr", "add", allowed + "/30", "dev", "eth0")
        ip("-n", ns, "addr", "add", denied + "/32", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "route", "add", "default", "via", gw)
        server = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/bin/python3", "-m", "http.server", "--bind",
                                   "0.0.0.0", "8080"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1",
                                f"http://{allowed}:8080/"], capture_output=True, text=True)
            return r.stdout == "200"
        wait_until(up, 30, interval=0.2, what="test-network server")
        yield {"allowed": allowed, "denied": denied, "port": 8080}
    finally:
        if server is not None:
            server.kill()
            server.wait(5)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


def test_network_none_is_loopback_only(srv, lam, deploy, test_net, after):
    name = deploy("net_connect")
    err, out = invoke(lam, name, {"targets": [[test_net["allowed"], test_net["port"]]], "timeout": 1.0})
    assert err is None, out
    r = out[f"{test_net['allowed']}:{test_net['port']}"]
    record("network 'none': reach a server outside", not r["connected"], r.get("error") or r)
    assert not r["connected"], f"a function in network mode 'none' reached {test_net['allowed']}: {r}"


def test_network_egress(srv, lam, deploy, test_net, after):
    if shutil.which("nft") is None:
        pytest.skip("egress needs nftables (nft): apt-get install nftables")
    name = deploy("net_connect", Tags={"geysir:network": "egress"}, Timeout=20)
    control_port = int(srv.control_endpoint.rsplit(":", 1)[1])
    refused = [[test_net["denied"], test_net["port"]]]
    refused += [[h, p] for h in ["127.0.0.1"] + host_ipv4_addresses() for p in (control_port, srv.http_port)]
    refused += [["169.254.169.254", 80]]  # a cloud's metadata service: never the function's
    allowed = [test_net["allowed"], test_net["port"]]
    err, out = invoke(lam, name, {"targets": [allowed] + refused, "timeout": 1.0})
    assert err is None, out
    ok = out[f"{allowed[0]}:{allowed[1]}"]
    works = ok["connected"] and ok["reply"].startswith("HTTP/1.0 200")
    record("network 'egress': reach the test network", works, "200 from " + allowed[0] if works else ok,
           labels=("works", "BROKEN"))
    reached = [t for t in (f"{h}:{p}" for h, p in refused) if out[t]["connected"]]
    record("network 'egress': reach host/loopback/listed ranges", not reached,
           reached or f"{len(refused)} refused targets, e.g. {out[f'{refused[0][0]}:{refused[0][1]}'].get('error')}")
    assert works, f"egress function could not reach the test network server: {ok}"
    assert not reached, f"egress function reached refused addresses: {reached}"


# ---- bytes that reach Geysir's own daemons ---------------------------------------------------

def daemon_pid(srv, binary):
    pids = srv.child_pids(binary)
    assert len(pids) == 1, f"{binary}: {pids}"
    return pids[0]


def vm_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def test_deep_json_from_init_code(srv, lam, deploy, after):
    """Init code writes a 100,000-deep init_error on the template's control socket; the
    scheduler once dumped it recursively and died, with every tenant's invocations."""
    before = daemon_pid(srv, "geysir-scheduler")
    name = deploy("deep_json", Environment={"Variables": {"DEEP_INIT": "1"}})
    try:
        err, out = invoke(lam, name)
    except Exception as e:  # noqa: BLE001 - a dead scheduler shows as a failed call
        err, out = "call failed", str(e)
    after_pid = srv.child_pids("geysir-scheduler")
    survived = after_pid == [before]
    record("deep JSON on the template's control socket", survived,
           f"scheduler pid {before} -> {after_pid}; invoke: {err} {str(out)[:80]}",
           labels=("blocked", "NOT BLOCKED (scheduler died)"))
    assert survived, f"the scheduler restarted: {before} -> {after_pid}\n{srv.log_tail()}"
    # The message was dropped as malformed; the function itself initialised and served.
    assert err is None and out["init_sent"]["ok"], (err, out)


def test_deep_json_result_body_via_url(srv, lam, deploy, after):
    """A result frame whose "body" nests 100,000 deep, through a function URL: the gateway once
    dumped it recursively and died, dropping every function URL connection."""
    before = daemon_pid(srv, "geysir-gateway")
    name = deploy("deep_json")
    url = lam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    srv.wait_url_status(url, 200)
    try:
        status, _, body = srv.url_request(url, path="/?result=1", timeout=30)
    except Exception as e:  # noqa: BLE001 - a dead gateway shows as a dropped connection
        status, body = None, str(e).encode()
    after_pid = srv.child_pids("geysir-gateway")
    survived = after_pid == [before]
    record("deep JSON body in a handler result (function URL)", survived and status == 502,
           f"gateway pid {before} -> {after_pid}; HTTP {status} {body[:60]!r}",
           labels=("blocked", "NOT BLOCKED (gateway died)"))
    assert survived, f"the gateway restarted: {before} -> {after_pid}\n{srv.log_tail()}"
    assert status == 502, (status, body[:200])


def test_deep_json_event_reaches_runtime(srv, lam, deploy, after):
    """A 10^5-deep event: the runtime answers Runtime.UnmarshalError in Lambda's shape instead
    of dying (Runtime.ExitError)."""
    name = deploy("canary")
    deep = "[" * 100_000 + "]" * 100_000
    r = lam.invoke(FunctionName=name, Payload=deep.encode())
    out = json.loads(r["Payload"].read())
    ok = r.get("FunctionError") == "Unhandled" and out.get("errorType") == "Runtime.UnmarshalError"
    record("10^5-deep JSON event", ok, f"{r.get('FunctionError')} {out.get('errorType')}: {str(out.get('errorMessage'))[:60]}",
           labels=("handled", "NOT HANDLED"))
    assert ok, out
    assert "Unable to unmarshal input" in out["errorMessage"], out
    # The other way: a result nested past the recursion limit is Runtime.MarshalError.
    name = deploy("deep_json")
    err, out = invoke(lam, name, {"nested_result": 100_000})
    assert err == "Unhandled" and out.get("errorType") == "Runtime.MarshalError", (err, out)


def test_result_over_6mb(srv, lam, deploy, after):
    """Results over Lambda's 6 MB limit fail with Function.ResponseSizeTooLarge, refused while
    they are read: four concurrent 40 MB results once grew the scheduler by their size."""
    name = deploy("big_output", MemorySize=512, Timeout=30)
    err, out = invoke(lam, name, {"result_mb": 7})
    assert err == "Unhandled" and out.get("errorType") == "Function.ResponseSizeTooLarge", (err, str(out)[:200])
    assert out["errorMessage"] == "Response payload size exceeded maximum allowed payload size (6291556 bytes).", out
    # Just under the limit still goes through (a JSON string: the quotes count).
    err, out = invoke(lam, name, {"result_mb": 6.29})
    assert err is None and len(out) == 6_290_000, (err, str(out)[:200])

    sched = daemon_pid(srv, "geysir-scheduler")
    hwm_before = vm_kb(sched, "VmHWM")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: invoke(lam, name, {"result_mb": 40}), range(4)))
    grown_mb = (vm_kb(sched, "VmHWM") - hwm_before) / 1024
    types = sorted({str(o.get("errorType")) if isinstance(o, dict) else "?" for _, o in results})
    ok = types == ["Function.ResponseSizeTooLarge"] and grown_mb < 40
    record("4 concurrent 40 MB results", ok, f"{types}; scheduler peak RSS +{grown_mb:.0f} MB",
           labels=("blocked", "NOT BLOCKED"))
    assert ok, (types, grown_mb)


def test_log_flood_does_not_wedge_the_pipeline(srv, lam, deploy, after):
    """200 KB of control characters in one invocation's output (~1.2 MB once JSON-escaped): the
    log batch once exceeded control's frame limit and was resent forever, and no function's
    logs were stored after it. Now it is split; the lines after it, and the next invocation's,
    are stored."""
    name = deploy("big_output", Timeout=30)
    logs = srv.client("logs")
    group = f"/aws/lambda/{name}"
    first, second = "marker-" + uuid.uuid4().hex[:8], "marker-" + uuid.uuid4().hex[:8]
    err, _ = invoke(lam, name, {"log_bytes": 200_000, "marker": first})
    assert err is None
    err, _ = invoke(lam, name, {"marker": second})
    assert err is None

    def stored():
        return all(logs.filter_log_events(logGroupName=group, filterPattern=m)["events"] for m in (first, second))

    try:
        wait_until(stored, 20, interval=0.5, what="both markers stored")
        ok, evidence = True, "both invocations' lines stored after the flood"
    except AssertionError as e:
        ok, evidence = False, str(e)
    record("log flood: 200 KB of control characters", ok, evidence, labels=("blocked", "NOT BLOCKED (pipeline wedged)"))
    assert ok, evidence


# ---- the edge: what a client (not a function) sends -----------------------------------------

def _signed_lambda_call(srv, method, path, body, service="lambda", region="us-east-1", declared=None, send=None):
    """A Lambda API request signed with the admin key for `service`/`region`; `send` replaces the
    body after signing. Returns the HTTP status."""
    import urllib.error
    import urllib.request
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    areq = botocore.awsrequest.AWSRequest(method=method, url=srv.control_endpoint + path, data=body,
                                          headers={"Content-Type": "application/json"})
    if declared:
        areq.headers["X-Amz-Content-SHA256"] = declared
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(srv.access_key, srv.secret_key), service,
                            region).add_auth(areq)
    p = areq.prepare()
    req = urllib.request.Request(p.url, data=send if send is not None else body, method=method,
                                 headers=dict(p.headers))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_signature_replayed_across_service_region_or_body(srv, lam, canary, after):
    """A signature made for S3, for another region, or over UNSIGNED-PAYLOAD must not change a
    Lambda function (the canary's timeout stays)."""
    path = f"/2015-03-31/functions/{canary['name']}/configuration"
    before = lam.get_function_configuration(FunctionName=canary["name"])["Timeout"]
    body = json.dumps({"Timeout": before + 1}).encode()
    got = {
        "scope s3": _signed_lambda_call(srv, "PUT", path, body, service="s3"),
        "scope eu-west-1": _signed_lambda_call(srv, "PUT", path, body, region="eu-west-1"),
        "UNSIGNED-PAYLOAD, other body": _signed_lambda_call(srv, "PUT", path, b"{}", declared="UNSIGNED-PAYLOAD",
                                                            send=body),
    }
    after_timeout = lam.get_function_configuration(FunctionName=canary["name"])["Timeout"]
    blocked = all(v == 403 for v in got.values()) and after_timeout == before
    record("SigV4 signature for another service / region / body", blocked, got)
    assert blocked, (got, before, after_timeout)


def test_ambiguous_request_headers(srv, canary, after):
    """Two Host headers, 'Host :' and obs-fold: a proxy and the gateway could route one request
    to two different functions; the gateway answers 400."""
    host = canary["url"].split("//", 1)[1].rstrip("/")
    shapes = {
        "two Host": f"GET / HTTP/1.1\r\nHost: {host}\r\nHost: x.lambda-url.localhost\r\n\r\n",
        "Host :": f"GET / HTTP/1.1\r\nHost : {host}\r\n\r\n",
        "obs-fold": f"GET / HTTP/1.1\r\nHost: {host}\r\nX-A: 1\r\n Host: x\r\n\r\n",
    }
    got = {}
    for name, data in shapes.items():
        with socket.create_connection(("127.0.0.1", srv.http_port), timeout=10) as s:
            s.sendall(data.encode())
            got[name] = s.recv(64)[9:12].decode(errors="replace")
    blocked = all(v == "400" for v in got.values())
    record("ambiguous Host / header shapes (smuggling)", blocked, got)
    assert blocked, got


def test_one_client_holds_every_connection(srv, canary, after):
    """One address opening connections without end: past the gateway's per-client limit (256 by
    default) each is answered 429 and closed, and other clients keep being served."""
    held, refused = [], 0
    try:
        for _ in range(256 + 4):
            s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=10)
            held.append(s)
        time.sleep(0.3)
        for s in held[-4:]:
            s.settimeout(5)
            try:
                if s.recv(64).startswith(b"HTTP/1.1 429"):
                    refused += 1
            except OSError:
                pass
        # Another address still gets in while this one is at its limit.
        other = subprocess.run(["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                                "--interface", "127.0.0.2", "-H", "Host: " + canary["url"].split("//", 1)[1].rstrip("/"),
                                f"http://127.0.0.1:{srv.http_port}/"], capture_output=True, text=True)
    finally:
        for s in held:
            s.close()
    # The slots come back as the gateway sees the closes (before the canary check runs).
    wait_until(lambda: srv.url_request(canary["url"], timeout=5)[0] == 200, 10, interval=0.1,
               what="the canary's URL after the connections closed")
    blocked = refused == 4 and other.stdout == "200"
    record("one client holds every gateway connection", blocked,
           f"{refused} of 4 over the limit answered 429; another address: {other.stdout or other.stderr}")
    assert blocked, (refused, other.stdout, other.stderr)
