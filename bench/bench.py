"""Geysir benchmarks (issue 2, "Performance"): run by bench/run.sh, not a pass/fail test.

Starts a private `geysir server` (port 0, temp data dir) and, in one go on this machine:
  (a) wrk against the hello handler through its function URL (16 connections), in the default
      per-request mode isolated both ways side by side (`geysir server --isolation fork`, and a
      second server with `--isolation restore`: rows hello and hello-restore) and with
      GEYSIR_EXECUTION_MODE=reuse in its environment;
  (b) the Flask example in Geysir (the same three ways) vs the same app under gunicorn -w 2 (sync
      workers);
  (c) the gateway's /healthz vs nginx returning a fixed body (one worker each: one event loop);
  (d) cold start: CreateFunction (+ CreateFunctionUrlConfig) to the first 200 from the URL,
      for hello and for Flask, median of several;
  (e) latency at a light load: hello through its function URL, one request every 100 ms on a new
      connection (a pre-forked child is waiting), against nginx's fixed body the same way.
Every wrk run against Geysir also accounts CPU per request (see ProcCpu): of each daemon
(gateway, scheduler, control and the `geysir server` supervisor), of the platform (their sum)
and of the function processes (everything else under the scheduler: templates, children,
workers). Prints each figure beside issue 12's aim, and a JSON summary line at the end.
`--only ROW[,ROW]` reruns some rows quickly (see ROWS).
"""
import argparse
import io
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile

import boto3
import botocore.config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLE = "arn:aws:iam::000000000000:role/bench"


def log(msg):
    print(msg, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def zip_dir(path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for root, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for f in sorted(files):
                if f.endswith(".pyc"):
                    continue
                full = os.path.join(root, f)
                z.write(full, os.path.relpath(full, path))
    return buf.getvalue()


def wait_http(host_header, port, path="/", timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            code = http_status(port, host_header, path)
            if code == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"error: http://{host_header}{path} did not answer 200 within {timeout}s")


def http_status(port, host_header, path="/", timeout=5):
    """One GET over a raw socket; returns the status code (cheap enough to poll every ms)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(m.group(1)) if m else 0


def paced(port, host_header, path="/", n=60, interval_s=0.1):
    """n GETs, one every interval_s, each on a new connection: p50/p90/max in ms."""
    lat = []
    for _ in range(n):
        time.sleep(interval_s)
        t0 = time.perf_counter()
        code = http_status(port, host_header, path)
        lat.append((time.perf_counter() - t0) * 1000.0)
        if code != 200:
            raise SystemExit(f"error: paced GET http://{host_header}{path} answered {code}")
    lat.sort()
    return {"n": n, "p50_ms": lat[n // 2], "p90_ms": lat[n * 9 // 10], "max_ms": lat[-1]}


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_latency(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text.strip())
    return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")


def wrk(url, host_header, connections, duration, threads=2):
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--latency"]
    if host_header:
        cmd += ["-H", f"Host: {host_header}"]
    cmd.append(url)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: parse_latency(re.search(rf"\s{p}%\s+(\S+)", out).group(1)) for p in ("50", "90", "99")}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    sock_errors = sum(int(x) for x in m.groups()) if m else 0
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": rps, "p50_ms": lat["50"], "p90_ms": lat["90"], "p99_ms": lat["99"],
            "requests": total, "non_2xx": errors, "socket_errors": sock_errors}


def fmt(r):
    s = f"{r['rps']:9.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p90 {r['p90_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms"
    if r["non_2xx"] or r["socket_errors"]:
        s += f"  (non-2xx {r['non_2xx']}, socket errors {r['socket_errors']})"
    return s


CLK_TCK = os.sysconf("SC_CLK_TCK")
# By comm, which the kernel cuts to 15 bytes ("geysir-schedule").
DAEMONS = {"geysir-gateway": "gateway", "geysir-schedule": "scheduler", "geysir-control": "control"}


def proc_stat(pid):
    """(comm, ppid, utime+stime, cutime+cstime) of a process in clock ticks, or None if it is gone.
    utime/stime cover all of the process's threads; cutime/cstime its children it has reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # comm is in parentheses and may hold spaces; the fields after the last ')' are fixed.
    comm = data[data.index("(") + 1:data.rindex(")")]
    rest = data[data.rindex(")") + 2:].split()
    return comm, int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])


