"""API Gateway on Geysir: REST APIs (v1) built with boto3 exactly as Zappa's CloudFormation
template and deploy make them, and HTTP APIs (v2), served by the gateway on
<api-id>.execute-api.localhost and hit with real curl."""
import base64
import json
import subprocess
import time

import botocore.exceptions
import pytest

import conftest

# One function serves both kinds of API: it echoes the event it got and answers in the payload
# format it was called with (1.0: multiValueHeaders; 2.0: cookies). "/binary" reverses the
# request body and sends it back base64-encoded.
ECHO = r'''
import base64, json
def handler(event, context):
    v2 = event.get("version") == "2.0"
    path = event["rawPath"] if v2 else event["path"]
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    if path.endswith("/binary"):
        return {"statusCode": 200, "headers": {"Content-Type": "application/octet-stream"},
                "body": base64.b64encode(raw[::-1]).decode(), "isBase64Encoded": True}
    if path.endswith("/boom"):
        raise RuntimeError("boom")
    if path.endswith("/malformed"):
        return "not a proxy response"
    out = {"statusCode": 200, "headers": {"Content-Type": "application/json", "X-Single": "s"},
           "body": json.dumps({"event": event, "body_len": len(raw), "tag": TAG})}
    if v2:
        out["cookies"] = ["c1=x; Path=/", "c2=y"]
    else:
        out["multiValueHeaders"] = {"Set-Cookie": ["c1=x; Path=/", "c2=y"], "X-Multi": ["a", "b"]}
    return out
'''


def echo_zip(tag):
    return {"app.py": f"TAG = {tag!r}\n" + ECHO}


def curl_full(url, *args, timeout=20):
    """curl returning (status, headers list of (lower name, value), body bytes)."""
    r = subprocess.run(["curl", "-sS", "--max-time", str(timeout), "-D", "-", "-o", "-", *args, url],
                       capture_output=True, timeout=timeout + 5)
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout
    head, _, body = out.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return status, headers, body


def header_values(headers, name):
    return [v for n, v in headers if n == name]


def wait_status(url, status, timeout=15):
    """Routes reach the gateway asynchronously (control pushes them): poll until `url` answers."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = curl_full(url, timeout=10)
        if last[0] == status:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{url}: wanted {status}, last answer {last[0]} {last[2][:200]!r}")


@pytest.fixture(scope="module")
def echo_fn(server, lam):
    name = conftest.unique("it-apigw")
    server.create(lam, name, echo_zip("v1"))
    arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    yield name, arn
    lam.delete_function(FunctionName=name)


@pytest.fixture(scope="module")
def apigw(server):
    return server.client("apigateway")


@pytest.fixture(scope="module")
def apigw2(server):
    return server.client("apigatewayv2")


def lambda_uri(arn):
    return f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn}/invocations"


def zappa_rest_api(apigw, arn, name):
    """What Zappa's template (cfn-tinyapp-dev.json) makes, then what `zappa deploy` does."""
    api = apigw.create_rest_api(name=name, description="Created automatically by Zappa.")
    api_id = api["id"]
    root = [r for r in apigw.get_resources(restApiId=api_id)["items"] if r["path"] == "/"][0]["id"]
    proxy = apigw.create_resource(restApiId=api_id, parentId=root, pathPart="{proxy+}")
    assert proxy["path"] == "/{proxy+}" and proxy["parentId"] == root
    for res in (root, proxy["id"]):
        m = apigw.put_method(restApiId=api_id, resourceId=res, httpMethod="ANY", authorizationType="NONE",
                             apiKeyRequired=False)
        assert m["ResponseMetadata"]["HTTPStatusCode"] == 201 and m["httpMethod"] == "ANY"
        i = apigw.put_integration(
            restApiId=api_id, resourceId=res, httpMethod="ANY", type="AWS_PROXY", integrationHttpMethod="POST",
            uri=lambda_uri(arn), credentials="arn:aws:iam::000000000000:role/r", passthroughBehavior="NEVER",
            cacheNamespace="none", cacheKeyParameters=[])
        assert i["ResponseMetadata"]["HTTPStatusCode"] == 201 and i["type"] == "AWS_PROXY"
    # zappa deploy, after the stack: deploy-dev.log lines 61-69.
    assert apigw.get_rest_api(restApiId=api_id)["name"] == name
    r = apigw.update_rest_api(restApiId=api_id, patchOperations=[{"op": "add", "path": "/binaryMediaTypes/*~1*"}])
    assert r["binaryMediaTypes"] == ["*/*"]
    r = apigw.update_rest_api(restApiId=api_id,
                              patchOperations=[{"op": "replace", "path": "/minimumCompressionSize", "value": "0"}])
    assert r["minimumCompressionSize"] == 0
    d = apigw.create_deployment(restApiId=api_id, stageName="dev", stageDescription="", description="",
                                cacheClusterEnabled=False, cacheClusterSize="0.5", variables={})
    assert d["ResponseMetadata"]["HTTPStatusCode"] == 201 and d["id"]
    ops = [{"op": "replace", "path": "/*/*/logging/loglevel", "value": "OFF"},
           {"op": "replace", "path": "/*/*/logging/dataTrace", "value": "false"},
           {"op": "replace", "path": "/*/*/metrics/enabled", "value": "false"},
           {"op": "replace", "path": "/*/*/caching/ttlInSeconds", "value": "300"},
           {"op": "replace", "path": "/*/*/caching/dataEncrypted", "value": "false"}]
    s = apigw.update_stage(restApiId=api_id, stageName="dev", patchOperations=ops)
    assert s["deploymentId"] == d["id"]
    assert s["methodSettings"]["*/*"] == {"loggingLevel": "OFF", "dataTraceEnabled": False, "metricsEnabled": False,
                                          "cacheTtlInSeconds": 300, "cacheDataEncrypted": False}
    return api_id, root, proxy["id"]


