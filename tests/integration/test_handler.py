"""What a handler sees and how its failures surface: env, context, errors, limits, isolation."""
import base64
import concurrent.futures
import json
import time

from conftest import curl

CONTEXT_SRC = '''
import os, json
def handler(event, context):
    env = {k: os.environ.get(k) for k in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "_HANDLER", "LAMBDA_TASK_ROOT", "AWS_REGION",
        "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "MY_VAR")}
    return {
        "env": env,
        "cwd": os.getcwd(),
        "event": event,
        "ctx": {
            "aws_request_id": context.aws_request_id,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": int(context.memory_limit_in_mb),
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining": context.get_remaining_time_in_millis(),
        },
    }
'''


def test_env_and_context(server, lam, fn_name):
    server.create(lam, fn_name, {"pkg/__init__.py": "", "pkg/mod.py": CONTEXT_SRC}, handler="pkg.mod.handler",
                  MemorySize=192, Timeout=7, Environment={"Variables": {"MY_VAR": "value 1"}})
    r = lam.invoke(FunctionName=fn_name, Payload=json.dumps({"k": [1, 2]}).encode())
    assert "FunctionError" not in r, r["Payload"].read()
    out = json.loads(r["Payload"].read())
    env, ctx = out["env"], out["ctx"]
    assert out["event"] == {"k": [1, 2]}
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == fn_name
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "192"
    assert env["_HANDLER"] == "pkg.mod.handler"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["MY_VAR"] == "value 1"
    assert env["LAMBDA_TASK_ROOT"] and out["cwd"] == env["LAMBDA_TASK_ROOT"]
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{fn_name}"
    assert ctx["function_name"] == fn_name
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"].startswith("arn:aws:lambda:us-east-1:")
    assert ctx["invoked_function_arn"].endswith(f":function:{fn_name}")
    assert ctx["memory_limit_in_mb"] == 192
    assert ctx["log_group_name"] == f"/aws/lambda/{fn_name}"
    assert ctx["log_stream_name"]
    assert len(ctx["aws_request_id"]) == 36
    assert 0 < ctx["remaining"] <= 7000
    assert r["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-requestid") == ctx["aws_request_id"]


def test_url_event_shape(server, lam, fn_name):
    src = 'def handler(event, context):\n    return event\n'
    url = server.create(lam, fn_name, {"app.py": src}, url=True)
    server.wait_url_status(url, 200)
    status, headers, body = server.url_request(url, method="POST", path="/a/b?x=1&y=2&x=3",
                                               body=b"\x00\xffbinary", headers={"Cookie": "c1=v1; c2=v2",
                                                                              "Content-Type": "application/octet-stream",
                                                                              "X-Test": "t"})
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    ev = json.loads(body)
    assert ev["version"] == "2.0"
    assert ev["rawPath"] == "/a/b"
    assert ev["rawQueryString"] == "x=1&y=2&x=3"
    assert ev["queryStringParameters"]["y"] == "2"
    assert ev["queryStringParameters"]["x"] == "1,3"
    assert ev["cookies"] == ["c1=v1", "c2=v2"]
    assert ev["headers"]["x-test"] == "t"
    assert ev["requestContext"]["http"]["method"] == "POST"
    assert ev["requestContext"]["http"]["path"] == "/a/b"
    assert ev["isBase64Encoded"] is True
    assert base64.b64decode(ev["body"]) == b"\x00\xffbinary"


def test_handler_exception(server, lam, fn_name):
    src = ('def handler(event, context):\n'
           '    raise ValueError("boom " + str(event.get("n")))\n')
    url = server.create(lam, fn_name, {"app.py": src}, url=True)
    r = lam.invoke(FunctionName=fn_name, Payload=b'{"n": 7}')
    assert r["StatusCode"] == 200
    assert r["FunctionError"] == "Unhandled"
    err = json.loads(r["Payload"].read())
    assert err["errorType"] == "ValueError"
    assert err["errorMessage"] == "boom 7"
    assert isinstance(err["stackTrace"], list) and err["stackTrace"]
    assert any("app.py" in line for line in err["stackTrace"])
    status, _, body = server.wait_url_status(url, 502)
    json.loads(body)


