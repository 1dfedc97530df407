"""S3 on control's endpoint, driven by real clients: boto3 (Debian's 1.26), the AWS CLI v2, and
hand-built requests for the wire details no client of ours exercises on plain HTTP (signed
aws-chunked bodies, unsigned trailers, virtual-hosted Host headers).

Every check compares with what S3 itself answers: statuses, ETags (MD5; md5-of-md5s-N for
multipart), error codes in S3's XML shape."""
import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import zlib

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest

from conftest import unique

PYENV_PYTHON = "/root/.pyenv/shims/python3"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def s3(server):
    return server.client("s3")


@pytest.fixture
def bucket(s3):
    name = unique("bkt").lower().replace("_", "-")
    s3.create_bucket(Bucket=name)
    yield name
    # Empty and drop it (the tests leave objects and uploads behind on purpose).
    for up in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for o in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=o["Key"])
    s3.delete_bucket(Bucket=name)


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def status_of(excinfo):
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


# --- raw signed requests ------------------------------------------------------------------

class _DeclaredPayloadAuth(botocore.auth.S3SigV4Auth):
    """S3's SigV4 with the x-amz-content-sha256 we declare (a STREAMING-* marker) kept."""

    def _modify_request_before_signing(self, request):
        declared = request.headers["X-Amz-Content-SHA256"]
        super()._modify_request_before_signing(request)
        del request.headers["X-Amz-Content-SHA256"]
        request.headers["X-Amz-Content-SHA256"] = declared


def sign_headers(server, method, url, headers, payload_hash, service="s3"):
    """SigV4 headers for a request whose body is described by payload_hash (botocore signs)."""
    creds = botocore.credentials.Credentials(server.access_key, server.secret_key)
    req = botocore.awsrequest.AWSRequest(method=method, url=url, headers=dict(headers))
    req.headers["X-Amz-Content-SHA256"] = payload_hash
    _DeclaredPayloadAuth(creds, service, "us-east-1").add_auth(req)
    return dict(req.headers.items())