def test_rest_api_as_zappa_builds_it_serves_the_payload_1_0_event(server, apigw, echo_fn):
    name, arn = echo_fn
    api_id, root, proxy = zappa_rest_api(apigw, arn, conftest.unique("zappa-dev"))
    base = f"http://{api_id}.execute-api.localhost:{server.http_port}"

    # zappa undeploy / status: the API is listed; Zappa finds it by name.
    listed = apigw.get_rest_apis(limit=500)["items"]
    assert [a for a in listed if a["id"] == api_id][0]["binaryMediaTypes"] == ["*/*"]
    assert apigw.get_stages(restApiId=api_id)["item"][0]["stageName"] == "dev"

    status, headers, body = wait_status(f"{base}/dev/echo/x%20y?q=1&q=2&one=%C3%A9", 200)
    assert header_values(headers, "set-cookie") == ["c1=x; Path=/", "c2=y"]
    assert header_values(headers, "x-multi") == ["a", "b"]
    assert header_values(headers, "x-single") == ["s"]
    assert header_values(headers, "x-amzn-requestid")
    e = json.loads(body)["event"]
    assert e["httpMethod"] == "GET"
    assert e["resource"] == "/{proxy+}"
    assert e["path"] == "/echo/x%20y"
    assert e["pathParameters"] == {"proxy": "echo/x y"}
    assert e["queryStringParameters"] == {"q": "2", "one": "é"}
    assert e["multiValueQueryStringParameters"] == {"q": ["1", "2"], "one": ["é"]}
    assert e["stageVariables"] is None
    rc = e["requestContext"]
    assert rc["stage"] == "dev" and rc["resourcePath"] == "/{proxy+}" and rc["httpMethod"] == "GET"
    assert rc["apiId"] == api_id and rc["accountId"] == "000000000000" and rc["resourceId"] == proxy
    assert rc["path"] == "/dev/echo/x%20y" and rc["protocol"] == "HTTP/1.1"
    assert rc["identity"]["sourceIp"] == "127.0.0.1"
    assert abs(rc["requestTimeEpoch"] / 1000 - time.time()) < 60
    assert rc["requestId"] == header_values(headers, "x-amzn-requestid")[0]
    assert e["body"] is None and e["isBase64Encoded"] is False

    # Repeated request headers: the last in headers, all in multiValueHeaders; cookies as sent.
    status, _, body = curl_full(f"{base}/dev/", "-H", "X-Rep: one", "-H", "X-Rep: two",
                                "-H", "Cookie: a=1; b=2", "-X", "DELETE")
    assert status == 200
    e = json.loads(body)["event"]
    assert e["resource"] == "/" and e["path"] == "/" and e["pathParameters"] is None
    assert e["httpMethod"] == "DELETE"
    assert e["headers"]["X-Rep"] == "two" and e["multiValueHeaders"]["X-Rep"] == ["one", "two"]
    assert e["headers"]["Cookie"] == "a=1; b=2"
    assert e["headers"]["Host"].startswith(f"{api_id}.execute-api.localhost")

    # Binary round trip: binaryMediaTypes */* makes every body base64 both ways.
    blob = bytes(range(256)) * 4
    status, _, body = curl_bytes(f"{base}/dev/binary", blob)
    assert status == 200 and body == blob[::-1]
    # A JSON body is base64 too (binaryMediaTypes */*): Zappa's handler decodes it.
    status, _, body = curl_full(f"{base}/dev/echo", "-H", "Content-Type: application/json", "-d", '{"k":"v"}')
    e = json.loads(body)["event"]
    assert e["isBase64Encoded"] is True and base64.b64decode(e["body"]) == b'{"k":"v"}'

    # Removing the binary media type (a JSON-patch "remove" with no value) sends text again.
    apigw.update_rest_api(restApiId=api_id, patchOperations=[{"op": "remove", "path": "/binaryMediaTypes/*~1*"},
                                                             {"op": "remove", "path": "/minimumCompressionSize"}])
    got = apigw.get_rest_api(restApiId=api_id)
    assert "binaryMediaTypes" not in got and "minimumCompressionSize" not in got

    def text_again():
        s, _, b = curl_full(f"{base}/dev/echo", "-H", "Content-Type: application/json", "-d", '{"k":"v"}')
        return s == 200 and json.loads(b)["event"]["body"] == '{"k":"v"}'
    conftest.wait_until(text_again, 15, interval=0.1, what="binaryMediaTypes removal reaches the gateway")

    # Errors as API Gateway words them.
    status, _, body = curl_full(f"{base}/prod/echo")
    assert status == 403 and json.loads(body) == {"message": "Forbidden"}
    status, _, body = curl_full(f"{base}/dev/boom")
    assert status == 502 and json.loads(body) == {"message": "Internal server error"}
    status, _, body = curl_full(f"{base}/dev/malformed")
    assert status == 502 and json.loads(body) == {"message": "Internal server error"}
    status, _, body = curl_full(f"http://nosuchapi00.execute-api.localhost:{server.http_port}/dev/")
    assert status == 404 and json.loads(body) == {"message": "Not Found"}

    # zappa undeploy deletes the stack, which deletes the API.
    r = apigw.delete_rest_api(restApiId=api_id)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 202
    wait_status(f"{base}/dev/echo", 404)
    with pytest.raises(botocore.exceptions.ClientError) as err:
        apigw.get_rest_api(restApiId=api_id)
    assert err.value.response["Error"]["Code"] == "NotFoundException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def curl_bytes(url, blob, content_type="application/octet-stream"):
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "-D", "-", "-o", "-", "-H", f"Content-Type: {content_type}",
                        "-H", "Accept: application/octet-stream", "--data-binary", "@-", url],
                       input=blob, capture_output=True, timeout=25)
    assert r.returncode == 0, r.stderr.decode()
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    return int(head.split()[1]), head, body