def test_init_error(server, lam, fn_name):
    src = 'raise RuntimeError("init failed here")\ndef handler(event, context):\n    return 1\n'
    url = server.create(lam, fn_name, {"app.py": src}, url=True)
    r = lam.invoke(FunctionName=fn_name, Payload=b"{}")
    assert r["FunctionError"] == "Unhandled"
    err = json.loads(r["Payload"].read())
    assert err["errorType"]
    assert "init failed here" in err["errorMessage"] or err["errorType"].startswith("Runtime.")
    server.wait_url_status(url, 502)


def test_missing_handler(server, lam, fn_name):
    server.create(lam, fn_name, {"app.py": "x = 1\n"})
    r = lam.invoke(FunctionName=fn_name, Payload=b"{}")
    assert r["FunctionError"] == "Unhandled"
    assert json.loads(r["Payload"].read())["errorType"] == "Runtime.HandlerNotFound"


def test_timeout(server, lam, fn_name):
    src = 'import time\ndef handler(event, context):\n    time.sleep(30)\n    return "late"\n'
    url = server.create(lam, fn_name, {"app.py": src}, url=True, Timeout=1)
    t0 = time.monotonic()
    r = lam.invoke(FunctionName=fn_name, Payload=b"{}")
    elapsed = time.monotonic() - t0
    assert r["FunctionError"] == "Unhandled"
    err = json.loads(r["Payload"].read())
    assert err["errorType"] == "Sandbox.Timedout", err
    assert elapsed < 6, f"a 1 s timeout took {elapsed:.1f}s"
    t0 = time.monotonic()
    status, _, body = server.wait_url_status(url, 504, timeout=20)
    json.loads(body)


def test_memory_hog_killed(server, lam, fn_name):
    src = ('def handler(event, context):\n'
           '    blocks = []\n'
           '    for _ in range(64):\n'
           '        blocks.append(bytearray(16 * 1024 * 1024))  # zero-filled: pages are touched\n'
           '    return "survived %d MB" % (16 * len(blocks))\n')
    server.create(lam, fn_name, {"app.py": src}, MemorySize=128, Timeout=20)
    t0 = time.monotonic()
    r = lam.invoke(FunctionName=fn_name, Payload=b"{}")
    assert time.monotonic() - t0 < 15
    payload = r["Payload"].read()
    assert r.get("FunctionError") == "Unhandled", f"1 GB allocation in a 128 MB function returned {payload!r}"
    # The platform still serves that function and others.
    ok = 'def handler(e, c):\n    return "fine"\n'
    lam.update_function_code(FunctionName=fn_name, ZipFile=__import__("conftest").make_zip({"app.py": ok}))
    server.wait_active(lam, fn_name)
    assert json.loads(lam.invoke(FunctionName=fn_name)["Payload"].read()) == "fine"


def test_fork_bomb_stopped_by_pids_limit(server, lam, fn_name):
    src = ('import os, time\n'
           'def handler(event, context):\n'
           '    n, err = 0, None\n'
           '    for _ in range(5000):\n'
           '        try:\n'
           '            pid = os.fork()\n'
           '        except OSError as e:\n'
           '            err = e.errno\n'
           '            break\n'
           '        if pid == 0:\n'
           '            time.sleep(20)\n'
           '            os._exit(0)\n'
           '        n += 1\n'
           '    return {"forked": n, "errno": err}\n')
    url = server.create(lam, fn_name, {"app.py": src}, Timeout=15)
    t0 = time.monotonic()
    r = lam.invoke(FunctionName=fn_name, Payload=b"{}")
    body = r["Payload"].read()
    assert time.monotonic() - t0 < 20
    if "FunctionError" not in r:
        out = json.loads(body)
        assert out["errno"] is not None, f"5000 forks all succeeded: {out}"
        assert out["forked"] < 5000
    # The platform is still serving: a fresh function deploys and answers.
    hello = 'def handler(e, c):\n    return {"statusCode": 200, "body": "alive"}\n'
    lam.update_function_code(FunctionName=fn_name, ZipFile=__import__("conftest").make_zip({"app.py": hello}))
    server.wait_active(lam, fn_name)
    url = lam.create_function_url_config(FunctionName=fn_name, AuthType="NONE")["FunctionUrl"]
    status, _, data = server.wait_url_status(url, 200)
    assert data == b"alive"


