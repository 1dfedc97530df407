"""Leaves processes behind after answering: a plain child, a setsid'd daemon (double fork) and
a child that ignores SIGTERM/SIGHUP, each carrying the event's marker on its command line so
the test can look for them on the host."""
import os
import subprocess
import sys

SLEEPER = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nsignal.signal(signal.SIGHUP, signal.SIG_IGN)\ntime.sleep(60)\n"


def handler(event, context):
    marker = event["marker"]
    subprocess.Popen([sys.executable, "-c", SLEEPER, marker, "plain"])
    subprocess.Popen([sys.executable, "-c", SLEEPER, marker, "session"], start_new_session=True)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", SLEEPER, marker, "daemon"])
        os._exit(0)
    os.waitpid(pid, 0)
    return {"left": 3}
