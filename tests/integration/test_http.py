"""The gateway's HTTP edge over raw sockets: malformed, oversized, slow, keep-alive, pipelining, chunked."""
import json
import select
import socket
import time

import pytest

HEADER_TIMEOUT_S = 10  # proto::HttpLimits::header_timeout_ms


def raw(server, data, timeout=15, shut=False):
    """Sends bytes to the gateway, returns everything it answers until it closes (or timeout)."""
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=timeout)
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
