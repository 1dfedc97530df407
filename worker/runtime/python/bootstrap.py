"""Geysir's Python runtime: the template process of one function version.

geysir-worker exec's this file (python -u -s -B -P bootstrap.py) inside the function's sandbox,
as the function's unprivileged user, with the descriptors and messages of docs/wire-formats.md
("Scheduler <-> template"):

  fd 0  /dev/null        fd 1, 2  the init log        fd 3  the control socket (SEQPACKET)

1. Init phase, once: import the handler module (Lambda's init; for a Zappa-packaged function,
   also build Zappa's handler: _warm_zappa_handler), report "ready" or "init_error".
2. Then, for each "fork" request (with a channel and a log descriptor), fork a child that
   serves exactly one invocation and exits (in reuse mode, GEYSIR_EXECUTION_MODE=reuse: one
   invocation after another, until its channel closes); the child reports "forked" itself, the template
   "exited" when it is reaped (in the sandbox the template is PID 1 of its PID namespace and
   reaps orphans too; the scheduler ignores "exited" for pids it never handed out). This loop
   runs in C (libgeysir_child.so's fork server): each page the template writes between two
   forks is copied, and a Python loop wrote ~140 of them.
3. EOF on the control socket: exit (the scheduler kills what is left through cgroups).

Children are cheap because everything they need is built here before the first fork: modules
imported, logging configured, gc.freeze() so the child's collector does not touch (and thus
copy) the template's pages. A child only swaps its stdout/stderr, reads one frame, calls the
handler and writes one frame.
"""

import time

_T0 = time.monotonic()

import base64  # noqa: E402
import collections  # noqa: E402
import decimal  # noqa: E402
import errno  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402

CONTROL_FD = 3
MAX_HEADER = 1 << 20
MAX_BODY = 64 << 20
# Stay well below the scheduler's 256 KiB receive buffer for one control datagram.
MAX_CONTROL_MESSAGE = 200 * 1024

_request_id = ""  # the invocation being served (a child only); read by the log filter
# GEYSIR_EXECUTION_MODE, set by the launcher from the scheduler's typed field and read here,
# before the function's code can change the environment: in "reuse" mode a child serves one
# invocation after another on its channel (Lambda's execution model) instead of exiting.
_REUSE = os.environ.get("GEYSIR_EXECUTION_MODE") == "reuse"
# Set in a restore-mode child (the scheduler asked for it in the fork message): it is brought back
# to its post-start snapshot after every invocation (worker/restore/restore.h) instead of exiting.
_RESTORED = False


# --- Lambda's error shape ------------------------------------------------------------------------

def _error(error_type, message, stack_trace=None, request_id=None):
    err = {"errorMessage": message, "errorType": error_type, "stackTrace": stack_trace or []}
    if request_id is not None:
        err["requestId"] = request_id
    return err


def _user_stack(tb, skip):
    """Lambda's stackTrace: the formatted frames of the user's code, ours and importlib's left out."""
    for _ in range(skip):
        if tb is not None:
            tb = tb.tb_next
    frames = [f for f in traceback.extract_tb(tb) if not f.filename.startswith("<frozen importlib")]
    return traceback.format_list(frames)


def _log_error(err):
    """The error as Lambda writes it to the function's log."""
    text = "[ERROR] %s: %s\nTraceback (most recent call last):\n%s" % (
        err["errorType"], err["errorMessage"], "".join(err["stackTrace"]))
    if not text.endswith("\n"):
        text += "\n"
    sys.stdout.write(text)
    sys.stdout.flush()


# --- logging like Lambda's Python runtime ---------------------------------------------------------

class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _request_id
        return True


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is now: children replace it with their invocation's log."""

    def __init__(self):
        super().__init__(sys.stdout)

    def emit(self, record):
        self.stream = sys.stdout
        super().emit(record)


