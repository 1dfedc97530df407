"""Supervision: SIGKILLed daemons come back within seconds; SIGTERM under load loses no accepted request."""
import http.client
import json
import os
import signal
import threading
import time
import urllib.parse

import pytest

from conftest import Server, unique, wait_until

RECOVERY_S = 10


@pytest.fixture(scope="module")
def hello_url(server, lam):
    name = unique("it-sup")
    url = server.create(lam, name, {"app.py": 'import os\ndef handler(e, c):\n    return {"statusCode": 200, "body": str(os.getpid())}\n'},
                        url=True)
    server.wait_url_status(url, 200)
    yield url
    lam.delete_function(FunctionName=name)


@pytest.mark.parametrize("daemon", ["geysir-gateway", "geysir-scheduler", "geysir-control"])
def test_sigkill_daemon_recovers(server, lam, hello_url, daemon):
    pids = server.child_pids(daemon)
    assert len(pids) == 1, f"expected one {daemon} child of the supervisor, found {pids}"
    os.kill(pids[0], signal.SIGKILL)
    t0 = time.monotonic()
    wait_until(lambda: server.child_pids(daemon) and server.child_pids(daemon) != pids, RECOVERY_S,
               what=f"{daemon} restarted")
    # Serving again: the URL answers 200 (a fresh process) and the control API works.
    server.wait_url_status(hello_url, 200, timeout=RECOVERY_S)
    wait_until(lambda: lam.list_functions()["Functions"] is not None, RECOVERY_S, what="control API")
    elapsed = time.monotonic() - t0
    assert elapsed < RECOVERY_S
    assert server.proc.poll() is None, "the supervisor itself must survive"
    # The platform keeps the same ports (the supervisor hands down its own listening sockets).
    with open(os.path.join(server.data_dir, "run", "server.json")) as f:
        assert json.load(f)["http_port"] == server.http_port


def test_sigterm_under_load_loses_no_accepted_request():
    srv = Server().start()
    try:
        lam = srv.lambda_client()
        src = 'import time\ndef handler(e, c):\n    time.sleep(0.3)\n    return {"statusCode": 200, "body": "done"}\n'
        url = srv.create(lam, "slow", {"app.py": src}, url=True, Timeout=10)
        srv.wait_url_status(url, 200)
        host = urllib.parse.urlsplit(url).netloc
        stop = threading.Event()
        lock = threading.Lock()
        results = []  # (t_sent, t_done, status or exception name)

        def client(k):
            # Staggered starts: eight clients started together send in lockstep (each request
            # takes the handler's 0.3 s), and a SIGTERM landing in the 0.1 s before their next
            # sends found no request old enough to count as in flight (the test failed ~1 in 3).
            time.sleep(k * 0.04)
            for _ in range(10000):
                if stop.is_set():
                    return
                t_sent = time.monotonic()
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=30)
                    conn.request("GET", "/", headers={"Host": host})
                    r = conn.getresponse()
                    body = r.read()
                    outcome = r.status if body == b"done" or r.status != 200 else "bad-body"
                    conn.close()
                except (OSError, http.client.HTTPException) as e:
                    outcome = type(e).__name__
                with lock:
                    results.append((t_sent, time.monotonic(), outcome))
                if isinstance(outcome, str):
                    time.sleep(0.05)  # refused: the server is going away

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        time.sleep(2.5)
        t_term = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        rc = srv.proc.wait(60)
        stop.set()
        for t in threads:
            t.join(40)
        assert rc == 0, srv.log_tail()
        responded = [r for r in results if isinstance(r[2], int)]
        in_flight = [r for r in results if r[0] < t_term - 0.1 and r[1] > t_term]
        failed_responses = [r for r in responded if r[2] != 200]
        print(f"responses: {len(responded)} (all 200: {not failed_responses}); "
              f"in flight at SIGTERM: {len(in_flight)}; connection errors: {len(results) - len(responded)}")
        assert len(responded) >= 8, "load did not run"
        assert not failed_responses, failed_responses[:5]
        assert [r for r in results if r[2] == "bad-body"] == []
        # Every request that had been sent (and so accepted) before SIGTERM finished with 200.
        assert in_flight, "no request was in flight when SIGTERM arrived"
        assert all(r[2] == 200 for r in in_flight), [r for r in in_flight if r[2] != 200][:5]
        assert not os.path.exists(os.path.join(srv.data_dir, "run", "server.json"))
    finally:
        srv.cleanup()
