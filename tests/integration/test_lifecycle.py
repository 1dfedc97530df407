"""Deploy -> invoke -> URL -> update -> URL serves new code -> delete, through boto3 and curl."""
import json
import os
import stat
import urllib.request

import botocore.exceptions
import pytest

from conftest import ROLE, curl, make_zip

V1 = 'def handler(event, context):\n    return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "v1 " + event.get("rawPath", "-")}\n'
V2 = 'def handler(event, context):\n    return {"statusCode": 201, "headers": {"x-version": "2"}, "body": "v2"}\n'


def test_server_layout(server):
    d = server.data_dir
    mode = os.stat(server.credentials_file).st_mode
    assert stat.S_IMODE(mode) == 0o600, oct(mode)
    with open(server.credentials_file) as f:
        text = f.read()
    assert "aws_access_key_id" in text and "aws_secret_access_key" in text
    run = os.stat(os.path.join(d, "run"))
    assert stat.S_IMODE(run.st_mode) == 0o2750, oct(run.st_mode)
    assert stat.S_IMODE(os.stat(os.path.join(d, "tmp")).st_mode) == 0o700
    assert os.path.exists(os.path.join(d, "geysir.db"))
    for key in ("pid", "http_port", "control_port", "host", "control_endpoint", "base_domain", "credentials_file"):
        assert key in server.info
    assert server.info["pid"] == server.proc.pid
    status, body = curl(f"http://127.0.0.1:{server.http_port}/healthz")
    assert status == 200, body


def test_full_lifecycle(server, lam, fn_name):
    url = server.create(lam, fn_name, {"app.py": V1}, url=True, MemorySize=128, Timeout=5)
    assert url.startswith("http://") and ".lambda-url.localhost:" in url and url.endswith("/")
    assert url.rstrip("/").endswith(str(server.http_port))

    # Invoke through the API.
    r = lam.invoke(FunctionName=fn_name, Payload=json.dumps({"rawPath": "/api"}).encode())
    assert r["StatusCode"] == 200
    assert "FunctionError" not in r
    assert json.loads(r["Payload"].read())["body"] == "v1 /api"

    # Through the function URL with real curl (*.localhost resolves to loopback).
    server.wait_url_status(url, 200)
    status, body = curl(url + "hello/world?x=1")
    assert status == 200
    assert body == "v1 /hello/world"

    # Configuration views.
    cfg = lam.get_function_configuration(FunctionName=fn_name)
    assert cfg["State"] == "Active" and cfg["LastUpdateStatus"] == "Successful"
    assert cfg["Handler"] == "app.handler" and cfg["Runtime"] == "python3.11"
    assert cfg["MemorySize"] == 128 and cfg["Timeout"] == 5
    got = lam.get_function(FunctionName=fn_name)
    assert got["Configuration"]["FunctionName"] == fn_name
    loc = got["Code"]["Location"]
    with urllib.request.urlopen(loc, timeout=10) as resp:
        blob = resp.read()
    assert blob.startswith(b"PK"), "Code.Location must serve the uploaded zip"
    names = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    assert fn_name in names
    urls = lam.list_function_url_configs(FunctionName=fn_name)["FunctionUrlConfigs"]
    assert [u["FunctionUrl"] for u in urls] == [url]
    assert lam.get_function_url_config(FunctionName=fn_name)["AuthType"] == "NONE"

    # A duplicate create conflicts and changes nothing.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.create_function(FunctionName=fn_name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                            Code={"ZipFile": make_zip({"app.py": V2})})
    assert e.value.response["Error"]["Code"] == "ResourceConflictException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409

    # Update the code: the URL serves the new code (the old template is not reused).
    old_sha = cfg["CodeSha256"]
    new = lam.update_function_code(FunctionName=fn_name, ZipFile=make_zip({"app.py": V2}))
    assert new["CodeSha256"] != old_sha
    server.wait_active(lam, fn_name)
    status, _, body = server.wait_url_status(url, 201)
    assert body == b"v2"
    status, headers, _ = server.url_request(url)
    assert headers.get("x-version") == "2"

    # Delete: API and URL both forget it.
    lam.delete_function(FunctionName=fn_name)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.get_function(FunctionName=fn_name)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.invoke(FunctionName=fn_name, Payload=b"{}")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    status, _, body = server.wait_url_status(url, 404)
    json.loads(body)  # a short JSON body


def test_update_configuration(server, lam, fn_name):
    src = ('import os\n'
           'def handler(event, context):\n'
           '    return {"greeting": os.environ.get("GREETING"), "mem": int(context.memory_limit_in_mb)}\n')
    server.create(lam, fn_name, {"app.py": src}, Environment={"Variables": {"GREETING": "hi"}})
    assert json.loads(lam.invoke(FunctionName=fn_name)["Payload"].read()) == {"greeting": "hi", "mem": 128}
    lam.update_function_configuration(FunctionName=fn_name, MemorySize=256,
                                      Environment={"Variables": {"GREETING": "hello"}})
    server.wait_active(lam, fn_name)
    out = json.loads(lam.invoke(FunctionName=fn_name)["Payload"].read())
    assert out == {"greeting": "hello", "mem": 256}


def test_dry_run_and_missing(server, lam, fn_name):
    server.create(lam, fn_name, {"app.py": V1})
    r = lam.invoke(FunctionName=fn_name, InvocationType="DryRun")
    assert r["StatusCode"] == 204
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.invoke(FunctionName="no-such-function-xyz", Payload=b"{}")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.create_function(FunctionName="bad name!", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                            Code={"ZipFile": make_zip({"app.py": V1})})
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_unknown_function_url_is_404(server):
    status, body = curl(f"http://nosuchurlid0000000000000000000.lambda-url.localhost:{server.http_port}/")
    assert status == 404
    json.loads(body)