def all_proc_stats():
    """pid -> proc_stat(pid) for every process now running."""
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st:
                procs[int(d)] = st
    return procs


class ProcCpu:
    """CPU time of the server's processes, in ticks, from /proc/<pid>/stat.

    A daemon counts its own utime+stime (all threads), never its reaped children. The function
    processes are everything else below the scheduler: each live one counts utime+stime plus
    cutime+cstime (so a pre-forked child reaped by its template during the run still counts once,
    in the template), and the scheduler's cutime+cstime covers the templates and workers it reaped.
    Differences of two snapshots are what a run cost; a process born during the run counts whole,
    one that died counts in whoever reaped it."""

    def __init__(self, server_pid):
        self.server_pid = server_pid

    def snapshot(self):
        procs = all_proc_stats()
        kids = {}
        for pid, (_, ppid, _, _) in procs.items():
            kids.setdefault(ppid, []).append(pid)
        out = {"server": procs.get(self.server_pid, ("", 0, 0, 0))[2], "function": 0}
        for name in DAEMONS.values():
            out[name] = 0
        for pid in kids.get(self.server_pid, []):
            comm, _, own, reaped = procs[pid]
            if comm not in DAEMONS:
                continue
            out[DAEMONS[comm]] += own
            if DAEMONS[comm] == "scheduler":
                out["function"] += reaped
                stack = list(kids.get(pid, []))
                while stack:
                    q = stack.pop()
                    _, _, qown, qreaped = procs[q]
                    out["function"] += qown + qreaped
                    stack.extend(kids.get(q, []))
        return out

    @staticmethod
    def per_request(before, after, requests):
        """ms of CPU per request of each component, "platform" their sum (supervisor included)."""
        ms = {k: (after[k] - before[k]) * 1000.0 / CLK_TCK / max(requests, 1) for k in before}
        ms["platform"] = ms["gateway"] + ms["scheduler"] + ms["control"] + ms["server"]
        return ms


def tree_cpu_ticks(root_pid):
    """utime+stime of a process and of every process below it (live ones, plus what they reaped)."""
    procs = all_proc_stats()
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        if pid in procs:
            total += procs[pid][2] + procs[pid][3]
            stack.extend(q for q, st in procs.items() if st[1] == pid)
    return total


def fmt_cpu(c):
    return (f"cpu ms/req: gateway {c['gateway']:.3f}  scheduler {c['scheduler']:.3f}  control {c['control']:.3f}  "
            f"server {c['server']:.3f}  = platform {c['platform']:.3f}   function {c['function']:.3f}")


