"""IAM and STS on control's endpoint (query protocol), driven by boto3 and the AWS CLI v2: the
calls Zappa's deploy/update make, in order, with the answers it reads."""
import json

import botocore.exceptions
import pytest

from conftest import unique

TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "", "Effect": "Allow",
                   "Principal": {"Service": ["apigateway.amazonaws.com", "lambda.amazonaws.com",
                                             "events.amazonaws.com"]},
                   "Action": "sts:AssumeRole"}],
}
PERMISSIONS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["logs:*"], "Resource": "arn:aws:logs:*:*:*"},
                  {"Effect": "Allow", "Action": ["s3:*"], "Resource": "arn:aws:s3:::*"}],
}


@pytest.fixture(scope="module")
def iam(server):
    return server.client("iam")


def code_of(e):
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_zappa_role_sequence(server, iam):
    """deploy-dev.log: GetRole (NoSuchEntity) -> CreateRole -> GetRolePolicy (NoSuchEntity) ->
    PutRolePolicy; update-dev.log: GetRole -> GetRolePolicy (found)."""
    name = unique("tinyapp-dev-ZappaLambdaExecutionRole")[:64]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.get_role(RoleName=name)
    assert code_of(e) == ("NoSuchEntity", 404)
    assert f"The role with name {name} cannot be found." == e.value.response["Error"]["Message"]
    trust_text = json.dumps(TRUST, indent=2)
    created = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_text)["Role"]
    assert created["RoleName"] == name and created["Path"] == "/"
    assert created["Arn"] == f"arn:aws:iam::000000000000:role/{name}"
    assert created["RoleId"].startswith("AROA")
    # botocore URL-decodes and parses the document IAM returns URL-encoded.
    assert created["AssumeRolePolicyDocument"] == TRUST
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.get_role_policy(RoleName=name, PolicyName="zappa-permissions")
    assert code_of(e) == ("NoSuchEntity", 404)
    iam.put_role_policy(RoleName=name, PolicyName="zappa-permissions", PolicyDocument=json.dumps(PERMISSIONS, indent=4))

    role = iam.get_role(RoleName=name)["Role"]
    assert role["Arn"] == created["Arn"] and role["RoleId"] == created["RoleId"]
    assert role["AssumeRolePolicyDocument"] == TRUST and role["CreateDate"] == created["CreateDate"]
    got = iam.get_role_policy(RoleName=name, PolicyName="zappa-permissions")
    assert got["PolicyDocument"] == PERMISSIONS and got["RoleName"] == name
    # Zappa rewrites the trust policy when it differs.
    narrower = dict(TRUST, Statement=[dict(TRUST["Statement"][0], Principal={"Service": "lambda.amazonaws.com"})])
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(narrower))
    assert iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"] == narrower
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_text)
    assert code_of(e) == ("EntityAlreadyExists", 409)

    assert name in [r["RoleName"] for r in iam.list_roles()["Roles"]]
    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == ["zappa-permissions"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.delete_role(RoleName=name)
    assert code_of(e) == ("DeleteConflict", 409)
    iam.delete_role_policy(RoleName=name, PolicyName="zappa-permissions")
    iam.delete_role(RoleName=name)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.get_role(RoleName=name)
    assert code_of(e)[0] == "NoSuchEntity"


def test_role_validation_and_tags(iam):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.create_role(RoleName="bad name!", AssumeRolePolicyDocument=json.dumps(TRUST))
    assert code_of(e) == ("ValidationError", 400)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.create_role(RoleName=unique("r"), AssumeRolePolicyDocument="{not json")
    assert code_of(e) == ("MalformedPolicyDocument", 400)
    name = unique("tagged")
    r = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST), Path="/service/",
                        Description="a role", Tags=[{"Key": "team", "Value": "web"}])["Role"]
    assert r["Arn"].endswith(f":role/service/{name}") and r["Description"] == "a role"
    assert iam.list_role_tags(RoleName=name)["Tags"] == [{"Key": "team", "Value": "web"}]
    assert [x["RoleName"] for x in iam.list_roles(PathPrefix="/service/")["Roles"]] == [name]
    iam.delete_role(RoleName=name)


def test_get_caller_identity(server):
    sts = server.client("sts")
    ident = sts.get_caller_identity()
    assert ident["Account"] == "000000000000"
    assert ident["Arn"] == "arn:aws:iam::000000000000:user/geysir-admin"
    assert ident["UserId"]
    p = server.aws("sts", "get-caller-identity")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["Account"] == "000000000000"


