"""Zappa end to end: the AWS calls Zappa 0.62.1 makes for deploy, update, invoke, schedule,
rollback, tail, status and undeploy (as recorded from Zappa against AWS; docs/zappa.md), replayed call
for call with boto3 against one real Geysir, asserting every status code and response field
Zappa reads, and that the URL each mode produces serves the Flask app in tests/zappa_app
(behind our own handler.lambda_handler, Zappa's entry point name) — path, query, headers,
cookies and a binary body round trip.

Three deployments, as Zappa's settings make them:
  furl  apigateway_enabled false, function_url_enabled true   (function URL)
  dev   the default: a REST API (API Gateway v1) built by a CloudFormation stack
  v2    apigateway_version "v2": an HTTP API built by a CloudFormation stack
plus CloudFormation's failure paths (an unsupported type refused at CreateStack, a resource
that fails rolls the stack back and leaves nothing).

Each scenario's steps are separate tests in file order sharing `state`; a step whose
predecessor failed is skipped with that reason, so one failure reads as one failure.
"""
import base64
import http.client
import json
import os
import time
import urllib.parse
import urllib.request

import botocore.exceptions
import pytest

from conftest import make_zip, unique, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
APP_DIR = os.path.join(os.path.dirname(HERE), "zappa_app")

ASSUME_ROLE = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "", "Effect": "Allow", "Principal": {"Service": ["apigateway.amazonaws.com", "lambda.amazonaws.com",
                                                             "events.amazonaws.com"]},
     "Action": "sts:AssumeRole"}]}, indent=2)
ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["logs:*"], "Resource": "arn:aws:logs:*:*:*"},
    {"Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": ["*"]}]}, indent=4)
CORS = {"AllowCredentials": False, "AllowHeaders": ["*"], "AllowMethods": ["*"], "AllowOrigins": ["*"],
        "ExposeHeaders": [], "MaxAge": 0}
BINARY = bytes(range(256)) * 4

state = {}


# --------------------------------------------------------------------------------------------
# helpers

def app_zip(version):
    files = {}
    for name in ("handler.py", "app.py", "zappa_settings.py"):
        with open(os.path.join(APP_DIR, name)) as f:
            files[name] = f.read()
    files["VERSION"] = version + "\n"
    return make_zip(files)


def error_code(fn, *args, **kwargs):
    """Calls fn; returns (error code, HTTP status) of the ClientError it must raise."""
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn(*args, **kwargs)
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def status_of(response):
    return response["ResponseMetadata"]["HTTPStatusCode"]


def need(*keys):
    for k in keys:
        if not state.get(k):
            pytest.skip(f"an earlier step did not complete ({k})")