class Geysir:
    def __init__(self, build_dir, isolation):
        """A private `geysir server` whose per-request functions run in isolation mode `isolation`
        ("fork" or "restore"); it must say so in /geysir/v1/health, or the figures would be
        another mode's under this one's name."""
        self.data = tempfile.mkdtemp(prefix="geysir-bench-")
        self.logf = open(os.path.join(self.data, "server.log"), "wb")
        self.proc = subprocess.Popen([os.path.join(build_dir, "bin", "geysir"), "server", "--data-dir", self.data,
                                      "--http-port", "0", "--control-port", "0", "--isolation", isolation],
                                     stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT)
        sj = os.path.join(self.data, "run", "server.json")
        deadline = time.monotonic() + 60
        while not os.path.exists(sj):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"error: geysir server did not start; see {self.data}/server.log")
            time.sleep(0.05)
        info = json.load(open(sj))
        self.port = info["http_port"]
        with urllib.request.urlopen(info["control_endpoint"].rstrip("/") + "/geysir/v1/health", timeout=10) as r:
            mode = json.load(r).get("isolation")
        if mode != isolation:
            self.stop()
            raise SystemExit(f"error: geysir server --isolation {isolation} reports isolation {mode!r}")
        import configparser
        cp = configparser.ConfigParser()
        cp.read(info["credentials_file"])
        sec = cp["default"] if cp.has_section("default") else cp[cp.sections()[0]]
        self.lam = boto3.client("lambda", endpoint_url=info["control_endpoint"], region_name="us-east-1",
                                aws_access_key_id=sec["aws_access_key_id"],
                                aws_secret_access_key=sec["aws_secret_access_key"],
                                config=botocore.config.Config(retries={"max_attempts": 1}))

    def deploy(self, name, zip_bytes, memory=128, env=None):
        t0 = time.perf_counter()
        extra = {"Environment": {"Variables": env}} if env else {}
        self.lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                 Code={"ZipFile": zip_bytes}, MemorySize=memory, Timeout=10, **extra)
        url = self.lam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
        host = urllib.parse.urlsplit(url).netloc
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if http_status(self.port, host) == 200:
                    return host, (time.perf_counter() - t0) * 1000
            except OSError:
                pass
            time.sleep(0.001)
        raise SystemExit(f"error: {name} did not answer 200 within 30 s; see {self.data}/server.log")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.data, ignore_errors=True)


