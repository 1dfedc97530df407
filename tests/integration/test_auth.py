"""SigV4 at the control API: wrong secret, unknown key, skewed clock, no signature -> 403, nothing changed."""
import datetime
import json
import urllib.error
import urllib.request
from unittest import mock

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest

from conftest import ROLE, make_zip

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