def request(server, url, method="GET", path="", body=None, headers=None):
    """One HTTP request to a Geysir URL (function URL or execute-api host) over loopback.
    Returns (status, http.client.HTTPMessage, body bytes)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection("127.0.0.1", u.port or server.http_port, timeout=30)
    try:
        h = {"Host": u.netloc}
        h.update(headers or {})
        conn.request(method, u.path.rstrip("/") + path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, r.msg, r.read()
    finally:
        conn.close()


def check_serves_app(server, base, version):
    """The Flask app answers at `base` (a URL whose path is the stage prefix or empty)."""
    st, _, body = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(request(server, base, path="/")),
                             20, interval=0.2, what=f"{base} serving the app")
    assert body.decode() == f"tinyapp {version}\n"
    # Path, multi-valued query, headers, cookies, body.
    st, msg, body = request(server, base, "POST", "/echo?x=1&x=2&y=%C3%A9",
                            body=b'{"k": "v"}',
                            headers={"Content-Type": "application/json", "X-Custom": "abc",
                                     "Cookie": "c1=v1; c2=v2"})
    assert st == 200, body
    echo = json.loads(body)
    assert echo["version"] == version
    assert echo["method"] == "POST"
    assert echo["path"] == "/echo"
    assert echo["args"] == {"x": ["1", "2"], "y": ["é"]}
    assert echo["headers"]["x-custom"] == "abc"
    assert echo["cookies"] == {"c1": "v1", "c2": "v2"}
    assert echo["body"] == '{"k": "v"}'
    assert msg.get("Content-Type") == "application/json"
    # Two Set-Cookie headers come back as two headers.
    st, msg, body = request(server, base, path="/cookies")
    assert st == 200
    cookies = sorted(msg.get_all("Set-Cookie") or [])
    assert len(cookies) == 2 and cookies[0].startswith("a=1") and cookies[1].startswith("b=2"), cookies
    # A binary body both ways.
    st, msg, body = request(server, base, "POST", "/binary", body=BINARY,
                            headers={"Content-Type": "application/octet-stream"})
    assert st == 200
    assert msg.get("X-Length") == str(len(BINARY))
    assert body == bytes(reversed(BINARY))
    # A route the app does not have is the app's 404, not the platform's.
    st, _, body = request(server, base, path="/nope")
    assert st == 404 and b"Not Found" in body


def ensure_role(server, role_name):
    """deploy: GetRole (NoSuchEntity) -> CreateRole -> GetRolePolicy (NoSuchEntity) -> PutRolePolicy."""
    iam = server.client("iam")
    assert error_code(iam.get_role, RoleName=role_name) == ("NoSuchEntity", 404)
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=ASSUME_ROLE)["Role"]
    assert role["RoleName"] == role_name and role["Arn"].endswith(":role/" + role_name)
    assert error_code(iam.get_role_policy, RoleName=role_name, PolicyName="zappa-permissions") == ("NoSuchEntity", 404)
    assert status_of(iam.put_role_policy(RoleName=role_name, PolicyName="zappa-permissions",
                                         PolicyDocument=ROLE_POLICY)) == 200
    return role["Arn"]


def upload(server, bucket, key, data, create_bucket=False):
    s3 = server.client("s3")
    if create_bucket:
        assert error_code(s3.head_bucket, Bucket=bucket)[1] == 404
        s3.create_bucket(Bucket=bucket)
    else:
        assert status_of(s3.head_bucket(Bucket=bucket)) == 200
    s3.put_object(Bucket=bucket, Key=key, Body=data)


def remove_upload(server, bucket, key):
    s3 = server.client("s3")
    assert status_of(s3.head_bucket(Bucket=bucket)) == 200
    assert status_of(s3.delete_object(Bucket=bucket, Key=key)) == 204


def create_function(server, name, role_arn, bucket, key):
    lam = server.lambda_client()
    assert error_code(lam.get_function, FunctionName=name)[0] == "ResourceNotFoundException"
    r = lam.create_function(
        FunctionName=name, Role=role_arn, Description="Zappa Deployment", Timeout=30, MemorySize=512,
        EphemeralStorage={"Size": 512}, Publish=True, VpcConfig={}, DeadLetterConfig={}, FileSystemConfigs=[],
        Environment={"Variables": {}}, KMSKeyArn="", TracingConfig={"Mode": "PassThrough"},
        SnapStart={"ApplyOn": "None"}, Layers=[], Architectures=["x86_64"], Runtime="python3.11",
        Handler="handler.lambda_handler", PackageType="Zip", Code={"S3Bucket": bucket, "S3Key": key})
    assert status_of(r) == 201
    # CreateFunction returns the unqualified ARN even with Publish=true.
    assert r["FunctionArn"].endswith(":function:" + name)
    assert r["Version"] == "1"
    cfg = wait_until(lambda: (lambda c: c if c["State"] == "Active" and c["LastUpdateStatus"] == "Successful"
                              else None)(lam.get_function_configuration(FunctionName=name)),
                     30, interval=0.2, what=f"{name} Active/Successful")
    assert cfg["Handler"] == "handler.lambda_handler"
    lam.get_function(FunctionName=name)
    return r["FunctionArn"]


def schedule(server, name, fn_arn, role_arn, with_policy):
    """The events part of deploy/update/schedule: GetPolicy, ListRuleNamesByTarget, then per rule
    PutRule, GetCallerIdentity, AddPermission (201), PutTargets (200) with Zappa's InputTransformer."""
    lam, events, sts = server.lambda_client(), server.client("events"), server.client("sts")
    if with_policy is False:
        assert error_code(lam.get_policy, FunctionName=name)[0] == "ResourceNotFoundException"
    assert events.list_rule_names_by_target(TargetArn=fn_arn)["RuleNames"] == []
    region, account = fn_arn.split(":")[3], fn_arn.split(":")[4]
    sids = []
    for rule, expr, desc, kwargs in (
            (f"{name}-app.tick", "rate(5 minutes)", "app.tick", {"a": 1}),
            (f"{name}-zappa-keep-warm-handler.keep_warm_callback", "rate(4 minutes)", f"Zappa Keep Warm - {name}", {})):
        r = events.put_rule(Name=rule, ScheduleExpression=expr, State="ENABLED", Description=desc, RoleArn=role_arn)
        assert r["RuleArn"] == f"arn:aws:events:{region}:{account}:rule/{rule}"
        assert sts.get_caller_identity()["Account"] == account
        sid = unique("S")[:10].upper()
        p = lam.add_permission(FunctionName=name, StatementId=sid, Action="lambda:InvokeFunction",
                               Principal="events.amazonaws.com", SourceArn=r["RuleArn"], SourceAccount=account)
        assert status_of(p) == 201
        assert json.loads(p["Statement"])["Sid"] == sid
        sids.append(sid)
        template = ('{"time": <time>, "detail-type": <detail-type>, "source": <source>,"account": <account>, '
                    '"region": <region>,"detail": <detail>, "version": <version>,"resources": <resources>,'
                    '"id": <id>,"kwargs": %s}' % json.dumps(kwargs))
        t = events.put_targets(Rule=rule, Targets=[{
            "Id": "Id" + str(int(time.time() * 1000))[-12:], "Arn": fn_arn,
            "InputTransformer": {"InputPathsMap": {k: "$." + k for k in (
                "time", "detail-type", "source", "account", "region", "detail", "version", "resources", "id")},
                "InputTemplate": template}}])
        assert status_of(t) == 200 and t["FailedEntryCount"] == 0
    assert sorted(events.list_rule_names_by_target(TargetArn=fn_arn)["RuleNames"]) == sorted(
        [f"{name}-app.tick", f"{name}-zappa-keep-warm-handler.keep_warm_callback"])
    return sids