def _setup_logging():
    # "[INFO]\t2026-11-27T05:30:00.123Z\t<request id>\t<message>", UTC, on the root logger, whose
    # level stays at the default (WARNING) as on Lambda: logger.setLevel(INFO) is the user's call.
    logging.Formatter.converter = time.gmtime
    handler = _StdoutHandler()
    handler.terminator = ""
    handler.setFormatter(logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
        "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(_RequestIdFilter())
    logging.getLogger().addHandler(handler)


# --- init: loading the handler --------------------------------------------------------------------

class _InitError(Exception):
    def __init__(self, err):
        super().__init__(err["errorMessage"])
        self.err = err


def _load_handler(handler_name):
    try:
        module_path, function_name = handler_name.rsplit(".", 1)
    except ValueError as e:
        raise _InitError(_error("Runtime.MalformedHandlerName", "Bad handler '%s': %s" % (handler_name, e)))
    # Lambda accepts "dir/module.function" as well as dotted packages.
    module_path = module_path.replace("/", ".")
    if not module_path or not function_name:
        raise _InitError(_error("Runtime.MalformedHandlerName", "Bad handler '%s'" % handler_name))
    try:
        module = importlib.import_module(module_path)
    except Exception as e:
        raise _InitError(_module_error(module_path, e))
    handler = getattr(module, function_name, None)
    if handler is None:
        raise _InitError(_error("Runtime.HandlerNotFound",
                                "Handler '%s' missing on module '%s'" % (function_name, module_path)))
    _warm_zappa_handler(module, module_path)
    return handler


def _module_error(module_path, e):
    """Lambda's init error for an exception raised while the handler's module loads."""
    if isinstance(e, ImportError):
        return _error("Runtime.ImportModuleError", "Unable to import module '%s': %s" % (module_path, e))
    if isinstance(e, SyntaxError):
        trace = ['  File "%s" Line %s\n    %s\n' % (e.filename, e.lineno, (e.text or "").strip())]
        return _error("Runtime.UserCodeSyntaxError", "Syntax error in module '%s': %s" % (module_path, e), trace)
    # An exception raised by the module's own top-level code.
    return _error(type(e).__name__, str(e), _user_stack(e.__traceback__, 1))


# --- Zappa: its handler built once, in the template ----------------------------------------------
#
# Zappa's handler module (handler.lambda_handler at the root of the zip it builds) keeps its
# state in a singleton class, LambdaHandler: the first LambdaHandler() loads zappa_settings
# (a module Zappa writes at the root of the zip) and builds the app -- a WSGI app's module
# imported, or Django set up -- and every later LambdaHandler() returns that instance. Its
# module-level lambda_handler makes one per call unless INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT
# made it at import. Here a child serves one invocation and exits, so an instance built in
# the child dies with it: every request would print "Instancing.." and build the app again
# (0.7-1.2 s for a Flask app). Built here, in the template, before the fork loop, every child
# (and every worker) inherits the instance, as the on-import setting would give, without the
# user setting it and without a variable the function's code would see.
#
# A function is taken for Zappa's when both hold: LAMBDA_TASK_ROOT has a file zappa_settings.py,
# and the handler's module has a class LambdaHandler with a lambda_handler attribute. What the
# instance prints is init log; an exception is an init error, shaped as if the module had
# raised it at import (which is where Zappa's on-import setting raises it).

def _warm_zappa_handler(module, module_path):
    task_root = os.environ.get("LAMBDA_TASK_ROOT")
    if not task_root or not os.path.isfile(os.path.join(task_root, "zappa_settings.py")):
        return
    cls = getattr(module, "LambdaHandler", None)
    if not isinstance(cls, type) or not hasattr(cls, "lambda_handler"):
        return
    try:
        cls()
    except Exception as e:
        raise _InitError(_module_error(module_path, e))


# --- the context object ---------------------------------------------------------------------------

class CognitoIdentity(object):
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __init__(self, identity_id=None, pool_id=None):
        self.cognito_identity_id = identity_id
        self.cognito_identity_pool_id = pool_id


class Client(object):
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]

    def __init__(self, d):
        for k in self.__slots__:
            setattr(self, k, d.get(k))


