"""Reuse mode, Lambda's execution model as a per-function option: GEYSIR_EXECUTION_MODE=reuse in
the function's environment keeps one warm worker per concurrent invocation, serving one
invocation after another (docs/request-path.md, "Reuse mode").

Run: GEYSIR_BUILD_DIR=build/x /usr/bin/python3 -m pytest -q tests/integration/test_reuse_mode.py
"""
import base64
import concurrent.futures
import json
import os
import time

import botocore.exceptions
import pytest

from conftest import ROLE, make_zip, running_server, wait_until

REUSE = {"Variables": {"GEYSIR_EXECUTION_MODE": "reuse"}}

# Module state that survives between invocations only in reuse mode: a counter, a file in /tmp,
# and the events this process has served.
STATEFUL = '''
import os, sys, time
COUNTER = 0
SEEN = []
def handler(event, context):
    global COUNTER
    COUNTER += 1
    SEEN.append(event.get("n"))
    token = event.get("n")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("exit"):
        os._exit(event["exit"])
    if event.get("hog"):
        blocks = []
        for _ in range(64):
            blocks.append(bytearray(16 * 1024 * 1024))
    if event.get("log"):
        print("line one of", context.aws_request_id)
        sys.stdout.write("no newline at the end")
    path = "/tmp/reuse-marker"
    had_file = os.path.exists(path)
    with open(path, "a") as f:
        f.write("x")
    return {"pid": os.getpid(), "counter": COUNTER, "seen": list(SEEN), "had_file": had_file,
            "mine": token == event.get("n"), "request_id": context.aws_request_id,
            "mode": os.environ.get("GEYSIR_EXECUTION_MODE")}
'''


def invoke(lam, name, event=None, **kw):
    r = lam.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kw)
    return r, json.loads(r["Payload"].read())


def error_of(call, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kwargs)
    return e.value.response