def unschedule(server, name, fn_arn):
    """GetFunction, GetPolicy, RemovePermission (204) for each events statement, then per rule
    ListTargetsByRule, RemoveTargets, DeleteRule."""
    lam, events = server.lambda_client(), server.client("events")
    lam.get_function(FunctionName=name)
    policy = json.loads(lam.get_policy(FunctionName=name)["Policy"])
    for st in policy["Statement"]:
        if "events.amazonaws.com" in json.dumps(st.get("Principal")):
            assert status_of(lam.remove_permission(FunctionName=name, StatementId=st["Sid"])) == 204
    for rule in events.list_rule_names_by_target(TargetArn=fn_arn)["RuleNames"]:
        ids = [t["Id"] for t in events.list_targets_by_rule(Rule=rule)["Targets"]]
        assert ids
        assert events.remove_targets(Rule=rule, Ids=ids)["FailedEntryCount"] == 0
        assert status_of(events.delete_rule(Name=rule)) == 200
    assert events.list_rule_names_by_target(TargetArn=fn_arn)["RuleNames"] == []


def zappa_rest_template(fn_arn, role_arn, region, name):
    """What Zappa's troposphere code writes for the REST API (cfn-tinyapp-dev.json's shape)."""
    def method(resource_id):
        return {"Properties": {
            "ApiKeyRequired": False, "AuthorizationType": "NONE", "HttpMethod": "ANY",
            "Integration": {"CacheKeyParameters": [], "CacheNamespace": "none", "Credentials": role_arn,
                            "IntegrationHttpMethod": "POST", "IntegrationResponses": [],
                            "PassthroughBehavior": "NEVER", "Type": "AWS_PROXY",
                            "Uri": f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{fn_arn}/invocations"},
            "MethodResponses": [], "ResourceId": resource_id, "RestApiId": {"Ref": "Api"}},
            "Type": "AWS::ApiGateway::Method"}
    return json.dumps({"Description": "Automatically generated with Zappa", "Resources": {
        "ANY0": method({"Fn::GetAtt": ["Api", "RootResourceId"]}),
        "ANY1": method({"Ref": "ResourceAnyPathSlashed"}),
        "Api": {"Properties": {"Description": "Created automatically by Zappa.", "Name": name},
                "Type": "AWS::ApiGateway::RestApi"},
        "ResourceAnyPathSlashed": {"Properties": {"ParentId": {"Fn::GetAtt": ["Api", "RootResourceId"]},
                                                  "PathPart": "{proxy+}", "RestApiId": {"Ref": "Api"}},
                                   "Type": "AWS::ApiGateway::Resource"}}}, separators=(",", ":"), sort_keys=True)


def zappa_v2_template(fn_arn, name, stage):
    """cfn-tinyapp-v2.json's shape."""
    return json.dumps({"Description": "Automatically generated with Zappa", "Resources": {
        "ApiInvokePermissionV2": {"Properties": {
            "Action": "lambda:InvokeFunction", "FunctionName": fn_arn, "Principal": "apigateway.amazonaws.com",
            "SourceArn": {"Fn::Join": ["", ["arn:aws:execute-api:", {"Ref": "AWS::Region"}, ":",
                                            {"Ref": "AWS::AccountId"}, ":", {"Ref": "ApiV2"}, "/*"]]}},
            "Type": "AWS::Lambda::Permission"},
        "ApiV2": {"Properties": {"Description": "Created automatically by Zappa.", "Name": name,
                                 "ProtocolType": "HTTP"}, "Type": "AWS::ApiGatewayV2::Api"},
        "IntegrationV2": {"Properties": {"ApiId": {"Ref": "ApiV2"}, "IntegrationType": "AWS_PROXY",
                                         "IntegrationUri": fn_arn, "PayloadFormatVersion": "2.0"},
                          "Type": "AWS::ApiGatewayV2::Integration"},
        "RouteV2": {"Properties": {"ApiId": {"Ref": "ApiV2"}, "AuthorizationType": "NONE", "RouteKey": "$default",
                                   "Target": {"Fn::Join": ["", ["integrations/", {"Ref": "IntegrationV2"}]]}},
                    "Type": "AWS::ApiGatewayV2::Route"},
        "StageV2": {"Properties": {"ApiId": {"Ref": "ApiV2"}, "AutoDeploy": True, "StageName": stage},
                    "Type": "AWS::ApiGatewayV2::Stage"}}}, separators=(",", ":"), sort_keys=True)


def stack_up(server, bucket, name, template, update):
    """update_stack(): upload the template, DescribeStacks, CreateStack or UpdateStack with
    TemplateURL https://s3.amazonaws.com/BUCKET/KEY and the ZappaProject tag, DescribeStacks
    (must already be final), delete the template object. Returns the UpdateStack error message
    when there was nothing to update, else None."""
    cf = server.client("cloudformation")
    key = f"{name}-template-{int(time.time() * 1000)}.json"
    upload(server, bucket, key, template.encode())
    url = f"https://s3.amazonaws.com/{bucket}/{key}"
    tags = [{"Key": "ZappaProject", "Value": name}]
    no_update = None
    if not update:
        code, st = error_code(cf.describe_stacks, StackName=name)
        assert (code, st) == ("ValidationError", 400)
        stack_id = cf.create_stack(StackName=name, Capabilities=[], TemplateURL=url, Tags=tags)["StackId"]
        assert stack_id.startswith("arn:aws:cloudformation:") and f":stack/{name}/" in stack_id
        final = "CREATE_COMPLETE"
    else:
        assert cf.describe_stacks(StackName=name)["Stacks"][0]["StackName"] == name
        try:
            cf.update_stack(StackName=name, Capabilities=[], TemplateURL=url, Tags=tags)
            final = "UPDATE_COMPLETE"
        except botocore.exceptions.ClientError as e:
            # Zappa compares this message verbatim and then does not wait.
            no_update = e.response["Error"]["Message"]
            assert e.response["Error"]["Code"] == "ValidationError"
            final = None
    if final:
        stack = cf.describe_stacks(StackName=name)["Stacks"][0]
        assert stack["StackStatus"] == final, stack.get("StackStatusReason")
        assert {t["Key"]: t["Value"] for t in stack["Tags"]} == {"ZappaProject": name}
        summaries = cf.list_stack_resources(StackName=name)["StackResourceSummaries"]
        assert summaries and all("COMPLETE" in s["ResourceStatus"] for s in summaries)
        assert len(summaries) == len(json.loads(template)["Resources"])
    remove_upload(server, bucket, key)
    return no_update


# --------------------------------------------------------------------------------------------
# function URL mode (deploy-furl, update-furl, status-furl, undeploy-furl)

def test_furl_deploy(server):
    name, bucket = unique("tinyapp") + "-furl", unique("zappa-deploys")
    role_arn = ensure_role(server, f"{name}-ZappaLambdaExecutionRole")
    lam = server.lambda_client()
    assert error_code(lam.list_versions_by_function, FunctionName=name)[0] == "ResourceNotFoundException"
    key = f"{name}-{int(time.time())}.zip"
    upload(server, bucket, key, app_zip("1"), create_bucket=True)
    fn_arn = create_function(server, name, role_arn, bucket, key)
    schedule(server, name, fn_arn, role_arn, with_policy=False)
    r = lam.create_function_url_config(FunctionName=fn_arn, AuthType="NONE", Cors=CORS)
    assert status_of(r) == 201
    url = r["FunctionUrl"]
    assert "FunctionURLAllowPublicAccess" not in lam.get_policy(FunctionName=fn_arn)["Policy"]
    p = lam.add_permission(FunctionName=fn_arn, StatementId="FunctionURLAllowPublicAccess",
                           Action="lambda:InvokeFunctionUrl", Principal="*", FunctionUrlAuthType="NONE")
    assert status_of(p) == 201
    p = lam.add_permission(FunctionName=fn_arn, StatementId="FunctionURLAllowPublicAccessInvoke",
                           Action="lambda:InvokeFunction", Principal="*")
    assert status_of(p) == 201
    remove_upload(server, bucket, key)
    remove_upload(server, bucket, key)  # Zappa deletes it twice; the second is a no-op 204
    state.update(furl=dict(name=name, bucket=bucket, role_arn=role_arn, fn_arn=fn_arn, url=url))
    # The object is gone but the function keeps its code (copied at CreateFunction).
    check_serves_app(server, url, "1")


def test_furl_update(server):
    need("furl")
    s = state["furl"]
    name, bucket, fn_arn = s["name"], s["bucket"], s["fn_arn"]
    lam, iam = server.lambda_client(), server.client("iam")
    lam.get_function(FunctionName=name)
    iam.get_role(RoleName=f"{name}-ZappaLambdaExecutionRole")
    doc = iam.get_role_policy(RoleName=f"{name}-ZappaLambdaExecutionRole", PolicyName="zappa-permissions")[
        "PolicyDocument"]
    if isinstance(doc, str):  # botocore decodes IAM policy documents into dicts; be safe either way
        doc = json.loads(urllib.parse.unquote(doc))
    assert doc == json.loads(ROLE_POLICY)
    key = f"{name}-{int(time.time())}-2.zip"
    upload(server, bucket, key, app_zip("2"))
    r = lam.update_function_code(FunctionName=name, Publish=True, S3Bucket=bucket, S3Key=key)
    assert status_of(r) == 200
    assert r["FunctionArn"] == fn_arn + ":2" and r["Version"] == "2"
    assert error_code(lam.get_alias, FunctionName=name, Name="current-alb-version")[0] == "ResourceNotFoundException"
    assert status_of(lam.delete_function_concurrency(FunctionName=name)) == 204
    wait_until(lambda: lam.get_function_configuration(FunctionName=name)["LastUpdateStatus"] == "Successful", 30)
    remove_upload(server, bucket, key)
    lam.get_function_configuration(FunctionName=name)
    r = lam.update_function_configuration(
        FunctionName=name, Role=s["role_arn"], Description="Zappa Deployment", Timeout=30, MemorySize=512,
        EphemeralStorage={"Size": 512}, VpcConfig={}, FileSystemConfigs=[], Environment={"Variables": {}},
        KMSKeyArn="", TracingConfig={"Mode": "PassThrough"}, SnapStart={"ApplyOn": "None"},
        Handler="handler.lambda_handler", Runtime="python3.11", Layers=[])
    assert status_of(r) == 200
    configs = lam.list_function_url_configs(FunctionName=fn_arn, MaxItems=50)["FunctionUrlConfigs"]
    assert [c["FunctionUrl"] for c in configs] == [s["url"]]
    r = lam.update_function_url_config(FunctionName=fn_arn, AuthType="NONE", Cors=CORS)
    assert status_of(r) == 200 and r["FunctionUrl"] == s["url"]
    lam.get_policy(FunctionName=fn_arn)
    unschedule(server, name, fn_arn)
    schedule(server, name, fn_arn, s["role_arn"], with_policy=True)
    check_serves_app(server, s["url"], "2")
    s["updated"] = True


def test_furl_status(server):
    need("furl")
    s = state["furl"]
    lam, cw, events = server.lambda_client(), server.client("cloudwatch"), server.client("events")
    versions = lam.list_versions_by_function(FunctionName=s["name"])["Versions"]
    assert [v["Version"] for v in versions][:2] == ["$LATEST", "1"]
    lam.get_function(FunctionName=s["name"])
    now = time.time()
    for metric in ("Invocations", "Errors"):
        r = cw.get_metric_statistics(Namespace="AWS/Lambda", MetricName=metric, StartTime=now - 86400, EndTime=now + 60,
                                     Period=1440, Statistics=["Sum"],
                                     Dimensions=[{"Name": "FunctionName", "Value": s["name"]}])
        total = sum(d["Sum"] for d in r["Datapoints"])
        if metric == "Invocations":
            assert total >= 5  # check_serves_app made at least five requests
        else:
            assert total == 0
    assert lam.list_function_url_configs(FunctionName=s["name"], MaxItems=50)["FunctionUrlConfigs"]
    for rule in events.list_rule_names_by_target(TargetArn=s["fn_arn"])["RuleNames"]:
        assert events.describe_rule(Name=rule)["State"] == "ENABLED"


def test_furl_undeploy(server):
    need("furl")
    s = state.pop("furl")
    lam = server.lambda_client()
    unschedule(server, s["name"], s["fn_arn"])
    assert status_of(lam.delete_function(FunctionName=s["name"])) in (200, 204)
    st, _, _ = request(server, s["url"], path="/")
    assert st in (403, 404)


# --------------------------------------------------------------------------------------------
# REST API mode (deploy-dev, update-dev, invoke, invoke --raw, rollback, tail, status,
# schedule, unschedule, undeploy-dev)

def rest_api_setup(server, name, api_id, stage):
    """After the stack: GetRestApi, UpdateRestApi x2, CreateDeployment, UpdateStage."""
    apigw = server.client("apigateway")
    assert apigw.get_rest_api(restApiId=api_id)["name"] == name
    r = apigw.update_rest_api(restApiId=api_id, patchOperations=[{"op": "add", "path": "/binaryMediaTypes/*~1*"}])
    assert r["binaryMediaTypes"] == ["*/*"]
    r = apigw.update_rest_api(restApiId=api_id,
                              patchOperations=[{"op": "replace", "path": "/minimumCompressionSize", "value": "0"}])
    assert r["minimumCompressionSize"] == 0
    r = apigw.create_deployment(restApiId=api_id, stageName=stage, stageDescription="", description="",
                                cacheClusterEnabled=False, cacheClusterSize="0.5", variables={})
    assert status_of(r) == 201 and r["id"]
    apigw.update_stage(restApiId=api_id, stageName=stage, patchOperations=[
        {"op": "replace", "path": "/*/*/logging/loglevel", "value": "OFF"},
        {"op": "replace", "path": "/*/*/metrics/enabled", "value": "false"},
        {"op": "replace", "path": "/*/*/caching/enabled", "value": "false"}])


def test_dev_deploy(server):
    name, bucket = unique("tinyapp") + "-dev", unique("zappa-deploys")
    role_arn = ensure_role(server, f"{name}-ZappaLambdaExecutionRole")
    lam = server.lambda_client()
    assert error_code(lam.list_versions_by_function, FunctionName=name)[0] == "ResourceNotFoundException"
    key = f"{name}-{int(time.time())}.zip"
    upload(server, bucket, key, app_zip("1"), create_bucket=True)
    fn_arn = create_function(server, name, role_arn, bucket, key)
    region = fn_arn.split(":")[3]
    schedule(server, name, fn_arn, role_arn, with_policy=False)
    template = zappa_rest_template(fn_arn, role_arn, region, name)
    assert stack_up(server, bucket, name, template, update=False) is None
    cf = server.client("cloudformation")
    detail = cf.describe_stack_resource(StackName=name, LogicalResourceId="Api")["StackResourceDetail"]
    assert detail["ResourceType"] == "AWS::ApiGateway::RestApi" and detail["ResourceStatus"] == "CREATE_COMPLETE"
    api_id = detail["PhysicalResourceId"]
    rest_api_setup(server, name, api_id, "dev")
    remove_upload(server, bucket, key)
    remove_upload(server, bucket, key)
    base = f"http://{api_id}.execute-api.localhost:{server.http_port}/dev"
    # Recorded before the URL is checked, so the API steps that follow run even if serving fails.
    state.update(dev=dict(name=name, bucket=bucket, role_arn=role_arn, fn_arn=fn_arn, api_id=api_id, base=base,
                          template=template))
    check_serves_app(server, base, "1")
    # REST payload 1.0 specifics the handler relies on: the stage is not part of `path`.
    st, _, body = request(server, base, path="/echo")
    assert json.loads(body)["path"] == "/echo"


def test_dev_update(server):
    need("dev")
    s = state["dev"]
    name, bucket = s["name"], s["bucket"]
    lam = server.lambda_client()
    lam.get_function(FunctionName=name)
    key = f"{name}-{int(time.time())}-2.zip"
    upload(server, bucket, key, app_zip("2"))
    r = lam.update_function_code(FunctionName=name, Publish=True, S3Bucket=bucket, S3Key=key)
    assert r["FunctionArn"] == s["fn_arn"] + ":2"
    assert error_code(lam.get_alias, FunctionName=name, Name="current-alb-version")[0] == "ResourceNotFoundException"
    assert status_of(lam.delete_function_concurrency(FunctionName=name)) == 204
    remove_upload(server, bucket, key)
    # The same template again: nothing to update, worded exactly as Zappa compares it.
    assert stack_up(server, bucket, name, s["template"], update=True) == "No updates are to be performed."
    cf = server.client("cloudformation")
    api_id = cf.describe_stack_resource(StackName=name, LogicalResourceId="Api")["StackResourceDetail"][
        "PhysicalResourceId"]
    assert api_id == s["api_id"]
    rest_api_setup(server, name, api_id, "dev")
    assert lam.list_function_url_configs(FunctionName=s["fn_arn"], MaxItems=50)["FunctionUrlConfigs"] == []
    unschedule(server, name, s["fn_arn"])
    schedule(server, name, s["fn_arn"], s["role_arn"], with_policy=True)
    # A changed template updates in place: the API (and its URL) stays, a new method appears.
    changed = json.loads(s["template"])
    changed["Description"] = "Automatically generated with Zappa (changed)"
    assert stack_up(server, bucket, name, json.dumps(changed), update=True) is None
    stack = cf.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_COMPLETE" and "LastUpdatedTime" in stack
    assert cf.describe_stack_resource(StackName=name, LogicalResourceId="Api")["StackResourceDetail"][
        "PhysicalResourceId"] == api_id
    events = cf.describe_stack_events(StackName=name)["StackEvents"]
    assert events[0]["ResourceStatus"] == "UPDATE_COMPLETE" and events[0]["LogicalResourceId"] == name
    check_serves_app(server, s["base"], "2")


def test_dev_invoke(server):
    need("dev")
    lam = server.lambda_client()
    r = lam.invoke(FunctionName=state["dev"]["name"], InvocationType="RequestResponse", LogType="Tail",
                   Payload=json.dumps({"command": "app.hello"}))
    assert r["StatusCode"] == 200 and "FunctionError" not in r
    assert json.loads(r["Payload"].read()) == "hello from tinyapp 2"
    assert "HELLO from app.hello" in base64.b64decode(r["LogResult"]).decode()
    r = lam.invoke(FunctionName=state["dev"]["name"], InvocationType="RequestResponse", LogType="Tail",
                   Payload=json.dumps({"raw_command": "print(1+1)"}))
    assert r["StatusCode"] == 200 and "FunctionError" not in r
    assert "\n2\n" in "\n" + base64.b64decode(r["LogResult"]).decode()
    # A scheduled event as EventBridge + Zappa's InputTransformer build it reaches app.tick.
    event = {"time": "2026-11-27T08:00:00Z", "detail-type": "Scheduled Event", "source": "aws.events",
             "account": "000000000000", "region": "us-east-1", "detail": {}, "version": "0",
             "resources": [f"arn:aws:events:us-east-1:000000000000:rule/{state['dev']['name']}-app.tick"],
             "id": "x", "kwargs": {"a": 1}}
    r = lam.invoke(FunctionName=state["dev"]["name"], LogType="Tail", Payload=json.dumps(event))
    assert json.loads(r["Payload"].read()) == "ticked"
    assert 'TICK {"kwargs": {"a": 1}, "detail-type": "Scheduled Event"}' in base64.b64decode(r["LogResult"]).decode()
    # InvocationType=Event: 202, and it runs.
    r = lam.invoke(FunctionName=state["dev"]["name"], InvocationType="Event",
                   Payload=json.dumps({"command": "app.hello"}))
    assert r["StatusCode"] == 202
    state["dev"]["invoked"] = True


def test_dev_tail(server):
    need("dev")
    logs = server.client("logs")
    group = f"/aws/lambda/{state['dev']['name']}"

    def find():
        streams = logs.describe_log_streams(logGroupName=group, descending=True, orderBy="LastEventTime")["logStreams"]
        if not streams:
            return None
        now_ms = int(time.time() * 1000)
        r = logs.filter_log_events(logGroupName=group, logStreamNames=[s["logStreamName"] for s in streams],
                                   startTime=now_ms - 3600_000, endTime=now_ms + 60_000, filterPattern="",
                                   limit=10000, interleaved=True)
        msgs = [e["message"] for e in r["events"]]
        # Everything in one page: Zappa's tail mis-pages nextToken.
        assert "nextToken" not in r or not r["nextToken"]
        return msgs if sum("HELLO from app.hello" in m for m in msgs) >= 2 else None
    msgs = wait_until(find, 20, interval=0.3, what="the invocations' lines in FilterLogEvents")
    assert any("TICK" in m for m in msgs)


def test_dev_schedule_unschedule(server):
    need("dev")
    s = state["dev"]
    unschedule(server, s["name"], s["fn_arn"])
    server.client("iam").get_role(RoleName=f"{s['name']}-ZappaLambdaExecutionRole")
    schedule(server, s["name"], s["fn_arn"], s["role_arn"], with_policy=True)
    unschedule(server, s["name"], s["fn_arn"])


def test_dev_rollback(server):
    need("dev")
    s = state["dev"]
    lam = server.lambda_client()
    versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName=s["name"])["Versions"]]
    assert versions[0] == "$LATEST" and "1" in versions and "2" in versions
    code = lam.get_function(FunctionName=f"function:{s['name']}:1")
    assert code["Configuration"]["Version"] == "1"
    with urllib.request.urlopen(code["Code"]["Location"], timeout=30) as f:  # plain, unsigned GET
        old_zip = f.read()
    r = lam.update_function_code(FunctionName=s["name"], ZipFile=old_zip, Publish=True)
    assert r["FunctionArn"].startswith(s["fn_arn"] + ":")
    wait_until(lambda: lam.get_function_configuration(FunctionName=s["name"])["LastUpdateStatus"] == "Successful", 30)
    check_serves_app(server, s["base"], "1")


