"""/tmp: bounded by EphemeralStorage, and private to each invocation.

mode 'fill': writes 64 MB files until an error (bounded by event 'limit_mb'), reports how much
             went in and the error that stopped it;
mode 'look': reports what /tmp holds (a later invocation must not see an earlier one's files);
mode 'pair': two concurrent invocations, roles 'a' and 'b': each writes its marker file, then
             they meet over loopback (the function's own network namespace, which its
             concurrent invocations share), so that each lists /tmp at a moment when the other's
             file certainly exists, and neither returns (which ends its /tmp) before the other
             has listed. Each reports its listing; the test looks for the other's file in it."""
import os
import socket
import time

# Inside the function's own network namespace (loopback only): no other service is there.
PAIR_PORT = 47311


def _pair(event):
    marker, role = event["marker"], event["role"]
    deadline = time.monotonic() + float(event.get("wait_s", 20))
    with open(f"/tmp/{marker}-{role}", "w") as f:
        f.write(role)
    if role == "a":
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", PAIR_PORT))
        srv.listen(1)
        srv.settimeout(max(0.1, deadline - time.monotonic()))
        conn, _ = srv.accept()
        srv.close()
    else:
        while True:
            conn = socket.socket()
            try:
                conn.connect(("127.0.0.1", PAIR_PORT))
                break
            except OSError:
                conn.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    conn.settimeout(max(0.1, deadline - time.monotonic()))
    entries = sorted(os.listdir("/tmp"))[:100]
    # Listed: tell the other side, and wait until it has listed too.
    conn.sendall(b"1")
    peer_listed = conn.recv(1) == b"1"
    conn.close()
    return {"entries": entries, "peer_listed": peer_listed, "pid": os.getpid()}


def handler(event, context):
    if event.get("mode") == "look":
        return {"entries": sorted(os.listdir("/tmp"))[:100]}
    if event.get("mode") == "pair":
        return _pair(event)
    marker = event["marker"]
    chunk = b"\xa5" * (4 * 1024 * 1024)
    written, err, errno_ = 0, None, None
    limit = int(event.get("limit_mb", 1024)) * 1024 * 1024
    i = 0
    try:
        while written < limit:
            with open(f"/tmp/{marker}-{i}", "wb") as f:
                for _ in range(16):
                    if written >= limit:
                        break
                    f.write(chunk)
                    f.flush()
                    written += len(chunk)
            i += 1
    except OSError as e:
        err, errno_ = f"{type(e).__name__}: errno {e.errno} {e.strerror}", e.errno
    return {"written_mb": written // (1024 * 1024), "error": err, "errno": errno_}
