#!/usr/bin/env python3
"""Triggers benchmarks (not CI): durable async enqueues per second, whether the dispatcher keeps a
function's concurrency full while a backlog drains, and schedule firing lag with many schedules
loaded.

    GEYSIR_BUILD_DIR=build/triggers /usr/bin/python3 bench/triggers.py \
        [--duration 8] [--repeat 3] [--schedules 10000] [--windows 3] [--window-s 20] [--skip enqueue,dispatch]

Starts a private `geysir server` (tests/integration/conftest.py's Server).

enqueue: wrk (C, 2 threads) replays one SigV4-signed Invoke(InvocationType=Event) request over
keep-alive connections (control does not reject a repeated signature within its 15-minute
window; each request still gets its own request id and its own durable row). The scheduler is
paused (SIGSTOP) during the run so the figure is the cost of acknowledging durably, not of
running 2,000 forks a second on 2 cores. Repeated --repeat times; the median is reported, and
the group commit's batch statistics from control's log at the end. GEYSIR_GROUP_COMMIT=loop in
the environment makes control commit on its loop thread instead of the committer thread (A/B).

dispatch: 200 events of a 200 ms function at reserved concurrency 4, queued while the scheduler
is paused, then released: the drain time against the ideal, and the dispatcher's in-flight
count for the function sampled every 50 ms (GET /geysir/v1/async-events?function=...).

schedules: --schedules rate(1 minute) rules, each with a Lambda target, created through
EventBridge's API; once all exist, each of --windows windows of --window-s seconds reports the
lag p50/p99/max of the firings in it (control's schedule_fired log lines: due time to the
firing's events being durable in the queue). The scheduler is paused during the windows so the
figure is the schedule engine's (10,000 rate(1 minute) rules are 167 invocations a second,
which 2 cores cannot run); --schedules-live keeps it running instead.
"""
import argparse
import json
import os
import signal
import sqlite3
import statistics
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


class Paused:
    """SIGSTOP the server's scheduler for a block; SIGCONT after, whatever happens."""

    def __init__(self, server, enabled=True):
        self.pids = server.child_pids("geysir-scheduler") if enabled else []

    def __enter__(self):
        for p in self.pids:
            os.kill(p, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        for p in self.pids:
            os.kill(p, signal.SIGCONT)


def bench_enqueue(server, lam, duration, connections, repeat):
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
    rates = []
    for run in range(repeat):
        with Paused(server):
            db = sqlite3.connect(f"file:{server.data_dir}/geysir.db?mode=ro", uri=True)
            before = db.execute("SELECT COALESCE(MAX(id), 0) FROM async_events").fetchone()[0]
            out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script.name,
                                  f"{server.control_endpoint}/2015-03-31/functions/{name}/invocations"],
                                 capture_output=True, text=True, timeout=duration + 60).stdout
            after = db.execute("SELECT COALESCE(MAX(id), 0) FROM async_events").fetchone()[0]
            db.close()
        rps = next((l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec")), "0")
        p99 = next((l.split()[1] for l in out.splitlines() if l.strip().startswith("99%")), "?")
        errors = next((l.split()[1] for l in out.splitlines() if l.startswith("STATUS_ERRORS")), "?")
        rates.append(float(rps))
        print(f"enqueue run {run + 1}: {float(rps):,.0f} acknowledged (202) Invoke(Event)/s over {connections} "
              f"connections, p99 {p99}, non-2xx {errors}; rows committed {after - before}", flush=True)
        # Let the queue drain a little between runs (the scheduler is running again).
        time.sleep(2)
    print(f"enqueue: median {statistics.median(rates):,.0f}/s of {repeat} runs", flush=True)
    return name


def queue_state(server, name):
    return json.loads(server_get(server, f"/geysir/v1/async-events?function={name}&limit=1"))


def bench_dispatch(server, lam, n=200, concurrency=4):
    name = unique("bd")
    server.create(lam, name, {"app.py": SLEEPER})
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=concurrency)
    # Warm the function's template so the drain measures dispatch, not the first cold start.
    lam.invoke(FunctionName=name, Payload=b"{}")
    with Paused(server):
        def enqueue(k):
            c = server.lambda_client()
            for _ in range(k):
                c.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")
        threads = [threading.Thread(target=enqueue, args=(n // 8,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    t0 = time.monotonic()
    samples = []
    while True:
        st = queue_state(server, name)
        samples.append(st.get("function_in_flight", 0))
        if not st["events"]:
            break
        if time.monotonic() - t0 > 600:
            raise SystemExit("dispatch: the queue did not drain in 600 s")
        time.sleep(0.05)
    took = time.monotonic() - t0
    ideal = n * 0.2 / concurrency
    busy = samples[:-1] or [0]
    print(f"dispatch: {n} events of a 200 ms function at reserved concurrency {concurrency}: drained in {took:.1f} s "
          f"(ideal {ideal:.1f} s: {100 * ideal / took:.0f}%); dispatcher in flight over {len(busy)} samples: "
          f"mean {statistics.mean(busy):.2f}, median {statistics.median(busy)}, at {concurrency} in "
          f"{100 * sum(1 for x in busy if x >= concurrency) / len(busy):.0f}% of samples", flush=True)


def fired_lags(server, start, end):
    lags = []
    with open(server.log_path, "rb") as f:
        f.seek(start)
        chunk = f.read(end - start)
    for line in chunk.decode("utf-8", "replace").splitlines():
        if '"schedule_fired"' not in line:
            continue
        try:
            lags.append(json.loads(line[line.index("{"):])["lag_ms"])
        except (ValueError, KeyError):
            pass
    return sorted(lags)


def bench_schedules(server, lam, count, windows, window_s, live):
    name = unique("bs")
    server.create(lam, name, {"app.py": HANDLER})
    arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    t0 = time.monotonic()
    errors = []

    def make(lo, hi):
        ev = server.client("events")
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
    print(f"schedules: created {count} rules with a target in {time.monotonic() - t0:.0f} s ({len(errors)} errors)",
          flush=True)
    with Paused(server, enabled=not live):
        for w in range(windows):
            start = os.path.getsize(server.log_path)
            time.sleep(window_s)
            lags = fired_lags(server, start, os.path.getsize(server.log_path))
            if not lags:
                print(f"schedules window {w + 1}: no firings", flush=True)
                continue
            pct = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))]  # noqa: E731
            print(f"schedules window {w + 1} ({window_s} s, {count} rules{', scheduler running' if live else ''}): "
                  f"{len(lags)} firings, lag p50 {pct(0.5)} ms, p99 {pct(0.99)} ms, max {lags[-1]} ms", flush=True)


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
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--schedules", type=int, default=10000)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--window-s", type=int, default=20)
    ap.add_argument("--schedules-live", action="store_true")
    ap.add_argument("--skip", default="")
    a = ap.parse_args()
    s = Server()
    s.start()
    try:
        lam = s.lambda_client()
        if "enqueue" not in a.skip:
            bench_enqueue(s, lam, a.duration, a.connections, a.repeat)
        if "dispatch" not in a.skip:
            bench_dispatch(s, lam)
        if "schedules" not in a.skip:
            bench_schedules(s, lam, a.schedules, a.windows, a.window_s, a.schedules_live)
    finally:
        s.stop()
        with open(s.log_path, "rb") as f:
            for line in f.read().decode("utf-8", "replace").splitlines():
                if '"group_commit_stats"' in line:
                    print("control:", line[line.index("{"):])
        s.cleanup()


if __name__ == "__main__":
    main()