def raw(server, method, target, headers, body=b"", host=None):
    u = urllib.parse.urlsplit(server.control_endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        h = dict(headers)
        if host:
            h["Host"] = host
        conn.request(method, target, body=body, headers=h)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def signing_key(secret, date):
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in ("us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def signed_chunked_body(server, url, chunks, tamper=None, sign_lengths=True):
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD upload as the AWS SDKs build it: returns (headers, body)."""
    now = datetime.datetime.utcnow()
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    decoded_len = sum(len(c) for c in chunks)
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(decoded_len),
               "X-Amz-Date": amz_date, "Content-Type": "text/plain"}
    # Build the body with placeholder signatures first to know its length (signed as a header).
    def encode(sigs):
        out = b""
        for c, s in zip(chunks + [b""], sigs):
            out += f"{len(c):x};chunk-signature={s}\r\n".encode() + c + b"\r\n"
        return out
    body_len = len(encode(["0" * 64] * (len(chunks) + 1)))
    headers["Content-Length"] = str(body_len)
    lengths = {}
    if not sign_lengths:  # left out of the seed signature, so a test may change them
        lengths = {k: headers.pop(k) for k in ("Content-Length", "x-amz-decoded-content-length")}
    signed = sign_headers(server, "PUT", url, headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    signed.update(lengths)
    seed = signed["Authorization"].rsplit("Signature=", 1)[1]
    key = signing_key(server.secret_key, date)
    scope = f"{date}/us-east-1/s3/aws4_request"
    prev, sigs = seed, []
    empty = hashlib.sha256(b"").hexdigest()
    for c in chunks + [b""]:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, empty, hashlib.sha256(c).hexdigest()])
        prev = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        sigs.append(prev)
    body = encode(sigs)
    if tamper:
        body = tamper(body)
    return signed, body


def error_xml(body):
    text = body.decode()
    assert text.startswith("<?xml"), text
    assert "<Error><Code>" in text, text
    return text


# --- buckets --------------------------------------------------------------------------------

def test_bucket_lifecycle_as_zappa_uses_it(s3):
    name = unique("zappa-deploys").lower().replace("_", "-")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert status_of(e) == 404 and error_code(e) == "404"
    assert s3.create_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"
    # us-east-1 answers its owner's second CreateBucket with 200, as AWS does.
    s3.create_bucket(Bucket=name)
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": "ZappaProject", "Value": "tinyapp"}]})
    assert s3.get_bucket_tagging(Bucket=name)["TagSet"] == [{"Key": "ZappaProject", "Value": "tinyapp"}]
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.put_object(Bucket=name, Key="tinyapp-dev-1.zip", Body=b"PK zip bytes")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert error_code(e) == "BucketNotEmpty" and status_of(e) == 409
    # Zappa deletes the uploaded zip twice in a row: both answer 204.
    for _ in range(2):
        r = s3.delete_object(Bucket=name, Key="tinyapp-dev-1.zip")
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    s3.delete_bucket_tagging(Bucket=name)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_bucket_tagging(Bucket=name)
    assert error_code(e) == "NoSuchTagSet"
    s3.delete_bucket(Bucket=name)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert status_of(e) == 404


def test_create_bucket_location_constraint_and_bad_names(s3):
    name = unique("eu").lower().replace("_", "-")
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert error_code(e) == "BucketAlreadyOwnedByYou" and status_of(e) == 409
    s3.delete_bucket(Bucket=name)
    for bad in ["ab", "Upper-Case", "-dash-first", "a" * 64]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3.create_bucket(Bucket=bad)
        assert error_code(e) == "InvalidBucketName", bad
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=unique("nobucket").lower().replace("_", "-"), Key="k", Body=b"x")
    assert error_code(e) == "NoSuchBucket" and status_of(e) == 404


# --- objects --------------------------------------------------------------------------------

def test_put_get_head_range_and_metadata(s3, bucket):
    data = os.urandom(100_000)
    r = s3.put_object(Bucket=bucket, Key="dir/obj.bin", Body=data, ContentType="application/zip",
                      Metadata={"purpose": "zappa"}, ContentDisposition="attachment")
    md5 = hashlib.md5(data).hexdigest()
    assert r["ETag"] == f'"{md5}"'
    g = s3.get_object(Bucket=bucket, Key="dir/obj.bin")
    assert g["Body"].read() == data
    assert g["ETag"] == f'"{md5}"' and g["ContentType"] == "application/zip"
    assert g["Metadata"] == {"purpose": "zappa"} and g["ContentDisposition"] == "attachment"
    assert g["ContentLength"] == len(data)
    h = s3.head_object(Bucket=bucket, Key="dir/obj.bin")
    assert h["ContentLength"] == len(data) and h["ETag"] == f'"{md5}"'
    assert abs((h["LastModified"] - g["LastModified"]).total_seconds()) < 1
    part = s3.get_object(Bucket=bucket, Key="dir/obj.bin", Range="bytes=10-19")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["Body"].read() == data[10:20] and part["ContentRange"] == f"bytes 10-19/{len(data)}"
    tail = s3.get_object(Bucket=bucket, Key="dir/obj.bin", Range="bytes=-5")
    assert tail["Body"].read() == data[-5:]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="dir/obj.bin", Range=f"bytes={len(data)}-")
    assert error_code(e) == "InvalidRange" and status_of(e) == 416
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="dir/obj.bin", IfNoneMatch=f'"{md5}"')
    assert status_of(e) == 304
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="dir/obj.bin", IfMatch='"0000"')
    assert error_code(e) == "PreconditionFailed" and status_of(e) == 412
    # Overwrite: the new bytes win, the old blob is no longer served.
    s3.put_object(Bucket=bucket, Key="dir/obj.bin", Body=b"v2")
    assert s3.get_object(Bucket=bucket, Key="dir/obj.bin")["Body"].read() == b"v2"
    empty = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert empty["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    assert s3.get_object(Bucket=bucket, Key="empty")["Body"].read() == b""


def test_missing_key_is_s3s_xml_error(server, s3, bucket):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.get_object(Bucket=bucket, Key="nope")
    assert error_code(e) == "NoSuchKey" and status_of(e) == 404
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket=bucket, Key="nope")
    assert status_of(e) == 404
    # The wire shape itself, as S3 writes it.
    url = f"{server.control_endpoint}/{bucket}/nope"
    status, headers, body = raw(server, "GET", f"/{bucket}/nope",
                                sign_headers(server, "GET", url, {}, hashlib.sha256(b"").hexdigest()))
    assert status == 404 and headers["content-type"] == "application/xml"
    text = error_xml(body)
    assert "<Code>NoSuchKey</Code>" in text and "<Message>" in text and "<RequestId>" in text
    assert headers["x-amz-request-id"]


def test_wrong_signature_gets_s3_xml_error(server, bucket):
    url = f"{server.control_endpoint}/{bucket}/k"
    h = sign_headers(server, "PUT", url, {}, hashlib.sha256(b"abc").hexdigest())
    h["Authorization"] = h["Authorization"][:-4] + ("0000" if not h["Authorization"].endswith("0000") else "1111")
    status, _, body = raw(server, "PUT", f"/{bucket}/k", h, b"abc")
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in error_xml(body)
    # An unknown key: InvalidAccessKeyId.
    creds = botocore.credentials.Credentials("AKIAUNKNOWNUNKNOWN00", "x" * 40)
    req = botocore.awsrequest.AWSRequest(method="GET", url=url)
    req.headers["X-Amz-Content-SHA256"] = hashlib.sha256(b"").hexdigest()
    botocore.auth.S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
    status, _, body = raw(server, "GET", f"/{bucket}/k", dict(req.headers.items()))
    assert status == 403 and "<Code>InvalidAccessKeyId</Code>" in error_xml(body)


def test_copy_delete_objects_and_listing(s3, bucket):
    keys = ["a/1", "a/2", "a/b/3", "b/4", "c", "with space+plus", "ünïcode/ключ"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == sorted(keys, key=lambda k: k.encode())
    r = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["c", "with space+plus"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/", "b/", "ünïcode/"]
    assert r["KeyCount"] == 5
    r = s3.list_objects_v2(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["a/1", "a/2"] and [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/b/"]
    # Paging by two, with a delimiter: every key or common prefix exactly once.
    seen, token, pages = [], None, 0
    while True:
        kw = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=bucket, Delimiter="/", MaxKeys=2, **kw)
        pages += 1
        seen += [o["Key"] for o in r.get("Contents", [])] + [p["Prefix"] for p in r.get("CommonPrefixes", [])]
        if not r["IsTruncated"]:
            break
        token = r["NextContinuationToken"]
        assert pages < 10
    assert sorted(seen) == sorted(["a/", "b/", "c", "with space+plus", "ünïcode/"]) and pages == 3
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, StartAfter="b/4")["Contents"]] == \
        ["c", "with space+plus", "ünïcode/ключ"]
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket, Prefix="a/")["Contents"]] == ["a/1", "a/2", "a/b/3"]

    c = s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "with space+plus"})
    assert c["CopyObjectResult"]["ETag"] == '"%s"' % hashlib.md5(b"with space+plus").hexdigest()
    assert s3.get_object(Bucket=bucket, Key="copied")["Body"].read() == b"with space+plus"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "c"})
    assert error_code(e) == "InvalidRequest"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "missing"})
    assert error_code(e) == "NoSuchKey"
    s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "c"}, MetadataDirective="REPLACE",
                   ContentType="text/x-new")
    assert s3.head_object(Bucket=bucket, Key="c")["ContentType"] == "text/x-new"

    d = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a/1"}, {"Key": "a/2"}, {"Key": "never"}]})
    assert sorted(x["Key"] for x in d["Deleted"]) == ["a/1", "a/2", "never"]
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="a/")["Contents"]]
    assert left == ["a/b/3"]


def test_multipart_upload(s3, bucket):
    parts_data = [os.urandom(5 * MB), os.urandom(5 * MB), b"tail"]
    up = s3.create_multipart_upload(Bucket=bucket, Key="big.zip", ContentType="application/zip")
    uid = up["UploadId"]
    etags = []
    for i, d in enumerate(parts_data, 1):
        etags.append(s3.upload_part(Bucket=bucket, Key="big.zip", UploadId=uid, PartNumber=i, Body=d)["ETag"])
    assert etags == ['"%s"' % hashlib.md5(d).hexdigest() for d in parts_data]
    listed = s3.list_parts(Bucket=bucket, Key="big.zip", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, 5 * MB), (2, 5 * MB), (3, 4)]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [uid]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="big.zip", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 2, "ETag": etags[1]}, {"PartNumber": 1, "ETag": etags[0]}]})
    assert error_code(e) == "InvalidPartOrder"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="big.zip", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]})
    assert error_code(e) == "InvalidPart"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="big.zip", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": etags[0]}, {"PartNumber": 4, "ETag": etags[2]}]})
    assert error_code(e) == "InvalidPart"
    r = s3.complete_multipart_upload(Bucket=bucket, Key="big.zip", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": i, "ETag": t} for i, t in enumerate(etags, 1)]})
    want = hashlib.md5(b"".join(hashlib.md5(d).digest() for d in parts_data)).hexdigest() + "-3"
    assert r["ETag"] == f'"{want}"'
    g = s3.get_object(Bucket=bucket, Key="big.zip")
    assert g["Body"].read() == b"".join(parts_data) and g["ETag"] == f'"{want}"'
    assert g["ContentType"] == "application/zip"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="big.zip", UploadId=uid)
    assert error_code(e) == "NoSuchUpload" and status_of(e) == 404
    # Too-small middle part; then abort.
    uid = s3.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    t1 = s3.upload_part(Bucket=bucket, Key="small", UploadId=uid, PartNumber=1, Body=b"a")["ETag"]
    t2 = s3.upload_part(Bucket=bucket, Key="small", UploadId=uid, PartNumber=2, Body=b"b")["ETag"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="small", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": t1}, {"PartNumber": 2, "ETag": t2}]})
    assert error_code(e) == "EntityTooSmall"
    assert s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=uid)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="small", UploadId=uid, PartNumber=1, Body=b"a")
    assert error_code(e) == "NoSuchUpload"


# --- integrity ------------------------------------------------------------------------------

def test_content_md5_and_checksum_headers_are_verified(s3, bucket):
    data = b"checked body"
    s3.put_object(Bucket=bucket, Key="md5", Body=data, ContentMD5=base64.b64encode(hashlib.md5(data).digest()).decode())
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bucket, Key="md5", Body=data,
                      ContentMD5=base64.b64encode(hashlib.md5(b"other").digest()).decode())
    assert error_code(e) == "BadDigest" and status_of(e) == 400
    for alg in ["SHA256", "SHA1", "CRC32"]:  # CRC32C needs awscrt in boto3 1.26
        r = s3.put_object(Bucket=bucket, Key="sum-" + alg, Body=data, ChecksumAlgorithm=alg)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 200, alg
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert s3.put_object(Bucket=bucket, Key="crc", Body=data, ChecksumCRC32=crc)["ChecksumCRC32"] == crc
    g = s3.get_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED")
    assert g["ChecksumCRC32"] == crc and g["Body"].read() == data
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.put_object(Bucket=bucket, Key="crc", Body=data, ChecksumCRC32="AAAAAA==")
    assert error_code(e) == "BadDigest"
    assert s3.get_object(Bucket=bucket, Key="crc")["Body"].read() == data  # the bad PUT changed nothing


def test_signed_aws_chunked_upload_verifies_every_chunk(server, s3, bucket):
    chunks = [os.urandom(64 * 1024), os.urandom(64 * 1024), b"last bytes"]
    url = f"{server.control_endpoint}/{bucket}/streamed"
    headers, body = signed_chunked_body(server, url, chunks)
    status, rh, rb = raw(server, "PUT", f"/{bucket}/streamed", headers, body)
    assert status == 200, rb
    assert rh["etag"] == '"%s"' % hashlib.md5(b"".join(chunks)).hexdigest()
    g = s3.get_object(Bucket=bucket, Key="streamed")
    assert g["Body"].read() == b"".join(chunks)
    assert "ContentEncoding" not in g  # aws-chunked is how it travelled, not what it is

    def flip_data(b):  # one byte of the second chunk's data changed, signatures kept
        i = b.index(b"\r\n", b.index(b"\r\n") + 2 + 64 * 1024 + 2) + 2 + 10
        return b[:i] + bytes([b[i] ^ 1]) + b[i + 1:]

    def drop_chunk(b):  # the second chunk removed whole: the signature chain breaks
        first_end = b.index(b"\r\n") + 2 + 64 * 1024 + 2
        second_end = b.index(b"\r\n", first_end) + 2 + 64 * 1024 + 2
        return b[:first_end] + b[second_end:]

    for tamper in (flip_data, drop_chunk):
        # The lengths are left out of the seed signature so the seed stays valid for the
        # changed body: only the chunk signatures can catch the change.
        headers, body = signed_chunked_body(server, url.replace("streamed", "tampered"), chunks, tamper,
                                            sign_lengths=False)
        headers["Content-Length"] = str(len(body))
        headers["x-amz-decoded-content-length"] = str(sum(map(len, chunks)) -
                                                      (64 * 1024 if tamper is drop_chunk else 0))
        status, _, rb = raw(server, "PUT", f"/{bucket}/tampered", headers, body)
        assert status == 403, (tamper.__name__, status, rb)
        assert "<Code>SignatureDoesNotMatch</Code>" in error_xml(rb)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket=bucket, Key="tampered")
    assert status_of(e) == 404


def test_unsigned_payload_trailer_with_crc32(server, s3, bucket):
    data = os.urandom(70_000)
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()

    def body_with(checksum):
        return (f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n" +
                f"x-amz-checksum-crc32:{checksum}\r\n\r\n".encode())

    for checksum, want in ((crc, 200), ("AAAAAA==", 400)):
        body = body_with(checksum)
        url = f"{server.control_endpoint}/{bucket}/trailer"
        headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
                   "x-amz-trailer": "x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm": "CRC32",
                   "Content-Length": str(len(body))}
        signed = sign_headers(server, "PUT", url, headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        status, rh, rb = raw(server, "PUT", f"/{bucket}/trailer", signed, body)
        assert status == want, rb
        if want == 200:
            assert rh["x-amz-checksum-crc32"] == crc
        else:
            assert "<Code>BadDigest</Code>" in error_xml(rb)
    assert s3.get_object(Bucket=bucket, Key="trailer")["Body"].read() == data


def test_boto3_143_trailing_checksums(server, bucket):
    """boto3 1.43 (pyenv) sends CRC32 checksums by default (in a header over plain HTTP; as an
    aws-chunked trailer over HTTPS, the form test_unsigned_payload_trailer_with_crc32 builds) and
    validates GetObject's; upload_file goes multipart with per-part checksums."""
    if not os.path.exists(PYENV_PYTHON):
        pytest.skip("no pyenv python3 with boto3 1.43 on this machine")
    script = f"""
import boto3, botocore.config, hashlib, os, boto3.s3.transfer as t
s3 = boto3.client("s3", endpoint_url={server.control_endpoint!r}, region_name="us-east-1",
    aws_access_key_id={server.access_key!r}, aws_secret_access_key={server.secret_key!r},
    config=botocore.config.Config(retries={{"max_attempts": 1}}))
data = os.urandom(300_000)
r = s3.put_object(Bucket={bucket!r}, Key="new-boto", Body=data)
g = s3.get_object(Bucket={bucket!r}, Key="new-boto", ChecksumMode="ENABLED")
assert g["Body"].read() == data
big = os.urandom(12 * 1024 * 1024)
path = "/tmp/geysir-s3-big-" + str(os.getpid())
open(path, "wb").write(big)
s3.upload_file(path, {bucket!r}, "new-boto-big", Config=t.TransferConfig(multipart_threshold=8*1024*1024, multipart_chunksize=8*1024*1024))
os.unlink(path)
got = s3.get_object(Bucket={bucket!r}, Key="new-boto-big")["Body"].read()
assert hashlib.sha256(got).hexdigest() == hashlib.sha256(big).hexdigest()
import botocore; print(botocore.__version__, r.get("ChecksumCRC32"))
"""
    p = subprocess.run([PYENV_PYTHON, "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    version, crc = p.stdout.split()
    assert crc != "None", p.stdout  # the CRC32 trailer was sent, verified and echoed


# --- presigned URLs and virtual hosts --------------------------------------------------------

def test_presigned_get_and_put(server, bucket):
    # boto3 1.26 presigns S3 with Signature V2 unless told otherwise; Geysir speaks only V4.
    s3 = server.client("s3", signature_version="s3v4")
    s3.put_object(Bucket=bucket, Key="shared file.txt", Body=b"hello presigned")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared file.txt"}, ExpiresIn=60)
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200 and r.read() == b"hello presigned"
    put = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "uploaded"}, ExpiresIn=60)
    req = urllib.request.Request(put, data=b"via presigned put", method="PUT")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    assert s3.get_object(Bucket=bucket, Key="uploaded")["Body"].read() == b"via presigned put"
    bad = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")[:len(url)]
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(bad, timeout=10)
    assert e.value.code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in e.value.read()
    # Past X-Amz-Expires: AccessDenied, as S3 answers it.
    short = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared file.txt"}, ExpiresIn=1)
    time.sleep(2.2)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(short, timeout=10)
    assert e.value.code == 403 and b"<Code>AccessDenied</Code>" in e.value.read()
    # Signed more than 15 minutes in the future: RequestTimeTooSkewed (told before the signature).
    ahead = (datetime.datetime.utcnow() + datetime.timedelta(minutes=30)).strftime("%Y%m%dT%H%M%SZ")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    skewed = url.replace("X-Amz-Date=" + query["X-Amz-Date"][0], "X-Amz-Date=" + ahead)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(skewed, timeout=10)
    assert e.value.code == 403 and b"<Code>RequestTimeTooSkewed</Code>" in e.value.read()


def test_virtual_hosted_style(server, s3, bucket):
    port = urllib.parse.urlsplit(server.control_endpoint).port
    s3.put_object(Bucket=bucket, Key="vh/key.txt", Body=b"virtual")
    for host in (f"{bucket}.s3.localhost:{port}", f"{bucket}.localhost:{port}"):
        url = f"http://{host}/vh/key.txt"
        h = sign_headers(server, "GET", url, {}, hashlib.sha256(b"").hexdigest())
        status, _, body = raw(server, "GET", "/vh/key.txt", h, host=host)
        assert (status, body) == (200, b"virtual"), host
    # A PUT and a listing through the virtual host.
    host = f"{bucket}.s3.localhost:{port}"
    h = sign_headers(server, "PUT", f"http://{host}/vh/put.txt", {}, hashlib.sha256(b"vput").hexdigest())
    assert raw(server, "PUT", "/vh/put.txt", h, b"vput", host=host)[0] == 200
    h = sign_headers(server, "GET", f"http://{host}/?list-type=2&prefix=vh%2F", {}, hashlib.sha256(b"").hexdigest())
    status, _, body = raw(server, "GET", "/?list-type=2&prefix=vh%2F", h, host=host)
    assert status == 200 and b"<Key>vh/put.txt</Key>" in body and b"<Key>vh/key.txt</Key>" in body


# --- the AWS CLI v2 -------------------------------------------------------------------------

def test_aws_cli_cp_20mb_round_trip(server, bucket):
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "big.bin")
        data = os.urandom(20 * MB)
        with open(src, "wb") as f:
            f.write(data)
        t0 = time.monotonic()
        p = server.aws("s3", "cp", src, f"s3://{bucket}/cli/big.bin", timeout=120)
        assert p.returncode == 0, p.stderr
        up_s = time.monotonic() - t0
        p = server.aws("s3api", "head-object", "--bucket", bucket, "--key", "cli/big.bin")
        assert p.returncode == 0, p.stderr
        head = json.loads(p.stdout)
        assert head["ContentLength"] == 20 * MB and head["ETag"].endswith('-3"')  # 8 MB parts: multipart
        dst = os.path.join(d, "back.bin")
        p = server.aws("s3", "cp", f"s3://{bucket}/cli/big.bin", dst, timeout=120)
        assert p.returncode == 0, p.stderr
        with open(dst, "rb") as f:
            assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()
        small = os.path.join(d, "small.txt")
        with open(small, "w") as f:
            f.write("small file\n")
        assert server.aws("s3", "cp", small, f"s3://{bucket}/cli/small.txt").returncode == 0
        p = server.aws("s3", "ls", f"s3://{bucket}/cli/")
        assert p.returncode == 0 and "big.bin" in p.stdout and "small.txt" in p.stdout, p.stdout + p.stderr
        p = server.aws("s3", "rm", f"s3://{bucket}/cli/small.txt")
        assert p.returncode == 0, p.stderr
        p = server.aws("s3api", "get-object", "--bucket", bucket, "--key", "cli/small.txt", os.path.join(d, "x"))
        assert p.returncode != 0 and "NoSuchKey" in p.stderr
        print(f"aws s3 cp 20 MB upload: {up_s:.2f} s")


# --- the C++ API other services use ------------------------------------------------------------

def test_zappa_s3_sequence_then_lambda_reads_nothing_stale(server, s3):
    """deploy-dev.log's S3 calls in order: HeadBucket(404), CreateBucket, PutObject(zip), HeadBucket,
    PutObject(template), HeadBucket, DeleteObject(template), HeadBucket, DeleteObject(zip) twice."""
    b = unique("zappa-tinyapp-deploys").lower().replace("_", "-")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_bucket(Bucket=b)
    assert error_code(e) == "404"
    s3.create_bucket(Bucket=b)
    zip_key, tpl_key = "tinyapp-dev-1795754729.zip", "tinyapp-dev-template-1795754730.json"
    s3.put_object(Bucket=b, Key=zip_key, Body=b"PK\x05\x06" + b"\0" * 18)
    s3.head_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key=tpl_key, Body=json.dumps({"Resources": {}}).encode())
    for key in (tpl_key, zip_key, zip_key):
        s3.head_bucket(Bucket=b)
        assert s3.delete_object(Bucket=b, Key=key)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.list_objects_v2(Bucket=b)["KeyCount"] == 0
    s3.delete_bucket(Bucket=b)
