"""Outputs past Lambda's limits: a result of event["result_mb"] MB (Lambda caps synchronous
responses at 6 MB), and event["log_bytes"] bytes of control characters on stdout (JSON escaping
inflates each six-fold in the scheduler's log batch), followed by the line event["marker"].
It reports nothing itself; test_attacks.py checks what the platform did with it."""
import sys


def handler(event, context):
    n = int(event.get("log_bytes", 0))
    if n:
        for _ in range(n // 50_000):  # lines of 50 KB: each well inside the per-line cap
            sys.stdout.write("\x01" * 50_000 + "\n")
        sys.stdout.flush()
    if event.get("marker"):
        print(event["marker"], flush=True)
    mb = float(event.get("result_mb", 0))
    if mb:
        return "x" * int(mb * 1_000_000)
    return {"ok": True}
