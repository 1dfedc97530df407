"""HTTPS, ACME and custom domains, against Pebble (Let's Encrypt's test CA) for real.

A module fixture runs pebble-challtestsrv as the DNS server that answers every name with
127.0.0.1, and Pebble with -dnsserver pointing at it, PEBBLE_VA_NOSLEEP=1, nonce rejection left
on (its default 5%), and authorization reuse off (so every order really validates). Pebble's
httpPort/tlsPort are the ports this module's `geysir server` listens on for HTTP and HTTPS.
Pebble's own listener gets a throwaway CA made here with the openssl CLI.
"""
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import Server, unique, wait_until

PEBBLE = shutil.which("pebble")
CHALLTESTSRV = shutil.which("pebble-challtestsrv")

pytestmark = pytest.mark.skipif(not PEBBLE or not CHALLTESTSRV,
                                reason="pebble not installed (apt-get install pebble)")

HANDLER = """
import json
def handler(event, context):
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps({"domain": event["requestContext"]["domainName"],
                                "host": event["headers"].get("host"),
                                "proto": event["headers"].get("x-forwarded-proto")})}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class Pebble:
    def __init__(self, http_port, https_port):
        self.dir = tempfile.mkdtemp(prefix="geysir-pebble-")
        d = self.dir
        # A throwaway CA for Pebble's own HTTPS listener (what --acme-ca trusts).
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", "/CN=geysir test CA for pebble", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost",
                "-keyout", "pebble.key", "-out", "pebble.csr", cwd=d)
        with open(os.path.join(d, "ext.cnf"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", "pebble.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", "ext.cnf", "-out", "pebble.pem", cwd=d)
        self.ca = os.path.join(d, "ca.pem")
        self.port = free_port()
        self.mgmt_port = free_port()
        self.dns_port = free_port()
        self.chall_mgmt_port = free_port()
        cfg = {"pebble": {"listenAddress": f"127.0.0.1:{self.port}",
                          "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
                          "certificate": os.path.join(d, "pebble.pem"),
                          "privateKey": os.path.join(d, "pebble.key"),
                          "httpPort": http_port, "tlsPort": https_port,
                          "ocspResponderURL": "", "externalAccountBindingRequired": False}}
        with open(os.path.join(d, "pebble.json"), "w") as f:
            json.dump(cfg, f)
        self.log = open(os.path.join(d, "pebble.log"), "ab")
        self.chall = subprocess.Popen(
            [CHALLTESTSRV, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01", f"127.0.0.1:{self.dns_port}",
             "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", f"127.0.0.1:{self.chall_mgmt_port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_AUTHZREUSE="0")
        self.proc = subprocess.Popen(
            [PEBBLE, "-config", os.path.join(d, "pebble.json"), "-dnsserver", f"127.0.0.1:{self.dns_port}"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=d)
        self.directory = f"https://127.0.0.1:{self.port}/dir"
        ctx = ssl.create_default_context(cafile=self.ca)
        wait_until(lambda: urllib.request.urlopen(self.directory, context=ctx, timeout=2).status == 200, 20,
                   interval=0.1, what="pebble's directory")
        wait_until(lambda: self.chall_post("/clear-a", {"host": "ready.test"}) is None, 10, interval=0.1,
                   what="pebble-challtestsrv")

    def root_pem(self):
        """Pebble's issuing root, from its management port (it changes every run)."""
        ctx = ssl.create_default_context(cafile=self.ca)
        with urllib.request.urlopen(f"https://127.0.0.1:{self.mgmt_port}/roots/0", context=ctx, timeout=5) as r:
            return r.read().decode()

    def chall_post(self, path, body):
        req = urllib.request.Request(f"http://127.0.0.1:{self.chall_mgmt_port}{path}", data=json.dumps(body).encode(),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()
        return None

    def log_tail(self, n=40):
        with open(os.path.join(self.dir, "pebble.log"), "rb") as f:
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])

    def stop(self):
        for p in (self.proc, self.chall):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def env():
    http_port, https_port = free_port(), free_port()
    pebble = Pebble(http_port, https_port)
    args = ["--http-port", str(http_port), "--https-port", str(https_port), "--acme-directory", pebble.directory,
            "--acme-ca", pebble.ca, "--hsts-max-age", "600"]
    server = Server(args)
    try:
        server.start()
        client = server.lambda_client()
        fn = unique("tls-fn")
        server.create(client, fn, {"app.py": HANDLER}, url=True)
        root = os.path.join(pebble.dir, "root.pem")
        with open(root, "w") as f:
            f.write(pebble.root_pem())
        yield {"server": server, "pebble": pebble, "fn": fn, "root": root, "http_port": http_port,
               "https_port": https_port, "args": args}
    finally:
        server.stop()
        server.cleanup()
        pebble.stop()


