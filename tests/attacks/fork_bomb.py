"""Forks until the kernel says no (bounded: 5000 tries); children sleep, holding their pid."""
import os
import time


def handler(event, context):
    n, err = 0, None
    for _ in range(int(event.get("max", 5000))):
        try:
            pid = os.fork()
        except OSError as e:
            err = e.errno
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
    return {"forked": n, "errno": err}