def start_gunicorn(port):
    p = subprocess.Popen(["gunicorn", "-w", "2", "-k", "sync", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                          "app:app"], cwd=os.path.join(REPO, "examples", "flask"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"127.0.0.1:{port}", port)
    return p


def start_nginx(port, tmp):
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{{"status":"ok"}}'; }}
  }}
}}
""")
    p = subprocess.Popen(["nginx", "-c", conf, "-p", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"127.0.0.1:{port}", port)
    return p


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


# The rows, in the order they run; `--only` picks some of them.
ROWS = ("hello", "hello-restore", "hello-reuse", "flask", "flask-restore", "flask-reuse", "gunicorn", "healthz", "nginx",
        "paced", "cold")
# The rows served by the second server, `geysir server --isolation restore` (the same functions in
# the same per-request mode); every other Geysir row is served by the `--isolation fork` one.
RESTORE_ROWS = ("hello-restore", "flask-restore")
LABELS = {
    "hello": "hello, per-request, --isolation fork",
    "hello-restore": "hello, per-request, --isolation restore",
    "hello-reuse": "hello, GEYSIR_EXECUTION_MODE=reuse",
    "flask": "Flask, per-request, --isolation fork",
    "flask-restore": "Flask, per-request, --isolation restore",
    "flask-reuse": "Flask, GEYSIR_EXECUTION_MODE=reuse",
}
# issue 13's aims for restore mode: hello's req/s and p99, and its CPU per request beside fork's.
RESTORE_HELLO_AIM_RPS, RESTORE_HELLO_AIM_P99_MS, RESTORE_CPU_AIM = 2000, 10.0, 0.2
REUSE = {"GEYSIR_EXECUTION_MODE": "reuse"}
PLATFORM_AIM_MS = 0.15  # issue 12: gateway + scheduler + control CPU per hello request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--cold-runs", type=int, default=7)
    ap.add_argument("--only", default=",".join(ROWS),
                    help="comma-separated rows to run, of: " + ", ".join(ROWS))
    args = ap.parse_args()
    only = [r.strip() for r in args.only.split(",") if r.strip()]
    unknown = [r for r in only if r not in ROWS]
    if unknown:
        ap.error(f"unknown row(s) {', '.join(unknown)}; rows: {', '.join(ROWS)}")
    d, c = args.duration, args.connections
    results = {"duration_s": d, "connections": c, "nproc": os.cpu_count(), "rows": only}
    hello_zip = zip_dir(os.path.join(REPO, "examples", "hello"))
    flask_zip = zip_dir(os.path.join(REPO, "examples", "flask"))
    tmp = tempfile.mkdtemp(prefix="geysir-bench-tmp-")
    g = Geysir(args.build_dir, "fork")
    # The restore-mode server starts only when one of its rows runs; it idles (its pre-forked
    # workers blocked, no CPU) while the other server's rows run, and each row counts the CPU of
    # its own server's processes only.
    servers = {"fork": g}
    hosts = {}

    def server(row):
        mode = "restore" if row in RESTORE_ROWS else "fork"
        if mode not in servers:
            servers[mode] = Geysir(args.build_dir, mode)
            log(f"geysir server --isolation {mode} on :{servers[mode].port}")
        return servers[mode]

    def host(row):
        if row not in hosts:
            z, mem = (hello_zip, 128) if row.startswith("hello") else (flask_zip, 256)
            hosts[row], _ = server(row).deploy(f"bench-{row}", z, memory=mem,
                                               env=REUSE if row.endswith("-reuse") else None)
        return hosts[row]

    def geysir_run(row, path=""):
        srv = server(row)
        url, host_header = f"http://127.0.0.1:{srv.port}/{path}", "localhost" if path else host(row)
        cpu = ProcCpu(srv.proc.pid)
        wrk(url, host_header, c, 2)  # warm-up
        before = cpu.snapshot()
        r = wrk(url, host_header, c, d)
        r["cpu_ms_per_req"] = ProcCpu.per_request(before, cpu.snapshot(), r["requests"])
        results[row] = r
        return r

    def versus_fork(row):
        """Restore mode's CPU per request beside fork mode's, when both rows ran."""
        fork_row = row[:-len("-restore")]
        if row in results and fork_row in results:
            rc, fc = results[row]["cpu_ms_per_req"], results[fork_row]["cpu_ms_per_req"]
            total = lambda x: x["platform"] + x["function"]
            ratio = total(rc) / total(fc) if total(fc) else float("nan")
            results[row]["cpu_ratio_fork"] = ratio
            log(f"    {row}: cpu ms/req (platform + function) {total(rc):.3f} vs fork's {total(fc):.3f} = "
                f"{ratio:.2f}x  (aim <= {RESTORE_CPU_AIM}x); function alone "
                f"{rc['function']:.3f} vs {fc['function']:.3f}")

    try:
        log(f"geysir server --isolation fork on :{g.port}; wrk {d}s per run, {c} connections, {os.cpu_count()} cores; "
            f"rows {', '.join(only)}\n")
        for row in ("hello", "hello-restore", "hello-reuse"):
            if row not in only:
                continue
            a = geysir_run(row)
            log(f"(a) {LABELS[row]:40s} {fmt(a)}")
            log(f"    {fmt_cpu(a['cpu_ms_per_req'])}")
            aim_rps, aim = {"hello": (700, "aim >= 700 req/s, p99 <= 40 ms"),
                            "hello-restore": (RESTORE_HELLO_AIM_RPS, f"aim >= {RESTORE_HELLO_AIM_RPS} req/s, "
                                                                     f"p99 <= {RESTORE_HELLO_AIM_P99_MS:g} ms"),
                            "hello-reuse": (5000, "aim >= 5000 req/s")}[row]
            log(f"    {aim}: {a['rps'] / aim_rps:.2f}x of the req/s aim, "
                f"p99 {a['p99_ms']:.2f} ms; platform aim <= {PLATFORM_AIM_MS} ms/req: "
                f"{a['cpu_ms_per_req']['platform'] / PLATFORM_AIM_MS:.2f}x of it")
            if row == "hello-restore":
                versus_fork(row)

        for row in ("flask", "flask-restore", "flask-reuse"):
            if row in only:
                b = geysir_run(row)
                log(f"(b) {LABELS[row]:40s} {fmt(b)}")
                log(f"    {fmt_cpu(b['cpu_ms_per_req'])}")
                if row == "flask-restore":
                    versus_fork(row)
        if "gunicorn" in only:
            gport = free_port()
            gp = start_gunicorn(gport)
            try:
                wrk(f"http://127.0.0.1:{gport}/", None, c, 2)
                before = tree_cpu_ticks(gp.pid)
                results["gunicorn"] = wrk(f"http://127.0.0.1:{gport}/", None, c, d)
                ticks = tree_cpu_ticks(gp.pid) - before
                results["gunicorn"]["cpu_ms_per_req"] = ticks * 1000.0 / CLK_TCK / max(results["gunicorn"]["requests"], 1)
            finally:
                stop(gp)
            log(f"(b) {'Flask under gunicorn -w 2 (sync)':40s} {fmt(results['gunicorn'])}")
            # The whole request in one process: what Geysir's platform + function columns add up to.
            log(f"    cpu ms/req: gunicorn master + workers {results['gunicorn']['cpu_ms_per_req']:.3f}")
        bu = results.get("gunicorn")
        for row, aim in (("flask", 0.1), ("flask-restore", 0.3), ("flask-reuse", 1.0)):
            if row in results and bu and bu["rps"]:
                ratio = results[row]["rps"] / bu["rps"]
                results[row]["ratio_gunicorn"] = ratio
                p99 = results[row]["p99_ms"] / bu["p99_ms"] if bu["p99_ms"] else float("nan")
                extra = f", p99 {p99:.2f}x gunicorn's (aim <= 2x)" if row == "flask-reuse" else ""
                log(f"    {row}: Geysir/gunicorn = {ratio:.3f}  (aim >= {aim}x){extra}")

        if "healthz" in only:
            ch = geysir_run("healthz", "healthz")
            log(f"(c) {'gateway /healthz':40s} {fmt(ch)}")
            log(f"    {fmt_cpu(ch['cpu_ms_per_req'])}")
        nport = free_port()
        if "nginx" in only:
            np_ = start_nginx(nport, tmp)
            try:
                wrk(f"http://127.0.0.1:{nport}/", None, c, 2)
                results["nginx"] = wrk(f"http://127.0.0.1:{nport}/", None, c, d)
            finally:
                stop(np_)
            log(f"(c) {'nginx (1 worker) fixed body':40s} {fmt(results['nginx'])}")
        if "healthz" in results and "nginx" in results and results["nginx"]["rps"]:
            rc = results["healthz"]["rps"] / results["nginx"]["rps"]
            results["healthz"]["ratio_nginx"] = rc
            log(f"    ratio gateway/nginx = {rc:.3f}  (aim >= 0.5)")

        if "paced" in only:
            # (e) a light load: a request every 100 ms finds a pre-forked child waiting.
            e = paced(g.port, host("hello"))
            np_ = start_nginx(nport, tmp)
            try:
                en = paced(nport, f"127.0.0.1:{nport}")
            finally:
                stop(np_)
            results["paced_hello"], results["paced_nginx"] = e, en
            log(f"(e) hello, one request / 100 ms  p50 {e['p50_ms']:6.2f} ms  p90 {e['p90_ms']:6.2f} ms  "
                f"max {e['max_ms']:6.2f} ms  (n={e['n']}, new connection each)")
            log(f"    nginx fixed body, same way   p50 {en['p50_ms']:6.2f} ms  p90 {en['p90_ms']:6.2f} ms  "
                f"max {en['max_ms']:6.2f} ms")

        if "cold" in only:
            # (d) cold start: CreateFunction -> first 200 from the URL.
            for label, z, mem, aim in (("hello", hello_zip, 128, 80), ("flask", flask_zip, 256, 200)):
                times = []
                for i in range(args.cold_runs):
                    _, ms = g.deploy(f"cold-{label}-{i}", z, memory=mem)
                    times.append(ms)
                    g.lam.delete_function(FunctionName=f"cold-{label}-{i}")
                med = statistics.median(times)
                results[f"cold_{label}_ms"] = {"median": med, "min": min(times), "max": max(times), "runs": times}
                log(f"(d) cold start {label:5s}          median {med:7.1f} ms  (min {min(times):.1f}, max "
                    f"{max(times):.1f}, n={len(times)})  aim <= {aim} ms")
    finally:
        for srv in servers.values():
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    log("\nsummary: " + json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())