class ClientContext(object):
    __slots__ = ["custom", "env", "client"]

    def __init__(self, d):
        self.custom = d.get("custom")
        self.env = d.get("env")
        client = d.get("client")
        self.client = Client(client) if isinstance(client, dict) else None


# The per-function fields of the context, read from the environment once in the template
# (after the init phase, like Lambda, which reads them at invocation time from the same
# unchanging variables), so a child does not decode them again.
_function_fields = {}


def _capture_function_fields():
    env = os.environ
    _function_fields.update(
        function_name=env.get("AWS_LAMBDA_FUNCTION_NAME"),
        function_version=env.get("AWS_LAMBDA_FUNCTION_VERSION"),
        # A string, as on Lambda (its runtime reads it from the environment too).
        memory_limit_in_mb=env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        log_group_name=env.get("AWS_LAMBDA_LOG_GROUP_NAME"),
        log_stream_name=env.get("AWS_LAMBDA_LOG_STREAM_NAME"))


class LambdaContext(object):
    def __init__(self, request_id, invoked_function_arn, deadline_ms, client_context):
        self.__dict__.update(_function_fields)
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.identity = CognitoIdentity()
        self.client_context = client_context
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        left = self._deadline_ms - int(time.time() * 1000)
        return left if left > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return ("LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,function_name=%s,"
                "memory_limit_in_mb=%s,function_version=%s,invoked_function_arn=%s,client_context=%s,"
                "identity=%s])" % (self.aws_request_id, self.log_group_name, self.log_stream_name,
                                   self.function_name, self.memory_limit_in_mb, self.function_version,
                                   self.invoked_function_arn, self.client_context, self.identity))


def _client_context(b64):
    if not b64:
        return None
    try:
        d = json.loads(base64.b64decode(b64))
    except (ValueError, TypeError):
        return None
    return ClientContext(d) if isinstance(d, dict) else None


# --- frames on a child's channel ------------------------------------------------------------------

def _read_exact(fd, n):
    chunks = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd):
    """(header, body); (None, b"") at EOF before any byte; (None, None) for a bad frame."""
    first = os.read(fd, 8)
    if not first:
        return None, b""
    rest = _read_exact(fd, 8 - len(first)) if len(first) < 8 else b""
    if rest is None:
        return None, None
    prefix = first + rest
    hlen, blen = struct.unpack(">II", prefix)
    if not 1 <= hlen <= MAX_HEADER or blen > MAX_BODY:
        return None, None
    header = _read_exact(fd, hlen)
    body = _read_exact(fd, blen) if blen else b""
    if header is None or body is None:
        return None, None
    try:
        header = json.loads(header)
    except ValueError:
        return None, None
    if not isinstance(header, dict):
        return None, None
    return header, body


def _write_frame(fd, header, body):
    h = json.dumps(header, separators=(",", ":")).encode()
    data = struct.pack(">II", len(h), len(body)) + h + body
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _json_default(o):
    if isinstance(o, decimal.Decimal):
        return float(o)
    raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)


# --- entering a child: its own /tmp, and a Landlock scope (libgeysir_child.so) --------------------
#
# Right after the fork, before any of the function's code runs in it, a child takes the steps
# below. They are made in C by libgeysir_child.so (worker/runtime/child_enter.c), which the
# template loads once and arms (its fork loop, fork_server.c, arms it before each fork): glibc's
# fork runs them in the new child (an atfork handler) before fork() returns there, and the
# child only reads the outcome. (Every ctypes call made
# in a new child costs it copy-on-write faults: ~0.7 ms a call on the CI VM, 2-3.5 ms for these
# steps; in C they take ~0.25 ms, Landlock included.)
#
#   private /tmp (asked by the scheduler's "fork" message when the sandbox is on): unshare a user
#     namespace, a mount namespace and an IPC namespace (the one combination the sandbox's
#     seccomp filter lets through; the IPC namespace keeps SysV/POSIX IPC to the invocation), set that user namespace's user.max_user_namespaces to 0 (no further user
#     namespace, ever), and drop every capability it gave. The scheduler then writes the
#     child's uid/gid maps and mounts a fresh tmpfs of the function's EphemeralStorage on its /tmp before handing it work
#     (worker/private_tmp.h). A host without unprivileged user namespaces refuses the unshare:
#     the child keeps the template's /tmp (the scheduler sees it and logs it).
#   Landlock scope (Linux >= 6.12, ABI 6): children of one function share its uid and PID
#     namespace, so plain kill() would let one invocation stop another, or the template. As a
#     Landlock domain of its own, a process may only signal (and ptrace, and connect to abstract
#     unix sockets of) processes in its domain -- itself and what it starts. Needs no_new_privs,
#     which the launcher set. Skipped on older kernels (worker/sandbox/README.md).