def test_rest_api_precedence_params_stages_and_api_keys(server, apigw, echo_fn):
    _, arn = echo_fn
    api_id = apigw.create_rest_api(name=conftest.unique("prec"))["id"]
    root = apigw.get_resources(restApiId=api_id)["items"][0]["id"]
    users = apigw.create_resource(restApiId=api_id, parentId=root, pathPart="users")["id"]
    uid = apigw.create_resource(restApiId=api_id, parentId=users, pathPart="{id}")["id"]
    me = apigw.create_resource(restApiId=api_id, parentId=users, pathPart="me")["id"]
    proxy = apigw.create_resource(restApiId=api_id, parentId=root, pathPart="{proxy+}")["id"]
    with pytest.raises(botocore.exceptions.ClientError) as err:
        apigw.create_resource(restApiId=api_id, parentId=users, pathPart="me")
    assert err.value.response["Error"]["Code"] == "ConflictException"
    for res, verb, key in ((uid, "GET", False), (me, "GET", True), (proxy, "ANY", False)):
        apigw.put_method(restApiId=api_id, resourceId=res, httpMethod=verb, authorizationType="NONE",
                         apiKeyRequired=key)
        apigw.put_integration(restApiId=api_id, resourceId=res, httpMethod=verb, type="AWS_PROXY",
                              integrationHttpMethod="POST", uri=lambda_uri(arn))
    dep = apigw.create_deployment(restApiId=api_id, stageName="v1", variables={"color": "blue"})
    # A second stage on the same deployment, with its own variables.
    apigw.create_stage(restApiId=api_id, stageName="v2", deploymentId=dep["id"], variables={"color": "red"})
    assert apigw.get_stage(restApiId=api_id, stageName="v2")["variables"] == {"color": "red"}
    base = f"http://{api_id}.execute-api.localhost:{server.http_port}"

    _, _, body = wait_status(f"{base}/v1/users/42", 200)
    e = json.loads(body)["event"]
    assert e["resource"] == "/users/{id}" and e["pathParameters"] == {"id": "42"}
    assert e["stageVariables"] == {"color": "blue"}
    _, _, body = curl_full(f"{base}/v2/users/42")
    assert json.loads(body)["event"]["stageVariables"] == {"color": "red"}
    _, _, body = curl_full(f"{base}/v1/users/42/more", "-X", "POST")
    assert json.loads(body)["event"]["resource"] == "/{proxy+}"
    # The root has no method: API Gateway's famous wording.
    status, _, body = curl_full(f"{base}/v1/")
    assert status == 403 and json.loads(body) == {"message": "Missing Authentication Token"}

    # /users/me needs an API key.
    status, _, body = curl_full(f"{base}/v1/users/me")
    assert status == 403 and json.loads(body) == {"message": "Forbidden"}
    key = apigw.create_api_key(name="k1", enabled=True, stageKeys=[{"restApiId": api_id, "stageName": "v1"}])
    assert key["ResponseMetadata"]["HTTPStatusCode"] == 201 and len(key["value"]) >= 20
    assert any(k["id"] == key["id"] for k in apigw.get_api_keys(limit=500)["items"])
    assert "value" not in apigw.get_api_keys(limit=500)["items"][0]
    _, _, body = wait_status_with(f"{base}/v1/users/me", 200, "-H", f"x-api-key: {key['value']}")
    assert json.loads(body)["event"]["resource"] == "/users/me"
    apigw.update_api_key(apiKey=key["id"], patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}])
    wait_status_with(f"{base}/v1/users/me", 403, "-H", f"x-api-key: {key['value']}")
    assert apigw.delete_api_key(apiKey=key["id"])["ResponseMetadata"]["HTTPStatusCode"] == 202

    # A stage deleted is Forbidden; a method whose function is gone is a 500.
    assert apigw.delete_stage(restApiId=api_id, stageName="v2")["ResponseMetadata"]["HTTPStatusCode"] == 202
    wait_status(f"{base}/v2/users/42", 403)
    apigw.delete_rest_api(restApiId=api_id)