def test_cli_and_error_shapes(server, iam):
    name = unique("cli-role")
    p = server.aws("iam", "create-role", "--role-name", name, "--assume-role-policy-document", json.dumps(TRUST))
    assert p.returncode == 0, p.stderr
    p = server.aws("iam", "get-role", "--role-name", name)
    assert p.returncode == 0 and json.loads(p.stdout)["Role"]["AssumeRolePolicyDocument"] == TRUST
    p = server.aws("iam", "get-role", "--role-name", name + "-missing")
    assert p.returncode != 0 and "NoSuchEntity" in p.stderr
    iam.delete_role(RoleName=name)
    # A wrong secret: IAM's own signature error code, in the query protocol's XML.
    import boto3
    import botocore.config
    bad = boto3.client("iam", endpoint_url=server.control_endpoint, region_name="us-east-1",
                       aws_access_key_id=server.access_key, aws_secret_access_key="x" * 40,
                       config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        bad.get_role(RoleName=name)
    assert code_of(e) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        server.client("sts").assume_role(RoleArn="arn:aws:iam::000000000000:role/x", RoleSessionName="session")
    assert code_of(e) == ("InvalidAction", 400)


def signed_query(server, form):
    """A raw IAM query request signed by botocore (boto3 itself refuses a MaxItems below 1
    before sending). Returns (status, body)."""
    import urllib.error
    import urllib.parse
    import urllib.request
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    body = urllib.parse.urlencode(form).encode()
    areq = botocore.awsrequest.AWSRequest(method="POST", url=server.control_endpoint + "/", data=body,
                                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(server.access_key, server.secret_key), "iam",
                            "us-east-1").add_auth(areq)
    p = areq.prepare()
    try:
        with urllib.request.urlopen(urllib.request.Request(p.url, data=body, method="POST",
                                                           headers=dict(p.headers)), timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.mark.parametrize("value", ["-1", "0", "1e999999", "1.5", "+3", "1001", "99999999999999999999", ""])
def test_list_roles_max_items_is_range_checked(server, iam, value):
    """MaxItems is an integer from 1 to 1000, read from its digits: anything else is
    ValidationError (before: ignored, so -1 or 1e999999 listed everything)."""
    role = unique("maxitems")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST))
    try:
        for action in ("ListRoles", "ListRolePolicies", "ListRoleTags"):
            form = {"Action": action, "Version": "2010-05-08", "MaxItems": value}
            if action != "ListRoles":
                form["RoleName"] = role
            status, body = signed_query(server, form)
            assert status == 400, (action, body)
            assert "<Code>ValidationError</Code>" in body, (action, body)
        status, body = signed_query(server, {"Action": "ListRoles", "Version": "2010-05-08", "MaxItems": "1000"})
        assert status == 200, body
    finally:
        iam.delete_role(RoleName=role)


def test_list_roles_pages_with_max_items_and_marker(server, iam):
    prefix = "/" + unique("page") + "/"
    names = sorted(unique(f"pg{i}") for i in range(3))
    for n in names:
        iam.create_role(RoleName=n, Path=prefix, AssumeRolePolicyDocument=json.dumps(TRUST))
    try:
        first = iam.list_roles(PathPrefix=prefix, MaxItems=2)
        assert first["IsTruncated"] is True and len(first["Roles"]) == 2
        rest = iam.list_roles(PathPrefix=prefix, MaxItems=2, Marker=first["Marker"])
        assert rest["IsTruncated"] is False and "Marker" not in rest
        got = [r["RoleName"] for r in first["Roles"] + rest["Roles"]]
        assert sorted(got, key=str.lower) == sorted(names, key=str.lower)
        paged = [r["RoleName"] for page in iam.get_paginator("list_roles").paginate(
            PathPrefix=prefix, PaginationConfig={"PageSize": 1}) for r in page["Roles"]]
        assert sorted(paged) == sorted(names)
        with pytest.raises(botocore.exceptions.ClientError) as e:
            iam.list_roles(PathPrefix=prefix, Marker="no-such-marker")
        assert code_of(e) == ("ValidationError", 400)
    finally:
        for n in names:
            iam.delete_role(RoleName=n)