def test_dev_status(server):
    need("dev")
    s = state["dev"]
    lam, cf, apigw = server.lambda_client(), server.client("cloudformation"), server.client("apigateway")
    lam.list_versions_by_function(FunctionName=s["name"])
    lam.get_function(FunctionName=s["name"])
    now = time.time()
    r = server.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda", MetricName="Invocations", StartTime=now - 86400, EndTime=now + 60, Period=1440,
        Statistics=["Sum"], Dimensions=[{"Name": "FunctionName", "Value": s["name"]}])
    assert sum(d["Sum"] for d in r["Datapoints"]) >= 1
    for _ in range(2):
        assert cf.describe_stack_resource(StackName=s["name"], LogicalResourceId="Api")["StackResourceDetail"][
            "PhysicalResourceId"] == s["api_id"]
    assert "items" in apigw.get_api_keys(limit=500)


def test_dev_undeploy(server):
    need("dev")
    s = state.pop("dev")
    lam, cf, apigw = server.lambda_client(), server.client("cloudformation"), server.client("apigateway")
    assert s["api_id"] in [a["id"] for a in apigw.get_rest_apis(limit=500)["items"]]
    stack = cf.describe_stacks(StackName=s["name"])["Stacks"][0]
    assert {t["Key"]: t["Value"] for t in stack["Tags"]}.get("ZappaProject") == s["name"]
    assert status_of(cf.delete_stack(StackName=s["name"])) == 200
    # What the stack_delete_complete waiter polls for: the stack is gone.
    assert error_code(cf.describe_stacks, StackName=s["name"]) == ("ValidationError", 400)
    cf.get_waiter("stack_delete_complete").wait(StackName=s["name"], WaiterConfig={"Delay": 1, "MaxAttempts": 3})
    assert s["api_id"] not in [a["id"] for a in apigw.get_rest_apis(limit=500)["items"]]
    st, _, _ = request(server, s["base"], path="/")
    assert st in (403, 404)
    lam.get_function(FunctionName=s["name"])
    assert error_code(lam.get_policy, FunctionName=s["name"])[0] == "ResourceNotFoundException"
    assert server.client("events").list_rule_names_by_target(TargetArn=s["fn_arn"])["RuleNames"] == []
    lam.delete_function(FunctionName=s["name"])
    server.client("logs").delete_log_group(logGroupName=f"/aws/lambda/{s['name']}")
    assert status_of(cf.delete_stack(StackName=s["name"])) == 200  # deleting again is fine


