"""Opens TCP connections to the (host, port) pairs in the event and reports which connected.

Used both as an attack (reach control, the gateway, a host service over loopback or the host's
addresses) and, for functions in `egress` mode, as the probe of what is allowed. A connection
that succeeds also sends one HTTP request so the test can see the far end answered."""
import socket
import time


def _connect(host, port, timeout):
    t0 = time.monotonic()
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        try:
            first = s.recv(64).decode("latin-1")
        except OSError:
            first = ""
        return {"connected": True, "reply": first, "ms": int((time.monotonic() - t0) * 1000)}
    except OSError as e:
        return {"connected": False, "error": f"{type(e).__name__}: {e.strerror or e}",
                "ms": int((time.monotonic() - t0) * 1000)}
    finally:
        s.close()


def handler(event, context):
    timeout = float(event.get("timeout", 1.0))
    return {f"{h}:{p}": _connect(h, int(p), timeout) for h, p in event.get("targets", [])[:40]}
