"""SigV4 at the control API: wrong secret, unknown key, skewed clock, no signature, a scope for
another service or region, an unsigned payload outside S3 -> 403, nothing changed."""
import base64
import datetime
import json
import urllib.error
import urllib.request
from unittest import mock

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.exceptions
import pytest

from conftest import ROLE, make_zip, unique

SRC = 'def handler(e, c):\n    return 1\n'


def create_raises_403(client, name):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                               Code={"ZipFile": make_zip({"app.py": SRC})})
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.value.response
    return e.value.response["Error"]["Code"]


def assert_absent(lam, name):
    assert name not in [f["FunctionName"] for f in lam.list_functions()["Functions"]]


def test_wrong_secret(server, lam, fn_name):
    bad = server.lambda_client(secret_key=server.secret_key[:-4] + "AAAA")
    assert create_raises_403(bad, fn_name) == "InvalidSignatureException"
    assert_absent(lam, fn_name)


def test_unknown_key(server, lam, fn_name):
    bad = server.lambda_client(access_key="AKIANOSUCHKEY0000000", secret_key="x" * 40)
    assert create_raises_403(bad, fn_name) == "UnrecognizedClientException"
    assert_absent(lam, fn_name)


def test_skewed_clock(server, lam, fn_name):
    skewed = datetime.datetime.utcnow() - datetime.timedelta(minutes=20)
    client = server.lambda_client()
    # Debian's botocore signs with awscrt when it is installed (botocore.crt.auth), else with
    # botocore.auth: skew the clock of both.
    with mock.patch("botocore.auth.datetime") as dt, mock.patch("botocore.crt.auth.datetime") as dt2:
        for d in (dt, dt2):
            d.datetime.utcnow.return_value = skewed
            d.timezone = datetime.timezone
        code = create_raises_403(client, fn_name)
    assert code in ("InvalidSignatureException", "SignatureDoesNotMatch", "RequestExpired")
    assert_absent(lam, fn_name)


def test_unsigned_and_tampered(server, lam, fn_name):
    server.create(lam, fn_name, {"app.py": SRC})
    url = f"{server.control_endpoint}/2015-03-31/functions/{fn_name}"
    # No Authorization header at all.
    req = urllib.request.Request(url, method="DELETE")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403
    # Signed correctly, then the body changed after signing.
    body = json.dumps({"Timeout": 9}).encode()
    areq = botocore.awsrequest.AWSRequest(method="PUT", url=url + "/configuration", data=body,
                                          headers={"Content-Type": "application/json"})
    creds = botocore.credentials.Credentials(server.access_key, server.secret_key)
    botocore.auth.SigV4Auth(creds, "lambda", "us-east-1").add_auth(areq)
    prepared = areq.prepare()
    req = urllib.request.Request(prepared.url, data=json.dumps({"Timeout": 8}).encode(), method="PUT",
                                 headers=dict(prepared.headers))
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403
    # Nothing changed: the function still exists with its old timeout.
    cfg = lam.get_function_configuration(FunctionName=fn_name)
    assert cfg["Timeout"] == 3


# --- a signature is good for one service, one region and one body ------------------------------

