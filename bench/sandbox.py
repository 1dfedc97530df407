"""What the sandbox costs per request: on demand, not in CI (it needs root and a quiet machine).

Two measurements, side by side in one run:

(1) End to end through the scheduler (no gateway, no control): a standalone `geysir-scheduler`
    started with and without `--no-sandbox`, alternated A B A B (`--rounds`), each driven by
    `geysir-scheduler-bench --connections 1` with the same hello handler (a fork per request as
    always), twice: back to back (the machine's busy CPU time per request, from /proc/stat over
    the measured window: what a request costs in all, fork and sandbox included) and paced
    (`--interval-ms`, so a pre-forked child is waiting: the latency of the request path).
    Reports the medians of each mode, the difference and the ratio.

(2) The per-child steps alone, in forked python3.11 children of a process that has done what a
    template does (unprivileged uid, no_new_privs, the sandbox's seccomp-like position is not
    needed for timing), through bootstrap.py's own functions: fork() to the child's check of the
    outcome, with libgeysir_child.so armed for the sandboxed steps (unshare of a user, a mount and
    an IPC namespace, user.max_user_namespaces = 0 in it, capset, the Landlock scope), for Landlock
    alone, and for nothing.

(3) The scheduler's side per child (checks, maps, mount of the private /tmp on the scheduler's
    mount thread): `worker_tests "bench: MountPrivateTmp"`, CPU time of the job on the thread
    and of handing it over on the loop.

    sudo GEYSIR_BUILD_DIR=build/x /usr/bin/python3 bench/sandbox.py [--rounds 2] [--duration 8]

(1) on a loaded machine mostly shows the noise of a fork per request; (2) + (3) are the numbers
to compare with the 0.3 ms aim.
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELLO = 'def handler(event, context):\n    return {"statusCode": 200, "body": "hello"}\n'


def log(msg):
    print(msg, flush=True)


def start_scheduler(bin_dir, runtime_dir, data, sandbox):
    sock = os.path.join(data, "s.sock")
    args = [os.path.join(bin_dir, "geysir-scheduler"), "--data-dir", data, "--socket", sock,
            "--control-socket", os.path.join(data, "none.sock"),
            "--worker-binary", os.path.join(bin_dir, "geysir-worker"), "--runtime-dir", runtime_dir]
    if not sandbox:
        args.append("--no-sandbox")
    logf = open(os.path.join(data, "scheduler.log"), "wb")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not os.path.exists(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"error: geysir-scheduler did not start; see {data}/scheduler.log")
        time.sleep(0.05)
    return proc, sock


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def end_to_end(bin_dir, runtime_dir, code_dir, sandbox, duration, warmup, interval_ms=0):
    data = tempfile.mkdtemp(prefix="geysir-bench-sandbox-")
    proc, sock = start_scheduler(bin_dir, runtime_dir, data, sandbox)
    try:
        out = subprocess.run([os.path.join(bin_dir, "geysir-scheduler-bench"), "--socket", sock, "--code-dir", code_dir,
                              "--handler", "app.handler", "--connections", "1", "--duration", str(duration),
                              "--warmup", str(warmup), "--interval-ms", str(interval_ms)], capture_output=True, text=True,
                             timeout=duration + warmup + 120).stdout
    finally:
        stop(proc)
        shutil.rmtree(data, ignore_errors=True)
    m = re.search(r"(\d+) requests, ([\d.]+) req/s", out)
    lat = re.search(r"p50 ([\d.]+)\s+p90 ([\d.]+)\s+p99 ([\d.]+)", out)
    cpu = re.search(r"([\d.]+) ms per request", out)
    if not m or not lat or not cpu:
        raise SystemExit(f"error: unexpected geysir-scheduler-bench output:\n{out}")
    return {"requests": int(m.group(1)), "rps": float(m.group(2)), "p50": float(lat.group(1)),
            "p90": float(lat.group(2)), "p99": float(lat.group(3)), "cpu": float(cpu.group(1))}


# --- (2): the per-child steps, in children of a template-like process ------------------------

CHILD_STEPS = r'''
import os, struct, sys, time
sys.argv = ["bootstrap"]
sys.path.insert(0, os.environ["RUNTIME_DIR"])
import bootstrap as b
N = int(os.environ["N"])
os.setgroups([]); os.setresgid(61918, 61918, 61918); os.setresuid(61918, 61918, 61918)
import ctypes
ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS, as in the sandbox
b._child_enter_prepare()
if isinstance(b._child_enter, str):
    raise SystemExit(b._child_enter)
arm, landlock = b._child_enter.arm, b._child_enter.landlock
lib = ctypes.CDLL(os.path.join(os.environ["RUNTIME_DIR"], "libgeysir_child.so"))
enter_ns = ctypes.c_int64.in_dll(lib, "geysir_child_enter_ns")
import gc; gc.collect(); gc.freeze()
# In the child: the steps (timed in C inside fork: geysir_child_enter_ns) and, apart, the child's
# check of their outcome (timed here; it is the same one attribute read in every mode). fork()
# itself is left out: it is the same with or without the sandbox, and on a loaded VM it is
# ~100 ms of noise.
# empty: nothing armed; landlock: what --no-sandbox children do; both: what sandboxed ones do
# (their own user+mount+IPC namespaces, no user namespace below them, capset, the Landlock scope).
flags = {"empty": 0, "landlock": landlock, "both": landlock | b._CHILD_PRIVATE_TMP}
res = {k: [] for k in flags}
for i in range(N):
    for kind in res:
        if arm(flags[kind]) != 0:
            raise SystemExit("geysir_child_arm failed")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            t0 = time.perf_counter()
            b._child_entered()
            check = time.perf_counter() - t0
            os.write(w, struct.pack("dd", enter_ns.value / 1e6 if kind != "empty" else 0.0, check * 1000.0))
            os._exit(0)
        os.close(w)
        steps, check = struct.unpack("dd", os.read(r, 16))
        os.close(r)
        os.waitpid(pid, 0)
        res[kind].append((steps, check))
for kind, v in res.items():
    steps = sorted(x[0] for x in v)
    check = sorted(x[1] for x in v)
    print("%s %.3f %.3f %.3f" % (kind, steps[len(v) // 2], steps[int(len(v) * 0.9)], check[len(v) // 2]))
'''


def child_steps(runtime_dir, n):
    env = dict(os.environ, RUNTIME_DIR=runtime_dir, N=str(n))
    out = subprocess.run(["/usr/bin/python3.11", "-c", CHILD_STEPS], env=env, capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"error: child steps failed:\n{out.stderr}")
    res = {}
    for line in out.stdout.splitlines():
        kind, p50, p90, check = line.split()
        res[kind] = (float(p50), float(p90), float(check))
    return res


def scheduler_side(build, n):
    """(3): p50 CPU ms of the mount job on the scheduler's thread and of Submit on its loop."""
    exe = os.path.join(build, "tests", "unit", "worker", "worker_tests")
    if not os.access(exe, os.X_OK):
        log(f"(3) skipped: {exe} not built (configure with GEYSIR_BUILD_TESTS=ON)")
        return None
    out = subprocess.run([exe, "bench: MountPrivateTmp"], env=dict(os.environ, GEYSIR_BENCH_N=str(n)),
                         capture_output=True, text=True, timeout=600).stdout
    p50 = {}
    for line in out.splitlines():
        m = re.match(r"\s*(.*?), \d+ children: p50 ([\d.]+) ms", line)
        if m:
            p50[m.group(1)] = float(m.group(2))
            log(f"(3) {line.strip()}")
    job = next((v for k, v in p50.items() if k.startswith("CPU of the job")), None)
    submit = next((v for k, v in p50.items() if k.startswith("CPU of Submit")), None)
    return (job, submit) if job is not None and submit is not None else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.environ.get("GEYSIR_BUILD_DIR", os.path.join(REPO, "build", "ci")))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--children", type=int, default=200, help="children per kind in (2)")
    ap.add_argument("--interval-ms", type=float, default=100, help="pause between paced requests in (1)")
    ap.add_argument("--skip-end-to-end", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("error: needs root (the sandbox, and the uid switch in (2))")
    build = os.path.abspath(a.build_dir)
    bin_dir = os.path.join(build, "bin")
    runtime_dir = os.path.join(build, "share", "geysir", "runtime")
    for b in ("geysir-scheduler", "geysir-worker", "geysir-scheduler-bench"):
        if not os.access(os.path.join(bin_dir, b), os.X_OK):
            raise SystemExit(f"error: {bin_dir}/{b} not built")
    log(f"load average at start: {os.getloadavg()[0]:.2f}")

    if not a.skip_end_to_end:
        code_dir = tempfile.mkdtemp(prefix="geysir-bench-code-")
        os.chmod(code_dir, 0o755)
        with open(os.path.join(code_dir, "app.py"), "w") as f:
            f.write(HELLO)
        os.chmod(os.path.join(code_dir, "app.py"), 0o644)
        runs = {(s, paced): [] for s in (True, False) for paced in (False, True)}
        try:
            for r in range(a.rounds):
                for paced in (False, True):
                    for sandbox in (True, False):
                        res = end_to_end(bin_dir, runtime_dir, code_dir, sandbox, a.duration, a.warmup,
                                         a.interval_ms if paced else 0)
                        runs[(sandbox, paced)].append(res)
                        log(f"(1) round {r + 1} {'paced       ' if paced else 'back to back'} "
                            f"{'sandbox    ' if sandbox else '--no-sandbox'}: {res['requests']} requests, "
                            f"{res['rps']:.1f} req/s, p50 {res['p50']:.2f} ms, p90 {res['p90']:.2f} ms, "
                            f"p99 {res['p99']:.2f} ms; machine CPU {res['cpu']:.2f} ms per request")
        finally:
            shutil.rmtree(code_dir, ignore_errors=True)

        def med(sandbox, paced, key):
            return statistics.median(x[key] for x in runs[(sandbox, paced)])
        on, off = med(True, False, "cpu"), med(False, False, "cpu")
        log(f"(1) back to back, median machine CPU per request: sandbox {on:.2f} ms, --no-sandbox {off:.2f} ms, "
            f"difference {on - off:+.2f} ms, ratio {on / off:.3f}")
        on, off = med(True, False, "rps"), med(False, False, "rps")
        log(f"(1) back to back, median throughput: sandbox {on:.1f} req/s, --no-sandbox {off:.1f} req/s, "
            f"ratio {on / off:.3f}")
        on, off = med(True, True, "p50"), med(False, True, "p50")
        log(f"(1) paced every {a.interval_ms:.0f} ms, median p50 latency: sandbox {on:.2f} ms, --no-sandbox {off:.2f} ms, "
            f"difference {on - off:+.2f} ms, ratio {on / off:.3f}")

    steps = child_steps(os.path.join(runtime_dir, "python"), a.children)
    for kind, (p50, p90, check) in steps.items():
        log(f"(2) child steps {kind:9s}: in C p50 {p50:.3f} ms, p90 {p90:.3f} ms; the child's check of the "
            f"outcome (Python) p50 {check:.3f} ms")
    child_added = steps['both'][0] - steps['landlock'][0]
    log(f"(2) per child, p50: sandboxed {steps['both'][0]:.3f} ms, --no-sandbox (Landlock only) "
        f"{steps['landlock'][0]:.3f} ms: the sandbox adds {child_added:.3f} ms in the child")
    sched = scheduler_side(build, min(a.children, 100))
    if sched is not None:
        job, submit = sched
        log(f"per child, p50 CPU the sandbox adds: {child_added:.3f} ms in the child + {job:.3f} ms on the "
            f"scheduler's mount thread = {child_added + job:.3f} ms of work; + {submit:.3f} ms on the scheduler's "
            f"loop handing the mount to its thread (a thread wake-up) = {child_added + job + submit:.3f} ms")
    log(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