# --------------------------------------------------------------------------------------------
# HTTP API mode (deploy-v2)

def test_v2_deploy_and_undeploy(server):
    name, bucket = unique("tinyapp") + "-v2", unique("zappa-deploys")
    role_arn = ensure_role(server, f"{name}-ZappaLambdaExecutionRole")
    lam, cf = server.lambda_client(), server.client("cloudformation")
    key = f"{name}-{int(time.time())}.zip"
    upload(server, bucket, key, app_zip("1"), create_bucket=True)
    fn_arn = create_function(server, name, role_arn, bucket, key)
    template = zappa_v2_template(fn_arn, name, "v2")
    assert stack_up(server, bucket, name, template, update=False) is None
    for _ in range(2):
        api_id = cf.describe_stack_resource(StackName=name, LogicalResourceId="ApiV2")["StackResourceDetail"][
            "PhysicalResourceId"]
    remove_upload(server, bucket, key)
    # The Lambda::Permission resource is a real statement in the function's policy.
    policy = json.loads(lam.get_policy(FunctionName=name)["Policy"])
    sources = [json.dumps(st.get("Condition", {})) for st in policy["Statement"]]
    assert any(f":{api_id}/*" in c for c in sources), policy
    check_serves_app(server, f"http://{api_id}.execute-api.localhost:{server.http_port}/v2", "1")
    assert status_of(cf.delete_stack(StackName=name)) == 200
    assert error_code(cf.describe_stacks, StackName=name)[0] == "ValidationError"
    assert error_code(lam.get_policy, FunctionName=name)[0] == "ResourceNotFoundException"
    assert api_id not in [a["ApiId"] for a in server.client("apigatewayv2").get_apis()["Items"]]
    lam.delete_function(FunctionName=name)


