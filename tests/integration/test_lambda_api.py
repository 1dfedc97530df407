"""Lambda API completeness against the real platform, the way Zappa and the AWS CLI call it:
versions (Publish, PublishVersion, ListVersionsByFunction, qualified and partial-ARN names),
aliases, the resource policy (AddPermission 201 / RemovePermission 204 / GetPolicy), reserved
concurrency enforced by the scheduler (429), tags, Code.S3Bucket/S3Key, account settings.

Run: GEYSIR_BUILD_DIR=build/x /usr/bin/python3 -m pytest -q tests/integration/test_lambda_api.py
"""
import concurrent.futures
import json
import time
import urllib.request

import botocore.exceptions
import pytest

from conftest import ROLE, make_zip, unique

ACCOUNT = "000000000000"


def arn(name, qualifier=None):
    a = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"
    return f"{a}:{qualifier}" if qualifier else a


def app(tag, extra=""):
    """A handler that reports which code ran and what it was told."""
    return {"app.py": (
        "import os, json, time\n"
        f"TAG = {tag!r}\n"
        "def handler(event, context):\n"
        "    if event.get('sleep'):\n"
        "        time.sleep(event['sleep'])\n"
        f"{extra}"
        "    return {'tag': TAG, 'env': os.environ.get('COLOR', ''),\n"
        "            'version': context.function_version, 'arn': context.invoked_function_arn}\n")}


def invoke(lam, name, payload=None, **kw):
    r = lam.invoke(FunctionName=name, Payload=json.dumps(payload or {}).encode(), **kw)
    assert r["StatusCode"] == 200, r
    body = json.loads(r["Payload"].read())
    assert "FunctionError" not in r, body
    return r, body


