"""Allocates (and touches) far more memory than its MemorySize, 16 MB at a time."""


def handler(event, context):
    blocks = []
    for _ in range(int(event.get("blocks", 64))):
        blocks.append(bytearray(16 * 1024 * 1024))  # zero-filled: every page is touched
    return {"allocated_mb": 16 * len(blocks)}
