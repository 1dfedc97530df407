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


def test_list_roles_max_items_is_range_checked_and_pages(server):
    """MaxItems is an integer in 1..1000 (IAM's range): -1, 0 and 1e999999 are ValidationError,
    not read through a wrapping atoll; within range it pages with IsTruncated and Marker."""
    raw = server.client("iam", parameter_validation=False)
    for bad in (-1, 0, 1001, "1e999999", "12abc"):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            raw.list_roles(MaxItems=bad)
        assert code_of(e) == ("ValidationError", 400), bad
        assert "maxItems" in e.value.response["Error"]["Message"], bad
    with pytest.raises(botocore.exceptions.ClientError) as e:
        raw.create_role(RoleName=unique("msd"), AssumeRolePolicyDocument=json.dumps(TRUST), MaxSessionDuration="99999999999999999999")
    assert code_of(e) == ("ValidationError", 400)

    iam = server.client("iam")
    prefix = "/" + unique("paging") + "/"
    names = sorted(unique(f"page{i}-") for i in range(3))
    for n in names:
        iam.create_role(RoleName=n, Path=prefix, AssumeRolePolicyDocument=json.dumps(TRUST))
    seen, marker = [], None
    for _ in range(5):  # bounded: 3 roles, one per page
        kw = {"PathPrefix": prefix, "MaxItems": 1}
        if marker:
            kw["Marker"] = marker
        page = iam.list_roles(**kw)
        seen += [r["RoleName"] for r in page["Roles"]]
        if not page["IsTruncated"]:
            break
        marker = page["Marker"]
    assert sorted(seen) == names