def error_of(call, *args, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(*args, **kwargs)
    return e.value.response


def test_publish_versions_qualified_names_and_rollback(server, lam, fn_name):
    zip1 = make_zip(app("one"))
    created = lam.create_function(FunctionName=fn_name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                  Code={"ZipFile": zip1}, Publish=True, Timeout=10)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    # CreateFunction answers with the unqualified ARN and the published version's number.
    assert created["FunctionArn"] == arn(fn_name)
    assert created["Version"] == "1"
    server.wait_active(lam, fn_name)

    versions = lam.list_versions_by_function(FunctionName=fn_name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]
    assert versions[1]["FunctionArn"] == arn(fn_name, "1")
    assert versions[0]["FunctionArn"] == arn(fn_name, "$LATEST")  # as Lambda lists it

    updated = lam.update_function_code(FunctionName=fn_name, ZipFile=make_zip(app("two")), Publish=True)
    assert updated["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert updated["FunctionArn"] == arn(fn_name, "2")
    assert updated["Version"] == "2"
    server.wait_active(lam, fn_name)

    # Every spelling of a qualified name reaches the right code, and says which version ran.
    for name, kw, want in [(fn_name, {}, "two"), (fn_name, {"Qualifier": "1"}, "one"), (f"{fn_name}:1", {}, "one"),
                           (arn(fn_name, "1"), {}, "one"), (f"{ACCOUNT}:function:{fn_name}:2", {}, "two"),
                           (fn_name, {"Qualifier": "$LATEST"}, "two")]:
        r, body = invoke(lam, name, **kw)
        assert body["tag"] == want, (name, kw, body)
        expected_version = "$LATEST" if not (kw.get("Qualifier", "").isdigit() or name.split(":")[-1].isdigit()) \
            else (kw.get("Qualifier") or name.split(":")[-1])
        assert r["ExecutedVersion"] == expected_version
        assert body["version"] == expected_version

    # A version that does not exist: Lambda's wording, with the qualified ARN.
    err = error_of(lam.invoke, FunctionName=fn_name, Qualifier="9", Payload=b"{}")
    assert err["Error"]["Code"] == "ResourceNotFoundException"
    assert err["Error"]["Message"] == f"Function not found: {arn(fn_name, '9')}"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 404
    err = error_of(lam.get_function, FunctionName=f"{fn_name}:1", Qualifier="2")
    assert err["Error"]["Code"] == "InvalidParameterValueException"

    # A version is immutable: configuration changes reach $LATEST and the next version only.
    lam.update_function_configuration(FunctionName=fn_name, Environment={"Variables": {"COLOR": "blue"}})
    server.wait_active(lam, fn_name)
    assert invoke(lam, fn_name)[1]["env"] == "blue"
    assert invoke(lam, fn_name, Qualifier="2")[1]["env"] == ""
    v3 = lam.publish_version(FunctionName=fn_name, Description="blue")
    assert v3["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert v3["Version"] == "3" and v3["FunctionArn"] == arn(fn_name, "3") and v3["Description"] == "blue"
    # Nothing changed since 3: PublishVersion returns 3 again, as Lambda does.
    assert lam.publish_version(FunctionName=fn_name)["Version"] == "3"
    assert invoke(lam, fn_name, Qualifier="3")[1]["env"] == "blue"
    cfg = lam.get_function_configuration(FunctionName=fn_name, Qualifier="1")
    assert cfg["Version"] == "1" and cfg["FunctionArn"] == arn(fn_name, "1")

    # Zappa's rollback: ListVersionsByFunction, GetFunction("function:NAME:N"), an unsigned GET of
    # Code.Location, UpdateFunctionCode(ZipFile=..., Publish=True).
    versions = lam.list_versions_by_function(FunctionName=fn_name)["Versions"]
    revisions = sorted((int(v["Version"]) for v in versions if v["Version"] != "$LATEST"), reverse=True)
    assert revisions == [3, 2, 1]
    got = lam.get_function(FunctionName=f"function:{fn_name}:{revisions[2]}")
    assert got["Configuration"]["Version"] == "1"
    with urllib.request.urlopen(got["Code"]["Location"], timeout=10) as resp:
        assert resp.status == 200
        old_zip = resp.read()
    assert old_zip == zip1
    rolled = lam.update_function_code(FunctionName=fn_name, ZipFile=old_zip, Publish=True)
    assert rolled["FunctionArn"] == arn(fn_name, "4")
    server.wait_active(lam, fn_name)
    assert invoke(lam, fn_name)[1]["tag"] == "one"

    # Paging, and deleting one version (Zappa's num_revisions clean-up).
    page = lam.list_versions_by_function(FunctionName=fn_name, MaxItems=2)
    assert [v["Version"] for v in page["Versions"]] == ["$LATEST", "1"] and "NextMarker" in page
    rest = lam.list_versions_by_function(FunctionName=fn_name, Marker=page["NextMarker"])
    assert [v["Version"] for v in rest["Versions"]] == ["2", "3", "4"]
    d = lam.delete_function(FunctionName=fn_name, Qualifier="2")
    assert d["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=fn_name)["Versions"]] == \
        ["$LATEST", "1", "3", "4"]
    assert error_of(lam.get_function, FunctionName=fn_name, Qualifier="2")["Error"]["Code"] == \
        "ResourceNotFoundException"
    # Numbers are never reused.
    lam.update_function_code(FunctionName=fn_name, ZipFile=make_zip(app("five")))
    server.wait_active(lam, fn_name)
    assert lam.publish_version(FunctionName=fn_name)["Version"] == "5"


def test_aliases(server, lam, fn_name):
    lam.create_function(FunctionName=fn_name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": make_zip(app("one"))}, Publish=True)
    server.wait_active(lam, fn_name)
    lam.update_function_code(FunctionName=fn_name, ZipFile=make_zip(app("two")), Publish=True)
    server.wait_active(lam, fn_name)

    # Zappa's update asks for its ALB alias and expects ResourceNotFoundException when absent.
    err = error_of(lam.get_alias, FunctionName=fn_name, Name="current-alb-version")
    assert err["Error"]["Code"] == "ResourceNotFoundException"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert err["Error"]["Message"] == "Cannot find alias arn: " + arn(fn_name, "current-alb-version")

    a = lam.create_alias(FunctionName=arn(fn_name), Name="live", FunctionVersion="1", Description="prod")
    assert a["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert a["AliasArn"] == arn(fn_name, "live") and a["FunctionVersion"] == "1" and a["RevisionId"]
    assert error_of(lam.create_alias, FunctionName=fn_name, Name="live", FunctionVersion="1")["Error"]["Code"] == \
        "ResourceConflictException"
    err = error_of(lam.create_alias, FunctionName=fn_name, Name="x", FunctionVersion="7")
    assert err["Error"]["Code"] == "ResourceNotFoundException"
    assert err["Error"]["Message"] == "Function not found: " + arn(fn_name, "7")

    r, body = invoke(lam, fn_name, Qualifier="live")
    assert body["tag"] == "one" and r["ExecutedVersion"] == "1"
    assert body["arn"] == arn(fn_name, "live")  # context.invoked_function_arn: what the caller used
    assert invoke(lam, f"{fn_name}:live")[1]["tag"] == "one"

    got = lam.get_alias(FunctionName=fn_name, Name="live")
    bad = error_of(lam.update_alias, FunctionName=fn_name, Name="live", FunctionVersion="2", RevisionId="nope")
    assert bad["Error"]["Code"] == "PreconditionFailedException"
    up = lam.update_alias(FunctionName=fn_name, Name="live", FunctionVersion="2", RevisionId=got["RevisionId"])
    assert up["FunctionVersion"] == "2" and up["RevisionId"] != got["RevisionId"]
    # A missing target is named, whether it is the version or a weighted one; so is a missing alias.
    err = error_of(lam.update_alias, FunctionName=fn_name, Name="live",
                   RoutingConfig={"AdditionalVersionWeights": {"9": 0.5}})
    assert err["Error"]["Code"] == "ResourceNotFoundException"
    assert err["Error"]["Message"] == "Function not found: " + arn(fn_name, "9")
    err = error_of(lam.update_alias, FunctionName=fn_name, Name="nosuch", FunctionVersion="1")
    assert err["Error"]["Message"] == "Cannot find alias arn: " + arn(fn_name, "nosuch")
    assert invoke(lam, fn_name, Qualifier="live")[1]["tag"] == "two"

    # Weighted routing: all of the traffic to the additional version when its weight is 1.
    lam.update_alias(FunctionName=fn_name, Name="live", RoutingConfig={"AdditionalVersionWeights": {"1": 1.0}})
    assert invoke(lam, fn_name, Qualifier="live")[1]["tag"] == "one"
    assert lam.get_alias(FunctionName=fn_name, Name="live")["RoutingConfig"] == {"AdditionalVersionWeights": {"1": 1.0}}

    # A version an alias points at cannot be deleted.
    err = error_of(lam.delete_function, FunctionName=fn_name, Qualifier="2")
    assert err["Error"]["Code"] == "ResourceConflictException"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert err["Error"]["Message"] == "Unable to delete version because the following aliases reference it: [live]"
    lam.create_alias(FunctionName=fn_name, Name="edge", FunctionVersion="$LATEST")
    assert [x["Name"] for x in lam.list_aliases(FunctionName=fn_name)["Aliases"]] == ["edge", "live"]
    assert [x["Name"] for x in lam.list_aliases(FunctionName=fn_name, FunctionVersion="2")["Aliases"]] == ["live"]
    assert lam.delete_alias(FunctionName=fn_name, Name="edge")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert [x["Name"] for x in lam.list_aliases(FunctionName=fn_name)["Aliases"]] == ["live"]


def test_resource_policy_as_zappa_uses_it(server, lam, fn_name):
    server.create(lam, fn_name, app("one"))
    # First deploy: no policy yet.
    err = error_of(lam.get_policy, FunctionName=fn_name)
    assert err["Error"]["Code"] == "ResourceNotFoundException"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 404

    rule = f"arn:aws:events:us-east-1:{ACCOUNT}:rule/{fn_name}-app.tick"
    r = lam.add_permission(FunctionName=fn_name, StatementId="NT7SFAQK", Action="lambda:InvokeFunction",
                           Principal="events.amazonaws.com", SourceArn=rule, SourceAccount=ACCOUNT)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 201
    st = json.loads(r["Statement"])
    assert st == {"Sid": "NT7SFAQK", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                  "Action": "lambda:InvokeFunction", "Resource": arn(fn_name),
                  "Condition": {"StringEquals": {"AWS:SourceAccount": ACCOUNT}, "ArnLike": {"AWS:SourceArn": rule}}}
    # Function URL mode: by full ARN, Principal "*", with and without FunctionUrlAuthType.
    r = lam.add_permission(FunctionName=arn(fn_name), StatementId="FunctionURLAllowPublicAccess",
                           Action="lambda:InvokeFunctionUrl", Principal="*", FunctionUrlAuthType="NONE")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert json.loads(r["Statement"])["Condition"] == {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}
    lam.add_permission(FunctionName=arn(fn_name), StatementId="FunctionURLAllowPublicAccessInvoke",
                       Action="lambda:InvokeFunction", Principal="*")
    dup = error_of(lam.add_permission, FunctionName=fn_name, StatementId="NT7SFAQK", Action="lambda:InvokeFunction",
                   Principal="events.amazonaws.com")
    assert dup["Error"]["Code"] == "ResourceConflictException"

    pol = lam.get_policy(FunctionName=fn_name)
    assert pol["ResponseMetadata"]["HTTPStatusCode"] == 200 and pol["RevisionId"]
    doc = json.loads(pol["Policy"])
    assert doc["Version"] == "2012-10-17"
    assert [s["Sid"] for s in doc["Statement"]] == ["NT7SFAQK", "FunctionURLAllowPublicAccess",
                                                   "FunctionURLAllowPublicAccessInvoke"]
    assert doc["Statement"][2]["Principal"] == "*"

    # Zappa's _clear_policy: remove the events.amazonaws.com statements, each answered 204.
    for s in doc["Statement"]:
        p = s.get("Principal", {})
        if isinstance(p, dict) and p.get("Service") == "events.amazonaws.com":
            d = lam.remove_permission(FunctionName=fn_name, StatementId=s["Sid"])
            assert d["ResponseMetadata"]["HTTPStatusCode"] == 204
    left = json.loads(lam.get_policy(FunctionName=fn_name)["Policy"])["Statement"]
    assert [s["Sid"] for s in left] == ["FunctionURLAllowPublicAccess", "FunctionURLAllowPublicAccessInvoke"]
    assert error_of(lam.remove_permission, FunctionName=fn_name, StatementId="NT7SFAQK")["Error"]["Code"] == \
        "ResourceNotFoundException"
    # Missing function: Lambda's wording.
    err = error_of(lam.get_policy, FunctionName="no-such-fn-x")
    assert err["Error"]["Message"] == f"Function not found: {arn('no-such-fn-x')}"


def test_reserved_concurrency_throttles(server, lam, fn_name):
    server.create(lam, fn_name, app("slow"), Timeout=20)
    invoke(lam, fn_name)  # warm: the template is up, so the two calls below overlap for sure
    r = lam.put_function_concurrency(FunctionName=fn_name, ReservedConcurrentExecutions=1)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200 and r["ReservedConcurrentExecutions"] == 1
    assert lam.get_function_concurrency(FunctionName=fn_name)["ReservedConcurrentExecutions"] == 1
    assert lam.get_function(FunctionName=fn_name)["Concurrency"] == {"ReservedConcurrentExecutions": 1}

    def call(_):
        try:
            r = lam.invoke(FunctionName=fn_name, Payload=json.dumps({"sleep": 2}).encode())
            return r["StatusCode"], None
        except botocore.exceptions.ClientError as e:
            return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(call, 0)
        time.sleep(0.5)  # the first is running (it sleeps 2 s) when the second arrives
        second = pool.submit(call, 1)
        results = [first.result(timeout=30), second.result(timeout=30)]
    assert results[0] == (200, None), results
    status, err = results[1]
    assert status == 429, results
    assert err["Error"]["Code"] == "TooManyRequestsException"
    assert err.get("Reason") == "ReservedFunctionConcurrentInvocationLimitExceeded", err

    # Zero stops every invocation; deleting the setting lifts the cap (204).
    lam.put_function_concurrency(FunctionName=fn_name, ReservedConcurrentExecutions=0)
    assert error_of(lam.invoke, FunctionName=fn_name, Payload=b"{}")["Error"]["Code"] == "TooManyRequestsException"
    d = lam.delete_function_concurrency(FunctionName=fn_name)
    assert d["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=fn_name)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        both = list(pool.map(call, range(2), timeout=30))
    assert both == [(200, None), (200, None)]
    # Over the account's unreserved minimum: Lambda's validation wording.
    err = error_of(lam.put_function_concurrency, FunctionName=fn_name, ReservedConcurrentExecutions=950)
    assert err["Error"]["Code"] == "InvalidParameterValueException"
    assert "UnreservedConcurrentExecution" in err["Error"]["Message"]
    settings = lam.get_account_settings()
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert settings["AccountUsage"]["FunctionCount"] >= 1


def test_tags(server, lam, fn_name):
    lam.create_function(FunctionName=fn_name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": make_zip(app("t"))}, Tags={"team": "web"})
    server.wait_active(lam, fn_name)
    assert lam.list_tags(Resource=arn(fn_name))["Tags"] == {"team": "web"}
    r = lam.tag_resource(Resource=arn(fn_name), Tags={"ZappaProject": fn_name, "team": "api"})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.list_tags(Resource=arn(fn_name))["Tags"] == {"team": "api", "ZappaProject": fn_name}
    lam.untag_resource(Resource=arn(fn_name), TagKeys=["team", "absent"])
    assert lam.get_function(FunctionName=fn_name)["Tags"] == {"ZappaProject": fn_name}
    err = error_of(lam.list_tags, Resource=arn("no-such-fn-y"))
    assert err["Error"]["Code"] == "ResourceNotFoundException"


def test_code_from_s3_is_copied_synchronously(server, lam, fn_name):
    s3 = server.client("s3")
    bucket = unique("deploys")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="v1.zip", Body=make_zip(app("from-s3")))
    created = lam.create_function(FunctionName=fn_name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                  Code={"S3Bucket": bucket, "S3Key": "v1.zip"}, Publish=True)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    # Zappa deletes the object as soon as CreateFunction returns: the code must already be ours.
    s3.delete_object(Bucket=bucket, Key="v1.zip")
    server.wait_active(lam, fn_name)
    assert invoke(lam, fn_name)[1]["tag"] == "from-s3"
    s3.put_object(Bucket=bucket, Key="v2.zip", Body=make_zip(app("s3-two")))
    up = lam.update_function_code(FunctionName=fn_name, S3Bucket=bucket, S3Key="v2.zip", Publish=True)
    assert up["FunctionArn"] == arn(fn_name, "2")
    s3.delete_object(Bucket=bucket, Key="v2.zip")
    server.wait_active(lam, fn_name)
    assert invoke(lam, fn_name)[1]["tag"] == "s3-two"
    err = error_of(lam.update_function_code, FunctionName=fn_name, S3Bucket=bucket, S3Key="gone.zip")
    assert err["Error"]["Code"] == "InvalidParameterValueException"
    assert err["Error"]["Message"] == ("Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: "
                                       "The specified key does not exist: gone.zip")
    err = error_of(lam.update_function_code, FunctionName=fn_name, S3Bucket="geysir-no-such-bucket", S3Key="a.zip")
    assert err["Error"]["Message"] == ("Error occurred while GetObject. S3 Error Code: NoSuchBucket. S3 Error "
                                       "Message: The specified bucket does not exist: geysir-no-such-bucket")


def test_aws_cli_v2(server, lam, fn_name):
    server.create(lam, fn_name, app("cli"))
    r = server.aws("lambda", "publish-version", "--function-name", fn_name)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Version"] == "1"
    r = server.aws("lambda", "list-versions-by-function", "--function-name", fn_name)
    assert [v["Version"] for v in json.loads(r.stdout)["Versions"]] == ["$LATEST", "1"]
    r = server.aws("lambda", "create-alias", "--function-name", fn_name, "--name", "prod", "--function-version", "1")
    assert r.returncode == 0, r.stderr
    r = server.aws("lambda", "add-permission", "--function-name", fn_name, "--statement-id", "s1",
                   "--action", "lambda:InvokeFunction", "--principal", "s3.amazonaws.com", "--qualifier", "prod")
    assert r.returncode == 0, r.stderr
    assert json.loads(json.loads(r.stdout)["Statement"])["Resource"] == arn(fn_name, "prod")
    r = server.aws("lambda", "get-policy", "--function-name", fn_name, "--qualifier", "prod")
    assert r.returncode == 0, r.stderr
    r = server.aws("lambda", "get-policy", "--function-name", fn_name)
    assert r.returncode != 0 and "ResourceNotFoundException" in r.stderr
    r = server.aws("lambda", "put-function-concurrency", "--function-name", fn_name,
                   "--reserved-concurrent-executions", "3")
    assert r.returncode == 0 and json.loads(r.stdout)["ReservedConcurrentExecutions"] == 3, r.stderr
    r = server.aws("lambda", "delete-function-concurrency", "--function-name", fn_name)
    assert r.returncode == 0, r.stderr


def test_payload_limits(server, lam, fn_name):
    """Lambda's limits where Lambda enforces them: 6,291,456-byte synchronous requests, 1,048,576-byte
    async events (RequestTooLargeException, 413, before anything runs), 6,291,556-byte responses
    (Function.ResponseSizeTooLarge from the function)."""
    server.create(lam, fn_name, {"app.py": (
        "def handler(event, context):\n"
        "    return 'x' * event['n'] if isinstance(event, dict) and 'n' in event else len(str(event))\n")},
        MemorySize=256)
    sync_limit, async_limit = 6 * 1024 * 1024, 1024 * 1024

    def padded(size):
        return b'"' + b"a" * (size - 2) + b'"'

    err = error_of(lam.invoke, FunctionName=fn_name, Payload=padded(sync_limit + 1))
    assert err["Error"]["Code"] == "RequestTooLargeException" and err["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert err["Error"]["Message"] == "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
    r = lam.invoke(FunctionName=fn_name, Payload=padded(sync_limit))
    assert "FunctionError" not in r and json.loads(r["Payload"].read()) == sync_limit - 2

    err = error_of(lam.invoke, FunctionName=fn_name, InvocationType="Event", Payload=padded(async_limit + 1))
    assert err["Error"]["Code"] == "RequestTooLargeException" and err["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert err["Error"]["Message"] == "Request must be smaller than 1048576 bytes for the InvokeAsync operation"
    assert lam.invoke(FunctionName=fn_name, InvocationType="Event", Payload=padded(async_limit))["StatusCode"] == 202

    # The response: a JSON string of n bytes is n + 2 bytes on the wire.
    r = lam.invoke(FunctionName=fn_name, Payload=json.dumps({"n": 6291556 - 2}).encode())
    assert "FunctionError" not in r and len(r["Payload"].read()) == 6291556
    r = lam.invoke(FunctionName=fn_name, Payload=json.dumps({"n": 6291556 - 1}).encode())
    assert r["FunctionError"] == "Unhandled"
    assert json.loads(r["Payload"].read()) == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge"}
