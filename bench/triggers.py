#!/usr/bin/env python3
"""Triggers benchmarks (not CI): durable async enqueues per second, schedule firing jitter with
many schedules loaded, and whether the dispatcher keeps a function's concurrency busy.

    GEYSIR_BUILD_DIR=build/bench /usr/bin/python3 bench/triggers.py [--duration 10] [--schedules 10000]

Starts a private `geysir server` (tests/integration/conftest.py's Server). Enqueue load comes
from wrk replaying one SigV4-signed Invoke(InvocationType=Event) request over keep-alive
connections (control does not reject a repeated signature within its 15-minute window; each
request still gets its own request id and its own durable row). During the enqueue run the
scheduler is paused (SIGSTOP) so the figure is the cost of acknowledging durably, not of
running 2,000 forks a second on 2 cores; afterwards the queue drains. Figures: docs/benchmarks.md.
"""
import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import botocore.auth  # noqa: E402
import botocore.awsrequest  # noqa: E402
import botocore.credentials  # noqa: E402
from conftest import Server, unique, wait_until  # noqa: E402

HANDLER = "def handler(event, context):\n    return 1\n"
SLEEPER = "import time\ndef handler(event, context):\n    time.sleep(0.2)\n    return 1\n"


def signed_invoke(server, name, body):
    url = f"{server.control_endpoint}/2015-03-31/functions/{name}/invocations"
    req = botocore.awsrequest.AWSRequest(method="POST", url=url, data=body,
                                         headers={"X-Amz-Invocation-Type": "Event",
                                                  "Content-Type": "application/json"})
    creds = botocore.credentials.Credentials(server.access_key, server.secret_key)
    botocore.auth.SigV4Auth(creds, "lambda", "us-east-1").add_auth(req)
    return req


def bench_enqueue(server, lam, duration, connections):
    name = unique("bq")
    server.create(lam, name, {"app.py": HANDLER})
    req = signed_invoke(server, name, b'{"n": 1}')
    lua = "wrk.method = 'POST'\nwrk.body = '{\"n\": 1}'\n"
    for k, v in req.headers.items():
        if k.lower() in ("host", "content-length"):
            continue
        lua += f"wrk.headers[{json.dumps(k)}] = {json.dumps(v if isinstance(v, str) else v.decode())}\n"
    lua += "done = function(summary, latency, requests)\n  io.write(string.format('STATUS_ERRORS %d\\n', summary.errors.status))\nend\n"
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(lua)
    script.close()
    sched = server.child_pids("geysir-scheduler")
    for p in sched:
        os.kill(p, signal.SIGSTOP)
    try:
        db = sqlite3.connect(f"file:{server.data_dir}/geysir.db?mode=ro", uri=True)
        before = db.execute("SELECT COALESCE(MAX(id), 0) FROM async_events").fetchone()[0]
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script.name,
                              f"{server.control_endpoint}/2015-03-31/functions/{name}/invocations"],
                             capture_output=True, text=True, timeout=duration + 60).stdout
        after = db.execute("SELECT COALESCE(MAX(id), 0) FROM async_events").fetchone()[0]
        db.close()
    finally:
        for p in sched:
            os.kill(p, signal.SIGCONT)
    rps = next((l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec")), "?")
    p99 = next((l.split()[1] for l in out.splitlines() if l.strip().startswith("99%")), "?")
    errors = next((l.split()[1] for l in out.splitlines() if l.startswith("STATUS_ERRORS")), "?")
    print(f"enqueue: {rps} acknowledged (202) Invoke(Event)/s over {connections} connections, p99 {p99}, "
          f"non-2xx {errors}; rows committed {after - before}")
    return name


def bench_dispatch(server, lam, n=60, concurrency=4):
    name = unique("bd")
    server.create(lam, name, {"app.py": SLEEPER})
    try:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=concurrency)
        limited = True
    except Exception as e:  # noqa: BLE001 - reserved concurrency not available in this build
        print(f"dispatch: PutFunctionConcurrency unavailable ({e.__class__.__name__}); running unlimited")
        limited = False
    t0 = time.monotonic()
    for i in range(n):
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")

    def drained():
        out = server.geysir("events", "queued", "--function", name, "--limit", "1000")
        return len(out.stdout.strip().splitlines()) == 1
    wait_until(drained, 300, interval=0.2, what="queue drained")
    took = time.monotonic() - t0
    ideal = n * 0.2 / concurrency
    print(f"dispatch: {n} events of a 200 ms function{' at reserved concurrency ' + str(concurrency) if limited else ''}: "
          f"{took:.1f} s (ideal {ideal:.1f} s at full concurrency: {100 * ideal / took:.0f}% busy)")


def bench_schedules(server, lam, count, watch_s):
    name = unique("bs")
    server.create(lam, name, {"app.py": HANDLER})
    arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    ev = server.client("events", max_pool_connections=16)
    t0 = time.monotonic()
    errors = []

    def make(lo, hi):
        for i in range(lo, hi):
            try:
                # rate(1 minute) counts from creation: the load spreads across the minute.
                ev.put_rule(Name=f"b{i}", ScheduleExpression="rate(1 minute)")
                ev.put_targets(Rule=f"b{i}", Targets=[{"Id": "t", "Arn": arn, "Input": "{}"}])
            except Exception as e:  # noqa: BLE001
                errors.append(e)
    threads = [threading.Thread(target=make, args=(k * count // 8, (k + 1) * count // 8)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"schedules: created {count} rules with a target in {time.monotonic() - t0:.0f} s ({len(errors)} errors)")
    time.sleep(watch_s)
    out = server.geysir("schedules")
    stats = json.loads(server_get(server, "/geysir/v1/schedules"))["firing"]
    print(f"schedules: firing lag over {stats.get('firings')} firings: p50 {stats.get('lag_ms_p50')} ms, "
          f"p99 {stats.get('lag_ms_p99')} ms, max {stats.get('lag_ms_max')} ms")
    del out


def server_get(server, path):
    from botocore.awsrequest import AWSRequest
    import urllib.request
    req = AWSRequest(method="GET", url=server.control_endpoint + path)
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(server.access_key, server.secret_key), "lambda",
                            "us-east-1").add_auth(req)
    r = urllib.request.Request(req.url, headers=dict(req.headers.items()))
    return urllib.request.urlopen(r, timeout=30).read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--schedules", type=int, default=10000)
    ap.add_argument("--watch", type=int, default=90)
    ap.add_argument("--skip", default="")
    a = ap.parse_args()
    s = Server()
    s.start()
    try:
        lam = s.lambda_client()
        if "enqueue" not in a.skip:
            bench_enqueue(s, lam, a.duration, a.connections)
        if "dispatch" not in a.skip:
            bench_dispatch(s, lam)
        if "schedules" not in a.skip:
            bench_schedules(s, lam, a.schedules, a.watch)
    finally:
        s.stop()
        s.cleanup()


if __name__ == "__main__":
    main()
