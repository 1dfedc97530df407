"""Integer parameters of control's APIs are range-checked from what was sent: a value out of
range, negative, fractional, in exponent form or too long for an integer is refused with the
service's validation error, never clamped, wrapped or read through a double (IAM's MaxItems is
in test_iam_sts.py, Lambda's in test_lambda_api.py)."""
import json
import urllib.error
import urllib.request

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest


def signed(server, method, path, service, body=b"", headers=None):
    areq = botocore.awsrequest.AWSRequest(method=method, url=server.control_endpoint + path, data=body,
                                          headers=headers or {})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(server.access_key, server.secret_key), service,
                            "us-east-1").add_auth(areq)
    p = areq.prepare()
    req = urllib.request.Request(p.url, data=body or None, method=method, headers=dict(p.headers))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.mark.parametrize("limit", [0, -1, 101, 4294967297, 18446744073709551615, 1.5, "5"])
def test_eventbridge_list_rules_limit(server, limit):
    body = json.dumps({"Limit": limit}).encode()
    status, text = signed(server, "POST", "/", "events", body,
                          {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents.ListRules"})
    assert status == 400 and "ValidationException" in text, (status, text)
    status, text = signed(server, "POST", "/", "events", json.dumps({"Limit": 100}).encode(),
                          {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents.ListRules"})
    assert status == 200, text


@pytest.mark.parametrize("limit", ["0", "-1", "10001", "1e999999", "abc", "99999999999999999999", ""])
def test_native_async_events_limit(server, limit):
    status, text = signed(server, "GET", f"/geysir/v1/async-events?limit={limit}&state=queued", "lambda")
    assert status == 400 and "between 1 and 10000" in json.loads(text)["message"], (status, text)
    status, text = signed(server, "GET", "/geysir/v1/async-events?limit=10000&state=queued", "lambda")
    assert status == 200, text
