"""Writes to /tmp until an error (bounded by event 'limit_mb'), then lists /tmp.

mode 'fill': writes 64 MB files, reports how much went in and the error that stopped it;
mode 'look': reports what /tmp holds (a later invocation must not see an earlier one's files)."""
import os


def handler(event, context):
    if event.get("mode") == "look":
        return {"entries": sorted(os.listdir("/tmp"))[:100]}
    marker = event["marker"]
    chunk = b"\xa5" * (4 * 1024 * 1024)
    written, err = 0, None
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
        err = f"{type(e).__name__}: errno {e.errno} {e.strerror}"
    return {"written_mb": written // (1024 * 1024), "error": err}
