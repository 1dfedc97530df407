"""Real command-line clients: Debian's AWS CLI v2 and our `geysir` CLI."""
import base64
import json
import re

from conftest import ROLE, curl, make_zip, unique, wait_until

HELLO = ('def handler(event, context):\n'
         '    print("cli-log-marker", event.get("who"))\n'
         '    return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "hi " + str(event.get("who"))}\n')


def test_aws_cli_v2(server, tmp_path):
    name = unique("it-awscli")
    zpath = tmp_path / "fn.zip"
    zpath.write_bytes(make_zip({"app.py": HELLO}))
    r = server.aws("lambda", "create-function", "--function-name", name, "--runtime", "python3.11",
                   "--role", ROLE, "--handler", "app.handler", "--zip-file", f"fileb://{zpath}")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["FunctionName"] == name
    try:
        r = server.aws("lambda", "wait", "function-active-v2", "--function-name", name, timeout=60)
        assert r.returncode == 0, r.stderr
        out = tmp_path / "out.json"
        r = server.aws("lambda", "invoke", "--function-name", name, "--cli-binary-format", "raw-in-base64-out",
                       "--payload", '{"who": "aws"}', "--log-type", "Tail", str(out))
        assert r.returncode == 0, r.stderr
        meta = json.loads(r.stdout)
        assert meta["StatusCode"] == 200 and "FunctionError" not in meta
        assert json.loads(out.read_text())["body"] == "hi aws"
        assert "cli-log-marker aws" in base64.b64decode(meta["LogResult"]).decode()
        r = server.aws("lambda", "list-functions", "--debug")
        assert r.returncode == 0, r.stderr
        assert "aws-cli/2." in r.stderr, "expected Debian's AWS CLI v2"
        assert name in [f["FunctionName"] for f in json.loads(r.stdout)["Functions"]]
        r = server.aws("lambda", "create-function-url-config", "--function-name", name, "--auth-type", "NONE")
        assert r.returncode == 0, r.stderr
        url = json.loads(r.stdout)["FunctionUrl"]
        server.wait_url_status(url, 200)
        r = server.aws("lambda", "get-function", "--function-name", "does-not-exist")
        assert r.returncode != 0 and "ResourceNotFoundException" in r.stderr
    finally:
        r = server.aws("lambda", "delete-function", "--function-name", name)
        assert r.returncode == 0, r.stderr


def test_geysir_cli(server, tmp_path):
    name = unique("it-cli")
    src = tmp_path / "fn"
    src.mkdir()
    (src / "app.py").write_text(HELLO)
    common = []
    r = server.geysir("deploy", str(src), "--name", name, "--handler", "app.handler", "--runtime", "python3.11",
                      "--memory", "128", "--timeout", "5", "--env", "GREETING=b", "--url", *common)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"http://[0-9a-z]+\.lambda-url\.localhost:\d+/", r.stdout + r.stderr)
    assert m, f"deploy --url must print the function URL:\n{r.stdout}{r.stderr}"
    url = m.group(0)
    try:
        server.wait_url_status(url, 200)
        status, body = curl(url)
        assert status == 200 and body == "hi None"

        r = server.geysir("list")
        assert r.returncode == 0 and name in r.stdout, r.stdout + r.stderr

        r = server.geysir("invoke", name, "--payload", '{"who": "cli"}')
        assert r.returncode == 0, r.stderr
        assert "hi cli" in r.stdout
        r = server.geysir("invoke", name, input='{"who": "stdin"}')
        assert r.returncode == 0, r.stderr
        assert "hi stdin" in r.stdout

        def logged():
            out = server.geysir("logs", name)
            return out.returncode == 0 and "cli-log-marker cli" in out.stdout and "REPORT RequestId" in out.stdout
        wait_until(logged, 10, interval=0.3, what="geysir logs shows the invocation")

        # Redeploy the same directory with new code: the URL serves it.
        (src / "app.py").write_text(HELLO.replace('"hi "', '"v2 "'))
        r = server.geysir("deploy", str(src), "--name", name, "--handler", "app.handler")
        assert r.returncode == 0, r.stdout + r.stderr
        wait_until(lambda: curl(url)[1].startswith("v2 "), 15, interval=0.2, what="URL serves redeployed code")

        r = server.geysir("invoke", "no-such-function-here", "--payload", "{}")
        assert r.returncode != 0 and "error" in r.stderr.lower()
    finally:
        r = server.geysir("delete", name)
    assert r.returncode == 0, r.stdout + r.stderr
    r = server.geysir("list")
    assert name not in r.stdout