def domain_add(env, name, *extra, wait=60):
    r = env["server"].geysir("domain", "add", name, "--function", env["fn"], "--wait", str(wait), *extra,
                             timeout=wait + 30)
    return r


def show(env, name):
    r = env["server"].geysir("domain", "show", name)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def tls_connect(env, name, root=None):
    ctx = ssl.create_default_context(cafile=root or env["root"])
    raw = socket.create_connection(("127.0.0.1", env["https_port"]), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=name)


def serial_of(sock):
    der = sock.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der, capture_output=True,
                         check=True)
    return out.stdout.decode().strip().split("=", 1)[1].lower().lstrip("0")


def http_get(sock, name, path="/"):
    """One keep-alive request on an open TLS socket; returns (status, headers, body)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the response headers"
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the body"
        body += chunk
    return status, headers, body


def curl_https(env, name, path="/"):
    port = env["https_port"]
    return subprocess.run(["curl", "-sS", "--max-time", "10", "--resolve", f"{name}:{port}:127.0.0.1", "--cacert",
                           env["root"], "-D", "-", f"https://{name}:{port}{path}"],
                          capture_output=True, text=True, timeout=20)


def norm_serial(s):
    return s.lower().lstrip("0")


def test_http01_certificate_and_https_to_the_function(env):
    name = unique("h1") + ".example.test"
    r = domain_add(env, name)
    assert r.returncode == 0, r.stdout + r.stderr + env["server"].log_tail()
    rec = json.loads(r.stdout)
    assert rec["Status"] == "issued" and rec["Challenge"] == "http-01" and rec["Serial"]
    c = curl_https(env, name)
    assert c.returncode == 0, c.stderr
    assert "HTTP/1.1 200" in c.stdout
    assert "strict-transport-security: max-age=600" in c.stdout.lower()
    body = json.loads(c.stdout.split("\n\n", 1)[1])
    # The function sees the custom host, and that the request came over HTTPS.
    assert body == {"domain": name, "host": f"{name}:{env['https_port']}", "proto": "https"}
    # The served certificate is the one control stored.
    with tls_connect(env, name) as s:
        assert serial_of(s) == norm_serial(rec["Serial"])
        assert s.version() in ("TLSv1.2", "TLSv1.3")
        assert s.selected_alpn_protocol() in (None, "http/1.1")
    # Stored 0600 under <data>/tls, the key never in the log.
    key_path = os.path.join(env["server"].data_dir, "tls", "domains", name, "key.pem")
    assert oct(os.stat(key_path).st_mode & 0o777) == "0o600"
    with open(key_path) as f:
        key_body = f.read().splitlines()[1]
    assert key_body not in open(env["server"].log_path, errors="replace").read()
    # Plain HTTP to the same host still reaches the function (no redirect configured here).
    port = env["http_port"]
    p = subprocess.run(["curl", "-sS", "--max-time", "10", "-H", f"Host: {name}", f"http://127.0.0.1:{port}/"],
                       capture_output=True, text=True, timeout=20)
    assert json.loads(p.stdout)["proto"] == "http"


def test_tls_alpn01_certificate(env):
    name = unique("alpn") + ".example.test"
    r = domain_add(env, name, "--challenge", "tls-alpn-01")
    assert r.returncode == 0, r.stdout + r.stderr + env["server"].log_tail()
    rec = json.loads(r.stdout)
    assert rec["Status"] == "issued" and rec["Challenge"] == "tls-alpn-01"
    c = curl_https(env, name)
    assert c.returncode == 0 and "HTTP/1.1 200" in c.stdout, c.stderr
    # The gateway logged that it answered a TLS-ALPN-01 handshake, not HTTP-01.
    assert json.loads(c.stdout.split("\n\n", 1)[1])["domain"] == name


def test_unknown_host_gets_no_certificate_and_triggers_nothing(env):
    name = unique("nobody") + ".example.test"
    with pytest.raises(ssl.SSLError):
        tls_connect(env, name).close()
    r = env["server"].geysir("domain", "list")
    assert r.returncode == 0 and name not in r.stdout
    assert name not in open(env["server"].log_path, errors="replace").read().replace(
        '"sni":"' + name + '"', "")


def test_renewal_swaps_certificates_without_dropping_open_connections(env):
    name = unique("renew") + ".example.test"
    r = domain_add(env, name)
    assert r.returncode == 0, r.stderr
    old = norm_serial(json.loads(r.stdout)["Serial"])
    keep = tls_connect(env, name)
    try:
        assert serial_of(keep) == old
        assert http_get(keep, name)[0] == 200
        r = env["server"].geysir("domain", "renew", name, "--wait", "60", timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr + env["server"].log_tail()
        new = norm_serial(json.loads(r.stdout)["Serial"])
        assert new != old
        # The open keep-alive connection still works, on its old certificate...
        status, _, body = http_get(keep, name)
        assert status == 200 and json.loads(body)["domain"] == name
        assert serial_of(keep) == old
    finally:
        keep.close()
    # ...and a new connection gets the new one.
    with tls_connect(env, name) as s:
        assert serial_of(s) == new
        assert http_get(s, name)[0] == 200


def test_failed_validation_is_reported_and_the_old_certificate_keeps_serving(env):
    name = unique("fail") + ".example.test"
    r = domain_add(env, name)
    assert r.returncode == 0, r.stderr
    old = norm_serial(json.loads(r.stdout)["Serial"])
    # Point the name somewhere nothing listens: Pebble's validation will be refused.
    env["pebble"].chall_post("/add-a", {"host": name, "addresses": ["127.0.0.2"]})
    try:
        r = env["server"].geysir("domain", "renew", name, "--wait", "60", timeout=90)
        assert r.returncode == 1
        assert "could not be obtained" in r.stderr and "urn:ietf:params:acme:error:" in r.stderr, r.stderr
        rec = show(env, name)
        assert rec["Status"] == "failed" and rec["Failures"] == 1
        assert "urn:ietf:params:acme:error:" in rec["LastError"]
        assert norm_serial(rec["Serial"]) == old
        assert rec["RenewAt"] > time.time()  # backed off, not retried at once
        with tls_connect(env, name) as s:
            assert serial_of(s) == old
            assert http_get(s, name)[0] == 200
    finally:
        env["pebble"].chall_post("/clear-a", {"host": name})


def test_operator_certificate_from_pem_files(env, tmp_path):
    name = unique("own") + ".example.test"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "3", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                    "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem")], check=True,
                   capture_output=True)
    r = env["server"].geysir("domain", "add", name, "--function", env["fn"], "--cert", str(tmp_path / "c.pem"),
                             "--key", str(tmp_path / "k.pem"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Certificate"] == "manual"
    deadline = time.time() + 10
    while True:
        try:
            with tls_connect(env, name, root=str(tmp_path / "c.pem")) as s:
                assert http_get(s, name)[0] == 200
            break
        except (ssl.SSLError, ConnectionError):
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    # A certificate for another name is refused with the reason.
    r = env["server"].geysir("domain", "add", "other." + name, "--function", env["fn"], "--cert",
                             str(tmp_path / "c.pem"), "--key", str(tmp_path / "k.pem"))
    assert r.returncode == 1 and "not other." + name in r.stderr


def test_restart_keeps_certificates_without_reissuing(env):
    server = env["server"]
    name = unique("keep") + ".example.test"
    r = domain_add(env, name)
    assert r.returncode == 0, r.stderr
    serial = norm_serial(json.loads(r.stdout)["Serial"])
    assert server.stop() == 0
    mark = os.path.getsize(server.log_path)
    server.start()
    with tls_connect(env, name) as s:
        assert serial_of(s) == serial
        assert http_get(s, name)[0] == 200
    rec = show(env, name)
    assert rec["Status"] == "issued" and norm_serial(rec["Serial"]) == serial
    time.sleep(1)  # past the first renewal check after start
    with open(server.log_path, "rb") as f:
        f.seek(mark)
        after = f.read().decode("utf-8", "replace")
    assert "acme_order_queued" not in after

    # The first check after start asks the CA for ARI windows; Pebble 2.4 has no renewalInfo, so
    # control notes that once and keeps the third-of-lifetime rule (no error, no order).
    def ari_noted():
        with open(server.log_path, "rb") as f:
            f.seek(mark)
            return "acme_ari_unsupported" in f.read().decode("utf-8", "replace")
    wait_until(ari_noted, 30, interval=0.2, what="the ARI check after restart")
    with open(server.log_path, "rb") as f:
        f.seek(mark)
        after = f.read().decode("utf-8", "replace")
    assert "acme_order_queued" not in after and "acme_ari_failed" not in after


# --- API Gateway custom domains (CreateDomainName + API/base path mappings) -----------------------

API_HANDLER = """
import json
def handler(event, context):
    rc = event["requestContext"]
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps({"version": event.get("version", ""), "path": event.get("path"),
                                "rawPath": event.get("rawPath"), "resource": event.get("resource"),
                                "routeKey": event.get("routeKey") or rc.get("routeKey"),
                                "rcPath": rc.get("path"), "httpPath": rc.get("http", {}).get("path"),
                                "stage": rc.get("stage"), "domain": rc.get("domainName"),
                                "prefix": rc.get("domainPrefix"),
                                "apiId": rc.get("apiId"), "params": event.get("pathParameters")})}
