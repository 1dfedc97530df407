"""Tries to open raw and packet sockets (sniffing, spoofing) and a netlink route socket that
could change interfaces. Reports each attempt."""
import socket


def _try(family, kind, proto):
    try:
        s = socket.socket(family, kind, proto)
        s.close()
        return {"ok": True}
    except OSError as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e.strerror}"}


def handler(event, context):
    out = {
        "AF_INET SOCK_RAW ICMP": _try(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
        "AF_INET SOCK_RAW TCP": _try(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP),
        "AF_PACKET SOCK_RAW": _try(socket.AF_PACKET, socket.SOCK_RAW, 0x0300),
    }
    return out