def wait_status_with(url, status, *args, timeout=15):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = curl_full(url, *args, timeout=10)
        if last[0] == status:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{url}: wanted {status}, last {last[0]} {last[2][:200]!r}")


def test_deployments_snapshot_and_code_updates_reach_the_api(server, lam, apigw):
    name = conftest.unique("it-apigw-upd")
    server.create(lam, name, echo_zip("first"))
    arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    try:
        api_id, root, proxy = zappa_rest_api(apigw, arn, conftest.unique("zappa-upd"))
        base = f"http://{api_id}.execute-api.localhost:{server.http_port}"
        _, _, body = wait_status(f"{base}/dev/x", 200)
        assert json.loads(body)["tag"] == "first"
        # zappa update: new code, then a new deployment of the same stage.
        lam.update_function_code(FunctionName=name, ZipFile=conftest.make_zip(echo_zip("second")))
        server.wait_active(lam, name)

        def updated():
            s, _, b = curl_full(f"{base}/dev/x")
            return s == 200 and json.loads(b)["tag"] == "second"
        conftest.wait_until(updated, 15, interval=0.1, what="the API serving the updated code")
        # A method added after the deployment is served only once deployed again.
        extra = apigw.create_resource(restApiId=api_id, parentId=root, pathPart="extra")["id"]
        apigw.put_method(restApiId=api_id, resourceId=extra, httpMethod="GET", authorizationType="NONE")
        apigw.put_integration(restApiId=api_id, resourceId=extra, httpMethod="GET", type="AWS_PROXY",
                              integrationHttpMethod="POST", uri=lambda_uri(arn))
        _, _, body = curl_full(f"{base}/dev/extra")
        assert json.loads(body)["event"]["resource"] == "/{proxy+}"
        apigw.create_deployment(restApiId=api_id, stageName="dev")

        def redeployed():
            s, _, b = curl_full(f"{base}/dev/extra")
            return s == 200 and json.loads(b)["event"]["resource"] == "/extra"
        conftest.wait_until(redeployed, 15, interval=0.1, what="the new deployment")
        assert len(apigw.get_deployments(restApiId=api_id)["items"]) == 2
        apigw.delete_rest_api(restApiId=api_id)
    finally:
        lam.delete_function(FunctionName=name)


