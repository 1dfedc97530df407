"""The function every attack test checks afterwards: the platform must still serve it."""
import os


def handler(event, context):
    return {"ok": True, "n": event.get("n") if isinstance(event, dict) else None, "pid": os.getpid()}