# --------------------------------------------------------------------------------------------
# CloudFormation's failure paths

def test_cfn_unsupported_type_is_refused_up_front(server):
    cf, apigw = server.client("cloudformation"), server.client("apigateway")
    name = unique("cfn")
    body = json.dumps({"Resources": {"Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": name}},
                                     "Queue": {"Type": "AWS::SQS::Queue"}}})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        cf.create_stack(StackName=name, TemplateBody=body)
    err = e.value.response["Error"]
    assert err["Code"] == "ValidationError"
    assert err["Message"] == "Template format error: Unrecognized resource types: [AWS::SQS::Queue]"
    assert error_code(cf.describe_stacks, StackName=name)[0] == "ValidationError"
    assert name not in [a["name"] for a in apigw.get_rest_apis(limit=500)["items"]]


def test_cfn_failed_resource_rolls_back(server):
    cf, apigw = server.client("cloudformation"), server.client("apigateway")
    name = unique("cfn")
    # The second resource names a parent resource the API does not have: API Gateway refuses
    # it after the API itself was made, so the API must be removed again.
    body = json.dumps({"Resources": {
        "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": name}},
        "Res": {"Type": "AWS::ApiGateway::Resource", "Properties": {
            "RestApiId": {"Ref": "Api"}, "ParentId": {"Fn::Sub": "no-such-parent-${AWS::StackName}"},
            "PathPart": "x"}}}})
    cf.create_stack(StackName=name, TemplateBody=body)
    stack = cf.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    assert stack["StackStatusReason"].startswith("The following resource(s) failed to create: [Res].")
    failed = [e for e in cf.describe_stack_events(StackName=name)["StackEvents"]
              if e["LogicalResourceId"] == "Res" and e["ResourceStatus"] == "CREATE_FAILED"]
    assert failed and failed[0]["ResourceStatusReason"]
    print("failure reason:", stack["StackStatusReason"])
    assert name not in [a["name"] for a in apigw.get_rest_apis(limit=500)["items"]]  # rolled back for real
    code, _ = error_code(cf.update_stack, StackName=name, TemplateBody=body)
    assert code == "ValidationError"
    cf.delete_stack(StackName=name)
    assert error_code(cf.describe_stacks, StackName=name)[0] == "ValidationError"


def test_cfn_template_url_must_name_an_object(server):
    cf = server.client("cloudformation")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        cf.create_stack(StackName=unique("cfn"), TemplateURL="https://s3.amazonaws.com/no-such-bucket-x/t.json")
    assert e.value.response["Error"]["Code"] == "ValidationError"
    assert "no-such-bucket-x" in e.value.response["Error"]["Message"]