_CHILD_PRIVATE_TMP = 1
_CHILD_LANDLOCK = 2
_CHILD_STAGES = {1: "unshare", 2: "capset", 3: "user.max_user_namespaces", 4: "landlock_create_ruleset",
                 5: "landlock_restrict_self"}
_LANDLOCK_CREATE_RULESET = 444
# libgeysir_child.so once loaded (a _ChildLib), or why it could not be (a str).
_ChildLib = collections.namedtuple("_ChildLib", "arm landlock error stage serve out announce reset")
_child_enter = None


def _child_enter_prepare():
    """In the template, once, before the function's code (which may replace ctypes, not our copy)."""
    global _child_enter
    try:
        import ctypes
        lib = ctypes.CDLL(os.path.join(os.path.dirname(os.path.abspath(__file__)), "libgeysir_child.so"))
        libc = ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError) as e:
        _child_enter = "could not load libgeysir_child.so: %s" % e
        return
    # LANDLOCK_CREATE_RULESET_VERSION (flag 1) returns the ABI version; scoping is ABI 6.
    abi = libc.syscall(ctypes.c_long(_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    landlock = _CHILD_LANDLOCK if abi >= 6 else 0
    arm = lib.geysir_child_arm
    arm.argtypes = (ctypes.c_int,)
    arm.restype = ctypes.c_int
    # The fork loop through PyDLL: called with the GIL held (it releases it while it waits, and
    # forks the way os.fork does). The same loaded library, a second handle.
    server = ctypes.PyDLL(lib._name).geysir_fork_server
    server.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int64))
    server.restype = ctypes.c_int
    announce = lib.geysir_restore_announce
    announce.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
    announce.restype = ctypes.c_int
    reset = lib.geysir_restore_reset
    reset.argtypes = ()
    reset.restype = ctypes.c_int
    _child_enter = _ChildLib(arm, landlock, ctypes.c_int.in_dll(lib, "geysir_child_error"),
                             ctypes.c_int.in_dll(lib, "geysir_child_stage"), server, (ctypes.c_int64 * 4)(),
                             announce, reset)


def _child_entered():
    """In a new child, before it announces itself. Raises OSError when a step failed."""
    if isinstance(_child_enter, str):
        raise OSError(errno.ENOENT, _child_enter)
    if _child_enter is None:
        return
    err = _child_enter.error.value
    if err != 0:
        stage = _child_enter.stage.value
        raise OSError(err, "%s: %s" % (_CHILD_STAGES.get(stage, "step %d" % stage), os.strerror(err)))


# --- the child: one invocation --------------------------------------------------------------------

# A header shaped like the scheduler's invoke header (docs/wire-formats.md), for the warm-up.
_WARM_HEADER = (b'{"type":"invoke","request_id":"00000000-0000-0000-0000-000000000000","deadline_ms":0,'
                b'"function_arn":"arn:aws:lambda:us-east-1:000000000000:function:warm-up","client_context_b64":""}')