def signed_raw(server, method, path, body=b"", service="lambda", region="us-east-1", declared_payload=None,
               send_body=None):
    """A request signed by botocore with the admin key for `service`/`region` (scope), sent as is
    (with `send_body` instead of the signed body when given). Returns (status, headers, body)."""
    url = server.control_endpoint + path
    areq = botocore.awsrequest.AWSRequest(method=method, url=url, data=body,
                                          headers={"Content-Type": "application/json"})
    if declared_payload:
        # botocore signs a declared X-Amz-Content-SHA256 verbatim, as S3 clients send it.
        areq.headers["X-Amz-Content-SHA256"] = declared_payload
    creds = botocore.credentials.Credentials(server.access_key, server.secret_key)
    botocore.auth.SigV4Auth(creds, service, region).add_auth(areq)
    prepared = areq.prepare()
    req = urllib.request.Request(prepared.url, data=send_body if send_body is not None else body, method=method,
                                 headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def create_body(name):
    return json.dumps({"FunctionName": name, "Runtime": "python3.11", "Role": ROLE, "Handler": "app.handler",
                       "Code": {"ZipFile": base64.b64encode(make_zip({"app.py": SRC})).decode()}})


@pytest.mark.parametrize("service", ["s3", "iam", "execute-api"])
def test_scope_for_another_service_is_refused(server, lam, fn_name, service):
    """A valid signature made for another service (here with the admin key itself) does not
    authenticate a Lambda request, as at AWS: the credential scope names the endpoint's service."""
    status, headers, body = signed_raw(server, "POST", "/2015-03-31/functions", create_body(fn_name).encode(),
                                       service=service)
    assert status == 403, body
    assert headers.get("x-amzn-errortype") == "InvalidSignatureException", headers
    assert "correct service: 'lambda'" in json.loads(body)["message"]
    assert_absent(lam, fn_name)
    # The same request signed for Lambda is accepted: the refusal was the scope, not the request.
    status, _, body = signed_raw(server, "POST", "/2015-03-31/functions", create_body(fn_name).encode())
    assert status == 201, body
    lam.delete_function(FunctionName=fn_name)


def test_scope_for_another_region_is_refused(server, lam, fn_name):
    """boto3 configured for another region than control's (us-east-1) is refused with Lambda's
    InvalidSignatureException, and the AWS CLI v2 shows the same error."""
    other = boto3.client("lambda", endpoint_url=server.control_endpoint, region_name="eu-west-1",
                         aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
                         config=botocore.config.Config(retries={"max_attempts": 1}))
    assert create_raises_403(other, fn_name) == "InvalidSignatureException"
    assert_absent(lam, fn_name)
    cli = server.aws("--region", "eu-west-1", "lambda", "list-functions")
    assert cli.returncode != 0 and "InvalidSignatureException" in cli.stderr, cli.stderr
    assert "valid region" in cli.stderr, cli.stderr
    cli = server.aws("lambda", "list-functions")  # the configured region still works
    assert cli.returncode == 0, cli.stderr


@pytest.mark.parametrize("marker", ["UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"])
def test_unsigned_payload_only_at_s3(server, lam, fn_name, marker):
    """Lambda signs the body's hash whatever x-amz-content-sha256 says: a signature made with
    UNSIGNED-PAYLOAD must not carry another body (it would let a captured request be replayed
    with any body)."""
    server.create(lam, fn_name, {"app.py": SRC})
    path = f"/2015-03-31/functions/{fn_name}/configuration"
    status, headers, body = signed_raw(server, "PUT", path, json.dumps({"Timeout": 9}).encode(),
                                       declared_payload=marker, send_body=json.dumps({"Timeout": 8}).encode())
    assert status == 403, body
    assert headers.get("x-amzn-errortype") == "InvalidSignatureException", headers
    # Even the body it signed is refused: only S3 takes an unsigned payload.
    status, _, body = signed_raw(server, "PUT", path, json.dumps({"Timeout": 9}).encode(), declared_payload=marker)
    assert status == 403, body
    assert lam.get_function_configuration(FunctionName=fn_name)["Timeout"] == 3


def test_s3_scope_region_and_unsigned_payload(server):
    """S3 keeps what S3 accepts (UNSIGNED-PAYLOAD, through a real client) and refuses another
    region with its own XML SignatureDoesNotMatch."""
    s3 = server.client("s3")
    bucket = unique("it-scope").lower()[:60]
    s3.create_bucket(Bucket=bucket)
    try:
        status, _, body = signed_raw(server, "PUT", f"/{bucket}/k", b"unsigned body", service="s3",
                                     declared_payload="UNSIGNED-PAYLOAD")
        assert status == 200, body
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"unsigned body"
        other = boto3.client("s3", endpoint_url=server.control_endpoint, region_name="eu-west-1",
                             aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
                             config=botocore.config.Config(retries={"max_attempts": 1}))
        with pytest.raises(botocore.exceptions.ClientError) as e:
            other.get_object(Bucket=bucket, Key="k")
        assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch", e.value.response
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    finally:
        s3.delete_object(Bucket=bucket, Key="k")
        s3.delete_bucket(Bucket=bucket)
