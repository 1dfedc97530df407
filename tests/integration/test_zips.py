"""Every hostile zip is refused with a clear 400 and leaves nothing behind (no function, no code)."""
import io
import os
import stat
import zipfile

import botocore.exceptions
import pytest

from conftest import ROLE, make_zip

HANDLER = 'def handler(e, c):\n    return 1\n'


def bomb_zip():
    """One entry that inflates to 300 MB (over the 250 MB unzipped limit) from ~300 KB."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("app.py", HANDLER)
        with z.open("zeros.bin", "w", force_zip64=True) as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(300):
                f.write(chunk)
    return buf.getvalue()


def lying_size_zip():
    """A small file whose header claims 1 byte but inflates to 64 MB: the extractor must count
    what it actually inflates, not trust the header."""
    data = b"\0" * (64 << 20)
    good = make_zip({"app.py": HANDLER, "x.bin": data})
    # Rewrite the uncompressed size of x.bin in both the local header and the central directory.
    out = bytearray(good)
    z = zipfile.ZipFile(io.BytesIO(good))
    info = z.getinfo("x.bin")
    lh = info.header_offset
    assert out[lh:lh + 4] == b"PK\x03\x04"
    out[lh + 22:lh + 26] = (1).to_bytes(4, "little")
    cd = out.find(b"PK\x01\x02")
    while cd != -1:
        name_len = int.from_bytes(out[cd + 28:cd + 30], "little")
        if bytes(out[cd + 46:cd + 46 + name_len]) == b"x.bin":
            out[cd + 24:cd + 28] = (1).to_bytes(4, "little")
            break
        cd = out.find(b"PK\x01\x02", cd + 4)
    return bytes(out)


HOSTILE = {
    "traversal": lambda: make_zip({"app.py": HANDLER, "../../../../tmp/geysir-evil-traversal.py": "x"}),
    "traversal-inner": lambda: make_zip({"app.py": HANDLER, "lib/../../geysir-evil.py": "x"}),
    "absolute": lambda: make_zip({"app.py": HANDLER, "/tmp/geysir-evil-absolute.py": "x"}),
    "symlink-out": lambda: make_zip({"app.py": HANDLER}, symlinks={"etc": "/etc"}),
    "symlink-up": lambda: make_zip({"app.py": HANDLER}, symlinks={"up": "../../../../"}),
    "bomb": bomb_zip,
    "lying-size": lying_size_zip,
    "corrupt": lambda: b"PK\x03\x04" + os.urandom(2000),
    "truncated": lambda: make_zip({"app.py": HANDLER * 50, "b.py": "y" * 5000})[:-40],
    "not-a-zip": lambda: b"this is plain text, not a zip archive",
    "empty": lambda: b"",
}


def store_snapshot(data_dir):
    """Every path under code/ and tmp/: a refused deploy must not add any."""
    paths = set()
    for sub in ("code", "tmp"):
        root = os.path.join(data_dir, sub)
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                paths.add(os.path.join(dirpath, n))
    return paths


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_zip_refused(server, lam, fn_name, kind):
    blob = HOSTILE[kind]()
    before = store_snapshot(server.data_dir)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.create_function(FunctionName=fn_name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                            Code={"ZipFile": blob})
    resp = e.value.response
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 400, resp
    assert resp["Error"]["Code"] == "InvalidParameterValueException", resp
    assert resp["Error"]["Message"], "the 400 must say what was wrong"
    # A zip that reaches the extractor is refused in Lambda's words: its own, or Geysir's reason
    # introduced as Lambda introduces a bad upload. (An empty one is refused before: no package.)
    message = resp["Error"]["Message"]
    if kind != "empty":
        assert message.startswith("Could not unzip uploaded file") or \
            message.startswith("Unzipped size must be smaller than"), resp
    assert fn_name not in [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    assert store_snapshot(server.data_dir) == before, "a refused zip left files in the code store"
    assert not os.path.exists("/tmp/geysir-evil-traversal.py")
    assert not os.path.exists("/tmp/geysir-evil-absolute.py")


def test_hostile_update_keeps_old_code(server, lam, fn_name):
    server.create(lam, fn_name, {"app.py": 'def handler(e, c):\n    return "old"\n'})
    before = store_snapshot(server.data_dir)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.update_function_code(FunctionName=fn_name, ZipFile=HOSTILE["traversal"]())
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert store_snapshot(server.data_dir) == before
    assert lam.invoke(FunctionName=fn_name)["Payload"].read() == b'"old"'


def test_code_is_read_only_and_shared(server, lam, fn_name):
    files = {"app.py": 'def handler(e, c):\n    return "same"\n'}
    server.create(lam, fn_name, files)
    sha = lam.get_function_configuration(FunctionName=fn_name)["CodeSha256"]
    code_root = os.path.join(server.data_dir, "code")
    import base64
    hexsha = base64.b64decode(sha).hex()
    d = os.path.join(code_root, hexsha)
    assert os.path.isdir(d)
    assert stat.S_IMODE(os.stat(d).st_mode) & 0o222 == 0, "unpacked code must be read-only"
    assert stat.S_IMODE(os.stat(os.path.join(d, "app.py")).st_mode) & 0o222 == 0