def _warm_request_path():
    """In a new child, before it waits for its invocation: run what serving one runs around the
    handler (the JSON decoder and encoder, a context, a trace id, the frame's packing) on
    throwaway values. The pages those touch are copied now, while a pre-forked child waits,
    instead of while a request does: on the CI VM each copy is a ~45-78 us fault, ~60 of them.
    Nothing it builds is kept or written anywhere; _X_AMZN_TRACE_ID is set again per request."""
    header = json.loads(_WARM_HEADER)
    context = LambdaContext(str(header.get("request_id", "")), header.get("function_arn") or "",
                            int(time.time() * 1000), _client_context(header.get("client_context_b64")))
    context.get_remaining_time_in_millis()
    os.environ["_X_AMZN_TRACE_ID"] = "Root=1-%08x-%s;Parent=%s;Sampled=0" % (
        int(time.time()), os.urandom(12).hex(), os.urandom(8).hex())
    event = json.loads(b'{"warm":"up"}')
    payload = json.dumps({"statusCode": 200, "body": event["warm"]}, default=_json_default).encode()
    head = json.dumps({"type": "result", "status": "ok"}, separators=(",", ":")).encode()
    struct.pack(">II", len(head), len(payload))


def _child(handler, channel_fd, log_fd, ctrl_fd, child_no, closing, restore):
    global _RESTORED
    setup_error = None
    try:
        _child_entered()
    except OSError as e:
        setup_error = "could not set the child up (its own /tmp, its Landlock scope): %s" % e
    # The child announces itself: the scheduler reads its pid from the credentials the kernel
    # attaches (SO_PASSCRED), which is right even across the sandbox's PID namespace; "pid" is
    # the pid as seen here, the one the template's "exited" will name. In restore mode the
    # message carries the userfaultfd the scheduler tracks this process's writes with, and
    # "channel_fd" names the descriptor it will be parked reading (worker/restore/restore.h).
    message = {"type": "forked", "child": child_no, "pid": os.getpid()}
    if restore:
        message["channel_fd"] = channel_fd
    data = json.dumps(message, separators=(",", ":")).encode()
    if restore and setup_error is None:
        rc = _child_enter.announce(ctrl_fd, data, len(data))
        if rc != 0:
            os.write(log_fd, ("geysir: could not hand over this worker's memory tracking: %s\n"
                              % os.strerror(rc)).encode())
            os._exit(1)
        _RESTORED = True
    else:
        try:
            os.write(ctrl_fd, data)
        except OSError:
            os._exit(1)
    if setup_error is not None:
        # Without its own /tmp or its scope a child takes no work. Announced all the same, so
        # that the scheduler sees it die rather than wait for it.
        os.write(log_fd, ("geysir: %s\n" % setup_error).encode())
        os._exit(1)
    for fd in closing:
        try:
            os.close(fd)
        except OSError:
            pass
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # The invocation's log becomes stdout and stderr, line-buffered: a line is one write.
    # The existing wrappers (raw, write-through under -u) are reconfigured rather than replaced:
    # new io objects would cost the child copy-on-write faults on every page they touch.
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    if log_fd > 2:
        os.close(log_fd)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True, write_through=False)
        except (AttributeError, ValueError, io.UnsupportedOperation):
            pass  # replaced by the function's code at import time: leave it as it is
    _warm_request_path()
    code = 0
    try:
        while True:
            header, body = _read_frame(channel_fd)
            if header is None:
                # EOF before a frame: the scheduler dismissed this child (exit 0); a malformed
                # frame is an error (exit 1).
                code = 0 if body == b"" else 1
                return
            exit_code = _invoke(handler, channel_fd, header, body)
            if exit_code is not None:
                code = exit_code
                return
            if not _REUSE and not _RESTORED:
                return
            # Restore mode: the next read parks this process; the scheduler brings it back to
            # its snapshot (taken in that same read) before it sends the next invocation.
    except BaseException:  # our own failure (a broken channel): say so in the log, exit non-zero
        code = 1
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        _flush_log()
        os._exit(code)


def _flush_log():
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass


def _result(channel_fd, status, payload):
    # The invocation's log first: once the scheduler has the result it drains the log pipe
    # without waiting for more (in reuse mode there is no EOF to wait for).
    _flush_log()
    _write_frame(channel_fd, {"type": "result", "status": status}, payload)