def test_http_api_as_zappa_builds_it_serves_payload_2_0(server, apigw2, echo_fn):
    name, arn = echo_fn
    # cfn-tinyapp-v2.json: Api, Integration (payload 2.0), Route $default, Stage "v2" auto-deploy.
    api = apigw2.create_api(Name=conftest.unique("zappa-v2"), ProtocolType="HTTP",
                            Description="Created automatically by Zappa.")
    api_id = api["ApiId"]
    assert api["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert api["ApiEndpoint"] == f"http://{api_id}.execute-api.localhost:{server.http_port}"
    integ = apigw2.create_integration(ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=arn,
                                      PayloadFormatVersion="2.0")
    route = apigw2.create_route(ApiId=api_id, AuthorizationType="NONE", RouteKey="$default",
                                Target=f"integrations/{integ['IntegrationId']}")
    assert route["RouteKey"] == "$default"
    apigw2.create_route(ApiId=api_id, RouteKey="GET /pets/{id}", Target=f"integrations/{integ['IntegrationId']}")
    stage = apigw2.create_stage(ApiId=api_id, AutoDeploy=True, StageName="v2")
    assert stage["StageName"] == "v2" and stage["AutoDeploy"] is True
    assert [a["ApiId"] for a in apigw2.get_apis()["Items"]].count(api_id) == 1
    assert len(apigw2.get_routes(ApiId=api_id)["Items"]) == 2
    base = api["ApiEndpoint"]

    status, headers, body = wait_status(f"{base}/v2/pets/7?a=1&a=2", 200)
    assert header_values(headers, "set-cookie") == ["c1=x; Path=/", "c2=y"]
    e = json.loads(body)["event"]
    assert e["version"] == "2.0" and e["routeKey"] == "GET /pets/{id}"
    assert e["rawPath"] == "/v2/pets/7" and e["rawQueryString"] == "a=1&a=2"
    assert e["queryStringParameters"] == {"a": "1,2"}
    assert e["pathParameters"] == {"id": "7"}
    assert e["requestContext"]["stage"] == "v2" and e["requestContext"]["apiId"] == api_id
    assert e["requestContext"]["http"]["method"] == "GET"

    status, _, body = curl_full(f"{base}/v2/anything/else", "-X", "POST", "-H", "Cookie: a=1; b=2",
                                "-H", "Content-Type: text/plain", "-d", "hello")
    e = json.loads(body)["event"]
    assert status == 200 and e["routeKey"] == "$default"
    assert e["cookies"] == ["a=1", "b=2"] and e["body"] == "hello" and e["isBase64Encoded"] is False

    blob = bytes(range(256)) * 3
    status, _, body = curl_bytes(f"{base}/v2/binary", blob)
    assert status == 200 and body == blob[::-1]

    # No $default stage: the root is Not Found; then one is added and serves at the root.
    status, _, body = curl_full(f"{base}/pets/7")
    assert status == 404 and json.loads(body) == {"message": "Not Found"}
    apigw2.create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)
    _, _, body = wait_status(f"{base}/pets/7", 200)
    assert json.loads(body)["event"]["requestContext"]["stage"] == "$default"

    with pytest.raises(botocore.exceptions.ClientError) as err:
        apigw2.create_route(ApiId=api_id, RouteKey="$default", Target=f"integrations/{integ['IntegrationId']}")
    assert err.value.response["Error"]["Code"] == "ConflictException"
    assert apigw2.delete_api(ApiId=api_id)["ResponseMetadata"]["HTTPStatusCode"] == 204
    wait_status(f"{base}/pets/7", 404)
    with pytest.raises(botocore.exceptions.ClientError) as err:
        apigw2.get_api(ApiId=api_id)
    assert err.value.response["Error"]["Code"] == "NotFoundException"