"""


@pytest.fixture(scope="module")
def api_fn(env):
    server = env["server"]
    lam = server.lambda_client()
    name = unique("tls-api")
    server.create(lam, name, {"app.py": API_HANDLER})
    return lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]


def wait_domain_available(get, name, timeout=90):
    """Polls Get*DomainName until the certificate is there (bounded); returns the last answer."""
    deadline = time.time() + timeout
    while True:
        d = get(name)
        status = d.get("domainNameStatus") or d["DomainNameConfigurations"][0]["DomainNameStatus"]
        if status == "AVAILABLE":
            return d
        assert time.time() < deadline, f"{name} still {status}: {d}"
        time.sleep(0.5)


def wait_https(env, name, path, want_status, timeout=30):
    """Routes and mappings reach the gateway asynchronously: curl until the status is `want_status`."""
    deadline = time.time() + timeout
    while True:
        c = curl_https(env, name, path)
        head, _, body = c.stdout.partition("\n\n")
        if c.returncode == 0 and head.split("\n", 1)[0].split()[1:2] == [str(want_status)]:
            return head, body
        assert time.time() < deadline, f"{path}: {c.stdout[:300]} {c.stderr}"
        time.sleep(0.2)


def test_http_api_on_a_custom_domain_through_apigatewayv2(env, api_fn):
    server = env["server"]
    v2 = server.client("apigatewayv2")
    api_id = v2.create_api(Name=unique("dom-v2"), ProtocolType="HTTP", Target=api_fn)["ApiId"]  # $default stage
    v2.create_route(ApiId=api_id, RouteKey="GET /pets/{id}",
                    Target=v2.get_routes(ApiId=api_id)["Items"][0]["Target"])
    name = unique("v2dom") + ".example.test"
    made = v2.create_domain_name(DomainName=name, DomainNameConfigurations=[
        {"CertificateArn": "arn:aws:acm:us-east-1:000000000000:certificate/unused", "EndpointType": "REGIONAL"}])
    assert made["DomainName"] == name and made["ApiMappingSelectionExpression"] == "$request.basepath"
    # The certificate is requested on CreateDomainName, not on the first request.
    d = wait_domain_available(lambda n: v2.get_domain_name(DomainName=n), name)
    assert d["DomainNameConfigurations"][0]["EndpointType"] == "REGIONAL"
    with pytest.raises(v2.exceptions.ConflictException):
        v2.create_domain_name(DomainName=name)
    m = v2.create_api_mapping(DomainName=name, ApiId=api_id, Stage="$default", ApiMappingKey="v1")
    assert m["ApiMappingKey"] == "v1" and m["Stage"] == "$default" and m["ApiMappingId"]
    with pytest.raises(v2.exceptions.BadRequestException):
        v2.create_api_mapping(DomainName=name, ApiId=api_id, Stage="nope", ApiMappingKey="v9")
    with pytest.raises(v2.exceptions.ConflictException):
        v2.create_api_mapping(DomainName=name, ApiId=api_id, Stage="$default", ApiMappingKey="v1")
    for bad in ("a//b", "sp ace", "q?x"):
        with pytest.raises(v2.exceptions.BadRequestException):
            v2.create_api_mapping(DomainName=name, ApiId=api_id, Stage="$default", ApiMappingKey=bad)
    items = v2.get_api_mappings(DomainName=name)["Items"]
    assert [(i["ApiId"], i["ApiMappingKey"]) for i in items] == [(api_id, "v1")]
    assert v2.get_api_mapping(DomainName=name, ApiMappingId=m["ApiMappingId"])["ApiId"] == api_id
    assert name in [x["DomainName"] for x in v2.get_domain_names()["Items"]]
    # One registry: the CLI lists it with its mapping.
    listing = server.geysir("domain", "list")
    assert listing.returncode == 0 and f"{name}\t/v1->{api_id}/$default" in listing.stdout, listing.stdout

    head, body = wait_https(env, name, "/v1/pets/7", 200)
    e = json.loads(body)
    # Payload 2.0 keeps the mapping key in rawPath (as AWS does); the route matched without it.
    assert e["domain"] == name and e["apiId"] == api_id and e["stage"] == "$default"
    assert e["prefix"] == name.split(".")[0]  # AWS: the custom domain's first label
    assert e["rawPath"] == "/v1/pets/7" and e["httpPath"] == "/v1/pets/7"
    assert e["routeKey"] == "GET /pets/{id}" and e["params"] == {"id": "7"}
    e = json.loads(wait_https(env, name, "/v1/anything/else", 200)[1])
    assert e["routeKey"] == "$default"
    # No mapping covers /v2/...: AWS answers 403 Forbidden.
    head, body = wait_https(env, name, "/v2/pets/7", 403)
    assert json.loads(body) == {"message": "Forbidden"}

    v2.delete_api_mapping(DomainName=name, ApiMappingId=m["ApiMappingId"])
    assert v2.get_api_mappings(DomainName=name)["Items"] == []
    # A domain with no mapping left says so (AWS would answer 403; this names the cause).
    head, body = wait_https(env, name, "/v1/pets/7", 404)
    assert "No function URL or API is mapped to " + name in body
    v2.delete_domain_name(DomainName=name)
    with pytest.raises(v2.exceptions.NotFoundException):
        v2.get_domain_name(DomainName=name)
    assert name not in server.geysir("domain", "list").stdout


def rest_proxy_api(apigw, arn, stage):
    api_id = apigw.create_rest_api(name=unique("dom-rest"))["id"]
    root = apigw.get_resources(restApiId=api_id)["items"][0]["id"]
    proxy = apigw.create_resource(restApiId=api_id, parentId=root, pathPart="{proxy+}")["id"]
    apigw.put_method(restApiId=api_id, resourceId=proxy, httpMethod="ANY", authorizationType="NONE")
    apigw.put_integration(restApiId=api_id, resourceId=proxy, httpMethod="ANY", type="AWS_PROXY",
                          integrationHttpMethod="POST",
                          uri=f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{arn}/invocations")
    apigw.create_deployment(restApiId=api_id, stageName=stage)
    return api_id


def test_rest_api_on_a_custom_domain_through_base_path_mappings(env, api_fn):
    server = env["server"]
    apigw = server.client("apigateway")
    api_id = rest_proxy_api(apigw, api_fn, "prod")
    name = unique("v1dom") + ".example.test"
    made = apigw.create_domain_name(domainName=name, regionalCertificateArn="arn:aws:acm:us-east-1:0:certificate/x",
                                    endpointConfiguration={"types": ["REGIONAL"]})
    assert made["domainName"] == name and made["domainNameStatus"] in ("PENDING", "AVAILABLE")
    wait_domain_available(lambda n: apigw.get_domain_name(domainName=n), name)
    apigw.create_base_path_mapping(domainName=name, basePath="shop", restApiId=api_id, stage="prod")
    root = apigw.create_base_path_mapping(domainName=name, restApiId=api_id, stage="prod")
    assert root["basePath"] == "(none)"
    with pytest.raises(apigw.exceptions.ConflictException):
        apigw.create_base_path_mapping(domainName=name, basePath="shop", restApiId=api_id, stage="prod")
    with pytest.raises(apigw.exceptions.NotFoundException):
        apigw.create_base_path_mapping(domainName=name, basePath="x", restApiId="nosuchapi", stage="prod")
    got = sorted((m["basePath"], m["restApiId"], m["stage"]) for m in
                 apigw.get_base_path_mappings(domainName=name)["items"])
    assert got == [("(none)", api_id, "prod"), ("shop", api_id, "prod")]
    assert apigw.get_base_path_mapping(domainName=name, basePath="(none)")["restApiId"] == api_id
    assert name in [d["domainName"] for d in apigw.get_domain_names()["items"]]

    # The longest base path wins and is stripped for matching; `path` is what the client sent,
    # with no stage segment anywhere in the URL.
    e = json.loads(wait_https(env, name, "/shop/items/7", 200)[1])
    assert e["domain"] == name and e["stage"] == "prod" and e["apiId"] == api_id
    assert e["prefix"] == name.split(".")[0]
    assert e["resource"] == "/{proxy+}" and e["params"] == {"proxy": "items/7"}
    assert e["path"] == "/shop/items/7" and e["rcPath"] == "/shop/items/7"
    e = json.loads(wait_https(env, name, "/items/7", 200)[1])
    assert e["path"] == "/items/7" and e["params"] == {"proxy": "items/7"}
    # "/shopping" is not under "shop": the root mapping takes it.
    e = json.loads(wait_https(env, name, "/shopping/1", 200)[1])
    assert e["params"] == {"proxy": "shopping/1"}

    apigw.delete_base_path_mapping(domainName=name, basePath="shop")
    deadline = time.time() + 30
    while json.loads(wait_https(env, name, "/shop/items/7", 200)[1])["params"] != {"proxy": "shop/items/7"}:
        assert time.time() < deadline
        time.sleep(0.2)
    apigw.delete_domain_name(domainName=name)
    with pytest.raises(apigw.exceptions.NotFoundException):
        apigw.get_domain_name(domainName=name)


def test_rest_domain_name_with_an_uploaded_certificate(env, tmp_path):
    apigw = env["server"].client("apigateway")
    name = unique("upl") + ".example.test"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "3", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                    "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem")], check=True,
                   capture_output=True)
    cert, key = (tmp_path / "c.pem").read_text(), (tmp_path / "k.pem").read_text()
    # Served at once: no ACME order for an uploaded certificate.
    d = apigw.create_domain_name(domainName=name, certificateName="mine", certificateBody=cert,
                                 certificatePrivateKey=key)
    assert d["domainNameStatus"] == "AVAILABLE" and d["regionalCertificateName"].startswith("uploaded:")
    assert json.loads(env["server"].geysir("domain", "show", name).stdout)["Certificate"] == "manual"
    # A certificate for another name is refused with the reason.
    with pytest.raises(apigw.exceptions.BadRequestException) as e:
        apigw.create_domain_name(domainName="other." + name, certificateBody=cert, certificatePrivateKey=key)
    assert "not other." + name in str(e.value)
    apigw.delete_domain_name(domainName=name)


def test_cli_maps_a_domain_to_an_api_stage(env, api_fn):
    """`geysir domain add --api` (plain HTTP here: --no-tls, no certificate to wait for)."""
    server = env["server"]
    api_id = rest_proxy_api(server.client("apigateway"), api_fn, "live")
    name = unique("cli-api") + ".example.test"
    r = server.geysir("domain", "add", name, "--api", api_id, "--stage", "live", "--base-path", "shop", "--no-tls")
    assert r.returncode == 0, r.stderr
    assert [(m["ApiId"], m["Stage"], m["ApiMappingKey"]) for m in json.loads(r.stdout)["ApiMappings"]] == \
        [(api_id, "live", "shop")]
    assert server.geysir("domain", "add", name, "--api", api_id, "--no-tls").returncode == 2  # no --stage
    port = env["http_port"]
    deadline = time.time() + 30
    while True:
        p = subprocess.run(["curl", "-sS", "--max-time", "10", "-H", f"Host: {name}", f"http://127.0.0.1:{port}/shop/a/b"],
                           capture_output=True, text=True, timeout=20)
        if p.returncode == 0 and p.stdout.startswith("{") and "params" in p.stdout:
            break
        assert time.time() < deadline, p.stdout + p.stderr
        time.sleep(0.2)
    e = json.loads(p.stdout)
    assert e["domain"] == name and e["stage"] == "live" and e["path"] == "/shop/a/b" and e["params"] == {"proxy": "a/b"}
    assert server.geysir("domain", "remove", name).returncode == 0