def test_fresh_process_per_request(server, lam, fn_name):
    src = ('import os, time\n'
           'COUNTER = 0\n'
           'def handler(event, context):\n'
           '    global COUNTER\n'
           '    COUNTER += 1\n'
           '    time.sleep(0.5)\n'
           '    return {"pid": os.getpid(), "counter": COUNTER}\n')
    url = server.create(lam, fn_name, {"app.py": src}, url=True)
    server.wait_url_status(url, 200)
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        t0 = time.monotonic()
        results = list(ex.map(lambda _: server.url_request(url), range(2)))
        elapsed = time.monotonic() - t0
    assert all(s == 200 for s, _, _ in results), results
    outs = [json.loads(b) for s, _, b in results]
    assert outs[0]["pid"] != outs[1]["pid"]
    assert [o["counter"] for o in outs] == [1, 1], "module globals leaked between requests"
    assert elapsed < 1.4, f"two 0.5 s requests took {elapsed:.2f}s: they did not run concurrently"
    # Sequential requests never see each other's state either: in fork mode each is a new
    # process; in restore mode a process serves again only after its memory was put back.
    seq_raw = [server.url_request(url) for _ in range(3)]
    assert all(s == 200 for s, _, _ in seq_raw), seq_raw
    seq = [json.loads(b) for _, _, b in seq_raw]
    if server.isolation() == "fork":
        assert len({o["pid"] for o in seq + outs}) == 5
    assert all(o["counter"] == 1 for o in seq)


def test_log_tail(server, lam, fn_name):
    src = 'def handler(event, context):\n    print("hello-from-handler", event["x"])\n    return 1\n'
    server.create(lam, fn_name, {"app.py": src})
    r = lam.invoke(FunctionName=fn_name, Payload=b'{"x": 42}', LogType="Tail")
    assert "FunctionError" not in r
    log = base64.b64decode(r["LogResult"]).decode()
    rid = r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert f"START RequestId: {rid}" in log
    assert "hello-from-handler 42" in log
    assert f"END RequestId: {rid}" in log
    assert f"REPORT RequestId: {rid}" in log
    assert "Duration:" in log and "Billed Duration:" in log and "Memory Size: 128 MB" in log
    assert "Max Memory Used:" in log
    assert log.index("START") < log.index("hello-from-handler") < log.index("END") < log.index("REPORT")


def test_non_dict_result_is_json(server, lam, fn_name):
    url = server.create(lam, fn_name, {"app.py": 'def handler(e, c):\n    return [1, "two"]\n'}, url=True)
    status, headers, body = server.wait_url_status(url, 200)
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == [1, "two"]
    status, body = curl(url)
    assert status == 200


THREADS_SRC = '''
import threading, time
if START_AT_INIT:
    threading.Thread(target=lambda: time.sleep(3600), daemon=True).start()
def handler(event, context):
    before = threading.active_count()
    is_main = threading.current_thread() is threading.main_thread()
    out = []
    t = threading.Thread(target=lambda: out.append(threading.get_ident()))
    t.start()
    t.join(5)
    return {"before": before, "is_main": is_main, "ran": len(out), "after": threading.active_count(),
            "main_ident": threading.main_thread().ident == threading.get_ident()}
'''


def test_threads_in_a_child(server, lam, fn_name):
    """threading works in each invocation's process, whether or not the function's init left a
    thread running in the template (the runtime quickens threading's at-fork reset in a
    template that has no other thread, and leaves one that has alone)."""
    for at_init in (False, True):
        name = f"{fn_name}-{int(at_init)}"
        server.create(lam, name, {"app.py": f"START_AT_INIT = {at_init}\n" + THREADS_SRC})
        try:
            for _ in range(2):
                r = lam.invoke(FunctionName=name, Payload=b"{}")
                assert "FunctionError" not in r, r["Payload"].read()
                # fork() keeps only the calling thread: the init's thread is not in the child.
                assert json.loads(r["Payload"].read()) == {"before": 1, "is_main": True, "ran": 1, "after": 1,
                                                           "main_ident": True}
        finally:
            lam.delete_function(FunctionName=name)