def _reseed():
    """Restore mode, first thing in each invocation (geysir_restore_reset aside, below): every
    invocation starts from the same snapshot, so every pseudo-random
    generator in memory would replay the same sequence in each. The ones a function uses without
    creating them are reseeded from the kernel's entropy first: `random`'s module-level
    generator, OpenSSL's (through the ssl module) and numpy's legacy global one, when loaded.
    (A fork-mode child has the same need, met by the new pid for OpenSSL; generators a function
    created itself at init replay in both modes: docs/security.md.)"""
    # First the timers and process settings the restorer leaves to the runtime (child_enter.c).
    _child_enter.reset()
    rnd = sys.modules.get("random")
    if rnd is not None:
        rnd.seed()
    ssl = sys.modules.get("ssl")
    if ssl is not None:
        ssl.RAND_add(os.urandom(32), 32.0)
    np_random = sys.modules.get("numpy.random")
    if np_random is not None:
        try:
            np_random.seed()
        except Exception:  # a numpy without the legacy API: nothing of ours to reseed
            pass


def _invoke(handler, channel_fd, header, body):
    """Serves one invoke frame: writes its result (or error) frame. Returns None, or the exit
    status the handler asked for (SystemExit: no result; the scheduler reports
    Runtime.ExitError from the exit status)."""
    global _request_id
    if _RESTORED:
        _reseed()
    _request_id = request_id = str(header.get("request_id", ""))
    deadline_ms = header.get("deadline_ms")
    if not isinstance(deadline_ms, (int, float)):
        deadline_ms = int(time.time() * 1000) + 3000
    arn = header.get("function_arn") or ""
    trace_id = header.get("trace_id")
    if not trace_id:
        now = int(time.time())
        trace_id = "Root=1-%08x-%s;Parent=%s;Sampled=0" % (now, os.urandom(12).hex(), os.urandom(8).hex())
    os.environ["_X_AMZN_TRACE_ID"] = trace_id
    context = LambdaContext(request_id, arn, int(deadline_ms), _client_context(header.get("client_context_b64")))
    try:
        # An Invoke without a payload reaches the handler as {} on Lambda.
        event = json.loads(body) if body else {}
    except (ValueError, RecursionError) as e:
        # RecursionError: an event nested deeper than the interpreter's recursion limit
        # (10^5 levels) is bad input like any other, not a crash of the runtime.
        err = _error("Runtime.UnmarshalError", "Unable to unmarshal input: %s" % e, [], request_id)
        _log_error(err)
        _result(channel_fd, "error", json.dumps(err).encode())
        return None
    try:
        result = handler(event, context)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    except Exception as e:
        err = _error(type(e).__name__, str(e), _user_stack(e.__traceback__, 1), request_id)
        _log_error(err)
        _result(channel_fd, "error", json.dumps(err).encode())
        return None
    try:
        payload = json.dumps(result, default=_json_default).encode()
    except (TypeError, ValueError, OverflowError, RecursionError) as e:
        err = _error("Runtime.MarshalError", "Unable to marshal response: %s" % e, [], request_id)
        _log_error(err)
        _result(channel_fd, "error", json.dumps(err).encode())
        return None
    _result(channel_fd, "ok", payload)
    return None


# --- the template: the control loop ---------------------------------------------------------------

def _send(ctrl, message):
    try:
        ctrl.send(json.dumps(message, separators=(",", ":")).encode())
    except (BrokenPipeError, ConnectionResetError):
        pass  # the scheduler is gone: the fork loop reads EOF and the template exits


def _serve(ctrl, handler):
    """The template's loop: libgeysir_child.so's geysir_fork_server (worker/runtime/fork_server.c)
    reads the scheduler's fork messages, forks, reaps and reports exits, in C: a loop in Python
    wrote ~140 pages between two forks, each then copied (~11 ms of CPU per fork on the CI VM).
    It returns in each new child (which serves one invocation and exits), and in the template
    when the scheduler closed the control socket."""
    # In the sandbox the template is PID 1 of its namespace: the kernel drops signals from
    # inside the namespace that PID 1 leaves at their default, so a child cannot stop the
    # template with SIGINT (Python's own handler would raise KeyboardInterrupt here). Children
    # put Python's handler back.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if not isinstance(_child_enter, _ChildLib):
        raise OSError(errno.ENOENT, "the fork loop is in libgeysir_child.so: %s" % _child_enter)
    out = _child_enter.out
    ctrl_fd = ctrl.fileno()
    rc = _child_enter.serve(ctrl_fd, _child_enter.landlock, out)
    if rc < 0:
        raise OSError(-rc, "geysir_fork_server: %s" % os.strerror(-rc))
    if rc == 1:
        _child(handler, int(out[0]), int(out[1]), ctrl_fd, int(out[2]), (ctrl_fd,), bool(out[3]))


