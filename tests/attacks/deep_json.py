"""JSON nested 100,000 levels deep, sent to Geysir's own daemons: on the template's control
socket by init code (environment DEEP_INIT=1), and as an invocation's result frame, written on
the invocation's channel directly (event {"result": true}, or "result" in a function URL's
query string), whose "body" the gateway maps. It
reports what it sent; test_attacks.py judges whether the daemons survived."""
import json
import os
import stat

DEPTH = 100_000  # 200 KB: one datagram within the control socket's default send buffer


def _deep(depth):
    return b"[" * depth + b"]" * depth


INIT_SENT = None
if os.environ.get("DEEP_INIT") == "1":
    # fd 3 is the template's control socket (one JSON object per datagram).
    try:
        n = os.write(3, b'{"type":"init_error","init_ms":1,"error":{"errorMessage":' + _deep(DEPTH) + b"}}")
        INIT_SENT = {"ok": True, "bytes": n}
    except OSError as e:
        INIT_SENT = {"ok": False, "error": str(e)}


def _channel():
    """The invocation's channel: the only socket above the standard descriptors."""
    for name in sorted(os.listdir("/proc/self/fd"), key=int):
        fd = int(name)
        if fd <= 2:
            continue
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                return fd
        except OSError:
            pass
    return None


def handler(event, context):
    if isinstance(event, dict) and event.get("nested_result"):
        value = []
        for _ in range(int(event["nested_result"])):  # built iteratively; json.dumps recurses
            value = [value]
        return value
    if event.get("result") or "result" in (event.get("rawQueryString") or ""):
        fd = _channel()
        if fd is None:
            return {"sent": False, "error": "no channel found"}
        body = b'{"statusCode":200,"body":' + _deep(DEPTH) + b"}"
        head = json.dumps({"type": "result", "status": "ok"}).encode()
        data = len(head).to_bytes(4, "big") + len(body).to_bytes(4, "big") + head + body
        view = memoryview(data)
        for _ in range(10_000):  # bounded; a blocking socket takes it in a few writes
            if not view:
                break
            view = view[os.write(fd, view):]
        os._exit(0)  # the frame above is this invocation's result; the runtime must not add one
    return {"init_sent": INIT_SENT, "pid": os.getpid()}
