"""The HTTP edge over raw sockets and real clients: malformed, oversized, slow, keep-alive,
pipelining, chunked; ambiguous headers; control's own errors in each service's format; the
per-client connection limit; a restarted gateway before its route table."""
import json
import os
import select
import signal
import socket
import time

import botocore.exceptions
import pytest

HEADER_TIMEOUT_S = 10  # proto::HttpLimits::header_timeout_ms


def raw(server, data, timeout=15, shut=False, port=None):
    """Sends bytes to the gateway (or another of the server's ports), returns everything it
    answers until it closes (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port or server.http_port), timeout=timeout)
    try:
        if data:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the gateway answered and closed mid-upload; read the answer below
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def status_of(resp):
    assert resp.startswith(b"HTTP/1.1 "), resp[:200]
    return int(resp[9:12])


@pytest.fixture(scope="module")
def echo_url(server, lam):
    import conftest
    name = conftest.unique("it-echo")
    src = ('import base64\n'
           'def handler(event, context):\n'
           '    body = event.get("body") or ""\n'
           '    if event.get("isBase64Encoded"):\n'
           '        body = base64.b64decode(body).decode("latin-1")\n'
           '    return {"statusCode": 200, "headers": {"content-type": "text/plain"},\n'
           '            "body": event["rawPath"] + ":" + str(len(body)) + ":" + body[:20]}\n')
    url = server.create(lam, name, {"app.py": src}, url=True)
    server.wait_url_status(url, 200)
    yield url
    lam.delete_function(FunctionName=name)


def host_of(url):
    return url.split("//", 1)[1].rstrip("/")


def test_healthz(server):
    resp = raw(server, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert status_of(resp) == 200


@pytest.mark.parametrize("data", [
    b"THIS IS NOT HTTP\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: localhost\r\nBad Header Without Colon\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: localhost\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_malformed_is_400(server, data):
    resp = raw(server, data)
    assert status_of(resp) in (400, 505), resp[:200]


def test_headers_too_large_is_431(server):
    big = b"X-Big: " + b"a" * (64 * 1024) + b"\r\n"
    resp = raw(server, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + big + b"\r\n")
    assert status_of(resp) == 431


def test_body_too_large_is_413(server, echo_url):
    host = host_of(echo_url).encode()
    # Declared size over the limit: refused before any body byte is read.
    resp = raw(server, b"POST / HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 10000000000\r\n\r\n")
    assert status_of(resp) == 413
    # Chunked body that grows past 6 MB.
    chunk = b"%x\r\n" % (1 << 16) + b"a" * (1 << 16) + b"\r\n"
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=15)
    try:
        s.sendall(b"POST / HTTP/1.1\r\nHost: " + host + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        resp = b""
        for _ in range(8 * 16):  # up to 8 MB, stopping as soon as the gateway answers
            r, _, _ = select.select([s], [], [], 0)
            if r:
                break
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        s.settimeout(10)
        try:
            while not resp.endswith(b"}") and len(resp) < 65536:
                data = s.recv(65536)
                if not data:
                    break
                resp += data
        except (ConnectionResetError, socket.timeout):
            pass
    finally:
        s.close()
    assert status_of(resp) == 413


def test_slow_client_is_408(server):
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=HEADER_TIMEOUT_S + 10)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: local")
        t0 = time.monotonic()
        resp = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            resp += chunk
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    assert status_of(resp) == 408
    assert elapsed < HEADER_TIMEOUT_S + 5


def test_keepalive_and_pipelining(server, echo_url):
    host = host_of(echo_url).encode()
    reqs = b"".join(b"GET /p%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, host) for i in range(3))
    reqs += b"GET /last HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
    resp = raw(server, reqs)
    assert resp.count(b"HTTP/1.1 200") == 4, resp
    # Responses come back in request order.
    positions = [resp.index(p) for p in (b"/p0:", b"/p1:", b"/p2:", b"/last:")]
    assert positions == sorted(positions)


def test_chunked_request_body(server, echo_url):
    host = host_of(echo_url).encode()
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    resp = raw(server, b"POST /c HTTP/1.1\r\nHost: " + host + b"\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n" + body)
    assert status_of(resp) == 200
    assert resp.endswith(b"/c:11:hello world")


def test_unknown_host_404_json(server):
    resp = raw(server, b"GET / HTTP/1.1\r\nHost: nope.lambda-url.localhost\r\nConnection: close\r\n\r\n")
    assert status_of(resp) == 404
    json.loads(resp.split(b"\r\n\r\n", 1)[1])


# --- header shapes that two parsers could read differently (request smuggling) ---------------

SMUGGLING = {
    "two Host headers": b"GET / HTTP/1.1\r\nHost: {h}\r\nHost: other.lambda-url.localhost\r\n\r\n",
    "whitespace before a colon": b"GET / HTTP/1.1\r\nHost : {h}\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: {h}\r\nX-A: 1\r\n 2\r\n\r\n",
    "obs-fold hiding a Host": b"GET / HTTP/1.1\r\nX-A: 1\r\n Host: other.lambda-url.localhost\r\nHost: {h}\r\n\r\n",
    "absolute target naming another host": b"GET http://other.lambda-url.localhost/ HTTP/1.1\r\nHost: {h}\r\n\r\n",
    "HTTP/1.1 without Host": b"GET / HTTP/1.1\r\nX-Forwarded-Host: {h}\r\n\r\n",
}


@pytest.mark.parametrize("shape", sorted(SMUGGLING))
def test_ambiguous_headers_are_400_at_the_gateway(server, echo_url, shape):
    """Duplicate or missing Host (HTTP/1.1), whitespace before a header's colon, obsolete line
    folding and an absolute-form target naming another host than Host answer 400 (RFC 9112): a proxy in
    front of the gateway could read such a request differently."""
    data = SMUGGLING[shape].replace(b"{h}", host_of(echo_url).encode())
    resp = raw(server, data)
    assert status_of(resp) == 400, resp[:300]
    # The same request written plainly reaches the function.
    resp = raw(server, b"GET / HTTP/1.1\r\nHost: " + host_of(echo_url).encode() + b"\r\nConnection: close\r\n\r\n")
    assert status_of(resp) == 200, resp[:300]


@pytest.mark.parametrize("shape", sorted(SMUGGLING))
def test_ambiguous_headers_are_400_at_control(server, shape):
    port = int(server.control_endpoint.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    try:
        s.sendall(SMUGGLING[shape].replace(b"GET / ", b"GET /2015-03-31/functions/ ").replace(b"{h}", b"127.0.0.1"))
        resp = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            resp += chunk
    finally:
        s.close()
    assert status_of(resp) == 400, resp[:300]
    assert b"x-amzn-ErrorType: InvalidRequestContentException" in resp, resp[:300]


# --- control's own HTTP errors in each service's format --------------------------------------

def big_header_hook(request, **kwargs):
    request.headers["X-Padding"] = "a" * 20000  # over control's 16 KiB header block


def test_control_protocol_errors_in_each_services_format(server):
    """A request control's HTTP layer refuses (here 431, headers over 16 KiB) is answered in
    the format of the service it was for, so each real client reads the error: S3's XML
    <Error>, IAM's query <ErrorResponse>, Lambda's JSON."""
    s3 = server.client("s3")
    s3.meta.events.register("before-sign.s3.*", big_header_hook)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_buckets()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 431
    assert e.value.response["Error"]["Code"] == "RequestHeaderSectionTooLarge", e.value.response

    iam = server.client("iam")
    iam.meta.events.register("before-sign.iam.*", big_header_hook)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.list_roles()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 431
    assert e.value.response["Error"]["Code"] == "RequestHeaderFieldsTooLarge", e.value.response

    cfn = server.client("cloudformation")
    cfn.meta.events.register("before-sign.cloudformation.*", big_header_hook)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        cfn.list_stacks()
    assert e.value.response["Error"]["Code"] == "RequestHeaderFieldsTooLarge", e.value.response

    lam = server.lambda_client()
    lam.meta.events.register("before-sign.lambda.*", big_header_hook)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.list_functions()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 431
    assert e.value.response["Error"]["Code"] == "RequestHeaderFieldsTooLarge", e.value.response


# --- a gateway of its own: per-client connection limit, restart without a route table --------

@pytest.fixture(scope="module")
def edge_server():
    import conftest
    with conftest.running_server(extra_args=["--max-connections-per-client", "8"]) as s:
        yield s


@pytest.fixture(scope="module")
def edge_url(edge_server):
    import conftest
    lam = edge_server.lambda_client()
    url = edge_server.create(lam, conftest.unique("it-edge"), {"app.py": 'def handler(e, c):\n    return "ok"\n'},
                             url=True)
    edge_server.wait_url_status(url, 200)
    return url


def overflow_then_free_one(server, port, request, answered):
    """Holds 8 connections to `port` (the edge server's per-client limit), checks that a ninth is
    answered 429, closes one of the eight, then sends `request` until `answered(response)` (a
    bounded number of times: the server notices the close asynchronously) and returns the last
    response."""
    held = []
    try:
        for _ in range(8):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        time.sleep(0.2)  # the server accepts them before the ninth
        resp = raw(server, b"", timeout=10, port=port)
        assert status_of(resp) == 429, resp[:300]
        held.pop().close()
        ok = None
        for _ in range(50):
            ok = raw(server, request, timeout=10, port=port)
            if answered(ok):
                break
            time.sleep(0.05)
        return ok
    finally:
        for s in held:
            s.close()


def test_connections_per_client_are_limited(edge_server, edge_url):
    """One client address holds at most --max-connections-per-client (8 here) open connections:
    the next is answered 429 and closed, counted in the gateway's log, and a slot is free again
    once one of the eight closes."""
    request = b"GET / HTTP/1.1\r\nHost: " + host_of(edge_url).encode() + b"\r\nConnection: close\r\n\r\n"
    ok = overflow_then_free_one(edge_server, edge_server.http_port, request,
                                lambda resp: resp.startswith(b"HTTP/1.1 200"))
    assert status_of(ok) == 200, ok[:300]
    with open(edge_server.log_path, "rb") as f:
        assert b'"event":"connections_per_client_refused"' in f.read()


def test_control_connections_per_client_are_limited(edge_server):
    """The control API port takes the same --max-connections-per-client: one client address
    holding 8 connections gets 429 on the ninth, and a slot is free again once one closes."""
    port = int(edge_server.control_endpoint.rsplit(":", 1)[1])
    ok = overflow_then_free_one(edge_server, port,
                                b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                                lambda resp: status_of(resp) != 429)
    assert status_of(ok) not in (0, 429), ok[:300]


def test_restarted_gateway_never_answers_404_for_an_existing_url(edge_server, edge_url):
    """SIGKILL the gateway while six clients call an existing function URL in a loop: until the
    new gateway has control's route table it answers 503 with Retry-After, never 404 (the
    supervisor keeps the listening socket, so requests queue for the new gateway)."""
    import concurrent.futures
    import threading
    host = host_of(edge_url).encode()
    request = b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
    stop = threading.Event()
    lock = threading.Lock()
    statuses, bad = {}, []

    def client():
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                resp = raw(edge_server, request, timeout=5)
            except OSError:
                resp = b""
            st = status_of(resp) if resp.startswith(b"HTTP/1.1 ") else 0
            with lock:
                statuses[st] = statuses.get(st, 0) + 1
                if st == 404 or (st == 503 and b"\r\nRetry-After: 1\r\n" not in resp):
                    bad.append(resp[:300])

    (old,) = edge_server.child_pids("geysir-gateway")
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(client) for _ in range(6)]
        time.sleep(0.3)
        os.kill(old, signal.SIGKILL)

        def new_gateway_serves():
            pids = edge_server.child_pids("geysir-gateway")
            return pids and pids != [old] and raw(edge_server, request, timeout=5).startswith(b"HTTP/1.1 200")
        try:
            import conftest
            conftest.wait_until(new_gateway_serves, 20, interval=0.1, what="the restarted gateway serving")
            time.sleep(0.3)
        finally:
            stop.set()
            for f in futures:
                f.result()
    assert not bad, (statuses, bad[:3])
    assert statuses.get(200, 0) > 0, statuses