def workers_of(name):
    """Host pids of the function's workers: its runtime processes whose parent is its template."""
    procs = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if b"bootstrap.py" not in f.read():
                    continue
            with open(f"/proc/{p}/environ", "rb") as f:
                if f"AWS_LAMBDA_FUNCTION_NAME={name}".encode() not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
            procs[int(p)] = int(st[st.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
    return sorted(pid for pid, ppid in procs.items() if ppid in procs)


def stored_messages(server, fn_name, reports, timeout_s, what):
    """The function's stored log messages (newlines stripped) once `reports` REPORT lines are in."""
    logs = server.client("logs")
    group = f"/aws/lambda/{fn_name}"

    def stored():
        ev = [e["message"].rstrip("\n") for e in logs.filter_log_events(logGroupName=group)["events"]]
        return ev if sum(1 for m in ev if m.startswith("REPORT RequestId:")) == reports else None
    return wait_until(stored, timeout_s, interval=0.2, what=what)


def test_mode_set_by_create_and_update_and_shown(server, lam, fn_name):
    server.create(lam, fn_name, {"app.py": STATEFUL}, Environment=REUSE)
    cfg = lam.get_function_configuration(FunctionName=fn_name)
    assert cfg["Environment"]["Variables"] == {"GEYSIR_EXECUTION_MODE": "reuse"}
    outs = [invoke(lam, fn_name, {"n": n})[1] for n in range(3)]
    assert [o["counter"] for o in outs] == [1, 2, 3]
    assert len({o["pid"] for o in outs}) == 1
    assert outs[0]["mode"] == "reuse"
    # Back to per-request with UpdateFunctionConfiguration: a new revision, fresh processes.
    lam.update_function_configuration(FunctionName=fn_name,
                                      Environment={"Variables": {"GEYSIR_EXECUTION_MODE": "per-request", "AB": "1"}})
    server.wait_active(lam, fn_name)
    cfg = lam.get_function_configuration(FunctionName=fn_name)
    assert cfg["Environment"]["Variables"] == {"GEYSIR_EXECUTION_MODE": "per-request", "AB": "1"}
    outs = [invoke(lam, fn_name, {"n": n})[1] for n in range(3)]
    assert [o["counter"] for o in outs] == [1, 1, 1]
    assert outs[0]["mode"] == "per-request"
    # And to reuse again by update.
    lam.update_function_configuration(FunctionName=fn_name, Environment=REUSE)
    server.wait_active(lam, fn_name)
    outs = [invoke(lam, fn_name, {"n": n})[1] for n in range(2)]
    assert [o["counter"] for o in outs] == [1, 2]


def test_invalid_mode_refused_and_nothing_changed(server, lam, fn_name):
    bad = {"Variables": {"GEYSIR_EXECUTION_MODE": "Reuse"}}
    err = error_of(lam.create_function, FunctionName=fn_name, Runtime="python3.11",
                   Role=ROLE, Handler="app.handler",
                   Code={"ZipFile": make_zip({"app.py": STATEFUL})}, Environment=bad)
    assert err["Error"]["Code"] == "InvalidParameterValueException"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    msg = err["Error"]["Message"]
    assert "GEYSIR_EXECUTION_MODE" in msg and "per-request" in msg and "reuse" in msg and "'Reuse'" in msg
    assert error_of(lam.get_function, FunctionName=fn_name)["Error"]["Code"] == "ResourceNotFoundException"

    server.create(lam, fn_name, {"app.py": STATEFUL}, Environment={"Variables": {"KEY": "v"}})
    before = lam.get_function_configuration(FunctionName=fn_name)
    err = error_of(lam.update_function_configuration, FunctionName=fn_name,
                   Environment={"Variables": {"GEYSIR_EXECUTION_MODE": "sometimes"}})
    assert err["Error"]["Code"] == "InvalidParameterValueException"
    after = lam.get_function_configuration(FunctionName=fn_name)
    assert after["RevisionId"] == before["RevisionId"]
    assert after["Environment"]["Variables"] == {"KEY": "v"}
    # Per-request is the default: no state between invocations.
    assert [invoke(lam, fn_name, {"n": n})[1]["counter"] for n in range(2)] == [1, 1]
    assert invoke(lam, fn_name)[1]["had_file"] is False


def test_state_survives_in_reuse_mode_only(server, lam, fn_name):
    other = fn_name + "-pr"
    server.create(lam, fn_name, {"app.py": STATEFUL}, Environment=REUSE)
    server.create(lam, other, {"app.py": STATEFUL})
    try:
        reuse = [invoke(lam, fn_name, {"n": n})[1] for n in range(4)]
        assert [o["counter"] for o in reuse] == [1, 2, 3, 4]
        assert [o["had_file"] for o in reuse] == [False, True, True, True]  # its /tmp survives too
        assert reuse[-1]["seen"] == [0, 1, 2, 3]
        per_request = [invoke(lam, other, {"n": n})[1] for n in range(3)]
        assert [o["counter"] for o in per_request] == [1, 1, 1]
        assert [o["had_file"] for o in per_request] == [False, False, False]
        assert len({o["pid"] for o in per_request}) == 3
    finally:
        lam.delete_function(FunctionName=other)


def test_concurrent_invocations_scale_workers_each_with_its_own_state(server, lam, fn_name):
    server.create(lam, fn_name, {"app.py": STATEFUL}, Environment=REUSE, Timeout=10)
    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        outs = list(ex.map(lambda n: invoke(lam, fn_name, {"n": n, "sleep": 0.6})[1], range(3)))
    pids = {o["pid"] for o in outs}
    assert len(pids) >= 2, outs
    assert all(o["mine"] for o in outs)
    # Each worker saw only the events it served: the workers share nothing.
    seen_by = {}
    for o in outs:
        seen_by.setdefault(o["pid"], set()).update(o["seen"])
    assert sorted(n for s in seen_by.values() for n in s) == [0, 1, 2]
    # Afterwards sequential invocations keep using warm workers: counters only grow.
    more = [invoke(lam, fn_name, {"n": 10 + n})[1] for n in range(3)]
    assert all(o["pid"] in pids for o in more)
    assert all(o["counter"] >= 2 for o in more)


def test_timeout_replaces_the_worker(server, lam, fn_name):
    server.create(lam, fn_name, {"app.py": STATEFUL}, Environment=REUSE, Timeout=1)
    assert [invoke(lam, fn_name, {"n": n})[1]["counter"] for n in range(2)] == [1, 2]
    r, err = invoke(lam, fn_name, {"n": 2, "sleep": 5})
    assert r["FunctionError"] == "Unhandled"
    assert err["errorType"] == "Sandbox.Timedout", err
    r, out = invoke(lam, fn_name, {"n": 3})
    assert "FunctionError" not in r, out
    assert out["counter"] == 1 and out["seen"] == [3]
    assert out["had_file"] is False  # a fresh worker: a fresh /tmp


def test_crash_replaces_the_worker(server, lam, fn_name):
    server.create(lam, fn_name, {"app.py": STATEFUL}, Environment=REUSE)
    first = invoke(lam, fn_name, {"n": 0})[1]
    r, err = invoke(lam, fn_name, {"n": 1, "exit": 3})
    assert r["FunctionError"] == "Unhandled"
    assert err["errorType"] == "Runtime.ExitError", err
    assert "exit status 3" in err["errorMessage"]
    r, out = invoke(lam, fn_name, {"n": 2})
    assert "FunctionError" not in r, out
    assert out["counter"] == 1 and out["seen"] == [2]
    assert first["counter"] == 1


def test_out_of_memory_replaces_the_worker(server, lam, fn_name):
    server.create(lam, fn_name, {"app.py": STATEFUL}, Environment=REUSE, MemorySize=128, Timeout=20)
    assert invoke(lam, fn_name, {"n": 0})[1]["counter"] == 1
    r, err = invoke(lam, fn_name, {"n": 1, "hog": True})
    assert r.get("FunctionError") == "Unhandled", err
    assert err["errorType"] == "Runtime.OutOfMemory", err
    r, out = invoke(lam, fn_name, {"n": 2})
    assert "FunctionError" not in r, out
    assert out["counter"] == 1 and out["seen"] == [2]


def test_handler_error_keeps_the_worker_warm(server, lam, fn_name):
    src = STATEFUL + '''
def failing(event, context):
    handler(event, context)
    if event.get("fail"):
        raise ValueError("boom")
    return COUNTER
'''
    server.create(lam, fn_name, {"app.py": src}, Environment=REUSE, handler="app.failing")
    assert invoke(lam, fn_name, {"n": 0})[1] == 1
    r, err = invoke(lam, fn_name, {"n": 1, "fail": True})
    assert r["FunctionError"] == "Unhandled" and err["errorType"] == "ValueError"
    assert invoke(lam, fn_name, {"n": 2})[1] == 3


def test_init_error_as_in_per_request_mode(server, lam, fn_name):
    src = 'raise RuntimeError("init failed here")\ndef handler(event, context):\n    return 1\n'
    server.create(lam, fn_name, {"app.py": src}, Environment=REUSE)
    for _ in range(2):  # every invocation re-runs init, as Lambda does after an init error
        r, err = invoke(lam, fn_name)
        assert r["FunctionError"] == "Unhandled"
        assert "init failed here" in err["errorMessage"], err


def test_logs_complete_and_ordered_init_duration_once(server, lam, fn_name):
    server.create(lam, fn_name, {"app.py": STATEFUL}, Environment=REUSE)
    rids = []
    for n in range(3):
        r, out = invoke(lam, fn_name, {"n": n, "log": True}, LogType="Tail")
        rid = out["request_id"]
        rids.append(rid)
        # The log tail of this invocation, complete in the answer: no waiting for an exit.
        tail = base64.b64decode(r["LogResult"]).decode()
        assert f"line one of {rid}" in tail and "no newline at the end" in tail, tail
        assert tail.index(f"START RequestId: {rid}") < tail.index(f"line one of {rid}") < \
            tail.index("no newline at the end") < tail.index(f"END RequestId: {rid}") < \
            tail.index(f"REPORT RequestId: {rid}")
        assert ("Init Duration" in tail) == (n == 0), tail
    messages = stored_messages(server, fn_name, 3, 20, "the REPORT lines of 3 invocations")
    for i, rid in enumerate(rids):
        assert f"START RequestId: {rid} Version: $LATEST" in messages, messages
        own = messages[messages.index(f"START RequestId: {rid} Version: $LATEST"):]
        own = own[:own.index(next(m for m in own if m.startswith(f"REPORT RequestId: {rid}"))) + 1]
        assert [m.split("\t")[0] if m.startswith("REPORT") else m for m in own] == [
            f"START RequestId: {rid} Version: $LATEST", f"line one of {rid}", "no newline at the end",
            f"END RequestId: {rid}", f"REPORT RequestId: {rid}"], own
        assert ("Init Duration" in own[-1]) == (i == 0), own[-1]


def test_delete_stops_reuse_workers(server, lam, fn_name):
    server.create(lam, fn_name, {"app.py": STATEFUL}, Environment=REUSE, Timeout=10)
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        list(ex.map(lambda n: invoke(lam, fn_name, {"n": n, "sleep": 0.4}), range(2)))
    assert len(workers_of(fn_name)) >= 1
    lam.delete_function(FunctionName=fn_name)
    wait_until(lambda: not workers_of(fn_name), 5, interval=0.1, what="the deleted function's workers gone")


def test_idle_workers_scale_to_zero():
    with running_server(extra_args=["--worker-idle-timeout-s", "1"]) as s:
        lam = s.lambda_client()
        name = "idle-reuse"
        s.create(lam, name, {"app.py": STATEFUL}, Environment=REUSE, Timeout=10)
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            outs = list(ex.map(lambda n: invoke(lam, name, {"n": n, "sleep": 0.5})[1], range(2)))
        assert len({o["pid"] for o in outs}) >= 1 and workers_of(name)
        t0 = time.monotonic()
        wait_until(lambda: not workers_of(name), 10, interval=0.1, what="idle workers stopped")
        assert time.monotonic() - t0 >= 0.3
        # The next invocation starts a fresh worker from the warm template (no Init Duration).
        r, out = invoke(lam, name, {"n": 9}, LogType="Tail")
        assert out["counter"] == 1
        assert "Init Duration" not in base64.b64decode(r["LogResult"]).decode()


def test_async_invocations_run_on_warm_workers(server, lam, fn_name):
    server.create(lam, fn_name, {"app.py": STATEFUL}, Environment=REUSE)
    for n in range(3):
        r = lam.invoke(FunctionName=fn_name, InvocationType="Event", Payload=json.dumps({"n": n, "log": True}).encode())
        assert r["StatusCode"] == 202
    messages = stored_messages(server, fn_name, 3, 30, "the REPORT lines of 3 asynchronous invocations")
    assert sum(1 for m in messages if m.startswith("line one of ")) == 3
    assert sum(1 for m in messages if m == "no newline at the end") == 3
    # A synchronous invocation afterwards runs on a worker that served at least one of them.
    out = invoke(lam, fn_name, {"n": 9})[1]
    assert out["counter"] >= 2 and out["seen"][-1] == 9 and set(out["seen"][:-1]) <= {0, 1, 2}, out


def test_zappa_app_in_reuse_mode(server, lam, fn_name):
    """Zappa's handler (our stand-in, tests/zappa_app) built once in the template serves on warm
    workers: one 'Instancing..' over many requests, no per-request rebuild."""
    from test_zappa_warm import ZAPPA_HANDLER, read_app
    url = server.create(lam, fn_name, read_app("handler.py", "app.py", "zappa_settings.py"), url=True,
                        handler=ZAPPA_HANDLER, Environment=REUSE, Timeout=30, MemorySize=512)
    server.wait_url_status(url, 200, timeout=30)
    for _ in range(10):
        status, _, body = server.url_request(url)
        assert status == 200 and body == b"tinyapp warm\n", body
    logs = server.client("logs")

    def stored():
        lines = [e["message"] for e in logs.filter_log_events(logGroupName=f"/aws/lambda/{fn_name}")["events"]]
        return lines if sum(m.startswith("REPORT ") for m in lines) >= 11 else None
    lines = wait_until(stored, 20, interval=0.2, what="the REPORT lines of 11 requests")
    assert sum("Instancing.." in m for m in lines) == 1, lines