# Enough calls for CPython 3.11 to quicken the code objects on the request path and specialise
# their instructions (8 calls to quicken, then a first attempt per adaptive instruction):
# measured, 20 runs gave what 200 did.
_QUICKEN_RUNS = 24


def _quicken_request_path():
    """In the template, after the init phase: run the runtime's own request path (_warm_request_path,
    on throwaway values) until CPython has quickened and specialised its code. Until then each
    call of a function writes into its code object (a warm-up counter, then the counters of its
    adaptive instructions), and a write in a child copies the page: done once here, the children
    inherit the finished code and leave those pages shared (hello: ~410 -> ~370 copied pages a
    child). The function's own code is never run here: only the runtime's. The environment is
    left as it was (the warm-up sets _X_AMZN_TRACE_ID, which a child sets per invocation)."""
    saved = os.environ.get("_X_AMZN_TRACE_ID")
    for _ in range(_QUICKEN_RUNS):
        _warm_request_path()
    if saved is None:
        del os.environ["_X_AMZN_TRACE_ID"]
    else:
        os.environ["_X_AMZN_TRACE_ID"] = saved
    _quicken_threading_reset()


def _quicken_threading_reset():
    """The same for the first Python code every child runs: threading's at-fork hook
    (threading._after_fork; the runtime imports threading through logging), which resets the
    module's bookkeeping to the one thread that survived the fork. Run here it quickens that code
    for the children (~35 fewer copied pages a child, measured in forks of a python3.11 that
    imports logging: 248 -> 214). Only while the template has no other thread: then the reset
    changes nothing here (the calling thread is the main thread and stays it; no other thread is
    alive to be marked stopped). A template whose init started threads keeps them untouched, and
    an interpreter without the hook (another Python) is left alone."""
    import threading
    reset = getattr(threading, "_after_fork", None)
    if reset is None or threading.active_count() != 1 or threading.current_thread() is not threading.main_thread():
        return
    for _ in range(_QUICKEN_RUNS):
        reset()


def main():
    ctrl = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=CONTROL_FD)
    task_root = os.environ.get("LAMBDA_TASK_ROOT")
    # The code directory comes first on sys.path, whatever PYTHONPATH the function configured.
    if task_root and task_root not in sys.path:
        sys.path.insert(0, task_root)
    _setup_logging()
    _child_enter_prepare()  # before the function's code: it may replace ctypes, not our copy
    try:
        handler = _load_handler(os.environ.get("_HANDLER", ""))
    except _InitError as e:
        init_ms = (time.monotonic() - _T0) * 1000.0
        err = e.err
        _log_error(err)
        message = {"type": "init_error", "init_ms": round(init_ms, 3), "error": err}
        while len(json.dumps(message)) > MAX_CONTROL_MESSAGE and err["stackTrace"]:
            err["stackTrace"] = err["stackTrace"][:-1]
        if len(json.dumps(message)) > MAX_CONTROL_MESSAGE:
            err["errorMessage"] = err["errorMessage"][:4096]
        try:
            _send(ctrl, message)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
    _capture_function_fields()
    _quicken_request_path()
    # Everything allocated so far is shared with the children: freezing it keeps their garbage
    # collector from writing to (and so copying) these pages.
    gc.collect()
    gc.freeze()
    init_ms = (time.monotonic() - _T0) * 1000.0
    _send(ctrl, {"type": "ready", "init_ms": round(init_ms, 3)})
    try:
        _serve(ctrl, handler)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
