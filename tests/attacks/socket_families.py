"""Tries to open sockets of address families that do not go through the function's network
namespace: AF_VSOCK reaches the hypervisor and the host's vsock services from any namespace;
the others are kernel code a function never needs. Also tries a vsock connection to the host
(CID 2) on a port the test names. Reports each attempt."""
import ctypes
import os
import platform
import socket

FAMILIES = {
    "AF_VSOCK": 40, "AF_ALG": 38, "AF_TIPC": 30, "AF_RDS": 21, "AF_KEY": 15, "AF_BLUETOOTH": 31,
    "AF_CAN": 29, "AF_XDP": 44, "AF_QIPCRTR": 42, "AF_SMC": 43, "AF_PACKET": 17, "AF_APPLETALK": 5,
    "AF_X25": 9, "AF_AX25": 3, "AF_IPX": 4, "AF_MCTP": 45,
}
SYS_SOCKET = {"x86_64": 41, "aarch64": 198}.get(platform.machine())
KINDS = (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET, socket.SOCK_RAW)


def _try(family):
    last = None
    for kind in KINDS:
        try:
            s = socket.socket(family, kind, 0)
            s.close()
            return {"ok": True, "kind": int(kind)}
        except (OSError, OverflowError) as e:
            last = f"{type(e).__name__}: {getattr(e, 'strerror', None) or e}"
    return {"ok": False, "error": last}


def _raw_high_bits():
    """socket(2) itself, with AF_VSOCK in the low 32 bits of the domain and a bit set above them:
    the kernel reads an int (AF_VSOCK); a filter that compared only some bits would be fooled."""
    if SYS_SOCKET is None:
        return {"ok": False, "error": "unknown architecture"}
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(ctypes.c_long(SYS_SOCKET), ctypes.c_long(40 | (1 << 32)), ctypes.c_long(socket.SOCK_STREAM),
                      ctypes.c_long(0))
    if fd < 0:
        e = ctypes.get_errno()
        return {"ok": False, "error": f"{os.strerror(e)} (errno {e})"}
    os.close(fd)
    return {"ok": True}


def handler(event, context):
    out = {name: _try(f) for name, f in FAMILIES.items()}
    out["AF_VSOCK with high bits"] = _raw_high_bits()
    # A real use: the host's vsock address (CID 2), if the family opened.
    try:
        s = socket.socket(40, socket.SOCK_STREAM, 0)
        s.settimeout(1.0)
        try:
            s.connect((2, int(event.get("port", 1024))))
            out["vsock connect host"] = {"ok": True}
        except OSError as e:
            out["vsock connect host"] = {"ok": False, "error": f"{type(e).__name__}: {e.strerror}", "opened": True}
        finally:
            s.close()
    except OSError as e:
        out["vsock connect host"] = {"ok": False, "error": f"{type(e).__name__}: {e.strerror}"}
    # What must keep working.
    for name, fam in (("AF_UNIX", socket.AF_UNIX), ("AF_INET", socket.AF_INET), ("AF_INET6", socket.AF_INET6)):
        out[name] = _try(fam)
    return out