def test_integration_to_an_alias_or_version_runs_that_version(server, lam, apigw2):
    name = conftest.unique("it-apigw-alias")
    server.create(lam, name, echo_zip("one"))
    try:
        v1 = lam.publish_version(FunctionName=name)["Version"]
        alias_arn = lam.create_alias(FunctionName=name, Name="live", FunctionVersion=v1)["AliasArn"]
        lam.update_function_code(FunctionName=name, ZipFile=conftest.make_zip(echo_zip("two")))
        server.wait_active(lam, name)
        v2 = lam.publish_version(FunctionName=name)["Version"]
        assert v2 != v1
        api_id = apigw2.create_api(Name=conftest.unique("alias-api"), ProtocolType="HTTP")["ApiId"]
        base = f"http://{api_id}.execute-api.localhost:{server.http_port}"

        def route(path, uri):
            integ = apigw2.create_integration(ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=uri,
                                              PayloadFormatVersion="2.0")
            apigw2.create_route(ApiId=api_id, RouteKey=f"GET {path}", Target=f"integrations/{integ['IntegrationId']}")
        route("/alias", alias_arn)
        route("/version", f"{alias_arn.rsplit(':', 1)[0]}:{v2}")
        route("/latest", alias_arn.rsplit(":", 1)[0])
        route("/gone", f"{alias_arn.rsplit(':', 1)[0]}:nosuchalias")
        apigw2.create_stage(ApiId=api_id, StageName="$default", AutoDeploy=True)

        _, _, body = wait_status(f"{base}/alias", 200)
        assert json.loads(body)["tag"] == "one"
        _, _, body = wait_status(f"{base}/version", 200)
        assert json.loads(body)["tag"] == "two"
        _, _, body = wait_status(f"{base}/latest", 200)
        assert json.loads(body)["tag"] == "two"
        # An integration whose target does not exist: API Gateway's 500, not a crash.
        status, _, body = curl_full(f"{base}/gone")
        assert status == 500 and json.loads(body)["message"].lower() == "internal server error"
        # Moving the alias moves the API with it, without a new deployment.
        lam.update_alias(FunctionName=name, Name="live", FunctionVersion=v2)

        def moved():
            s, _, b = curl_full(f"{base}/alias")
            return s == 200 and json.loads(b)["tag"] == "two"
        conftest.wait_until(moved, 15, interval=0.1, what="the API following the alias to version 2")
        apigw2.delete_api(ApiId=api_id)
    finally:
        lam.delete_function(FunctionName=name)


def test_api_gateway_errors_and_the_aws_cli(server, apigw):
    with pytest.raises(botocore.exceptions.ClientError) as err:
        apigw.get_rest_api(restApiId="nope000000")
    assert err.value.response["Error"]["Code"] == "NotFoundException"
    assert "nope000000" in err.value.response["Error"]["Message"]
    api_id = apigw.create_rest_api(name=conftest.unique("cli"))["id"]
    with pytest.raises(botocore.exceptions.ClientError) as err:
        apigw.update_rest_api(restApiId=api_id, patchOperations=[{"op": "replace", "path": "/nonsense", "value": "1"}])
    assert err.value.response["Error"]["Code"] == "BadRequestException"
    with pytest.raises(botocore.exceptions.ClientError) as err:
        apigw.create_deployment(restApiId=api_id, stageName="dev")  # no methods yet
    assert err.value.response["Error"]["Code"] == "BadRequestException"
    # AWS CLI v2 lists it too.
    r = server.aws("apigateway", "get-rest-apis")
    assert r.returncode == 0, r.stderr
    assert any(a["id"] == api_id for a in json.loads(r.stdout)["items"])
    r = server.aws("apigateway", "delete-rest-api", "--rest-api-id", api_id)
    assert r.returncode == 0, r.stderr
