"""Our own stand-in for the handler Zappa puts at the root of its zip (`handler.lambda_handler`),
written for Geysir's tests. Zappa's real module (zappa/handler.py) cannot be fetched here: Zappa
is not packaged in Debian and the test machines have no PyPI. This module is not a copy of it;
it mirrors the parts of it Geysir's runtime depends on:

- how it is instantiated: a singleton class `LambdaHandler` whose `__new__` prints
  "Instancing.." and keeps the instance in the private class attribute `__instance` the first
  time; whose `__init__` loads `zappa_settings` (a module at the root of the zip, which Zappa
  writes) and builds the app -- the WSGI app named by APP_MODULE/APP_FUNCTION, or Django's
  through DJANGO_SETTINGS -- only while `self.settings` is unset; a classmethod
  `LambdaHandler.lambda_handler` that makes `cls()` on every call unless the module made one at
  import (the environment variable INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT); and the module-level
  `lambda_handler(event, context)` that calls it.
- what it dispatches on: payload 2.0 (`version == "2.0"`: HTTP APIs, function URLs), payload 1.0
  (`httpMethod`: REST APIs), EventBridge scheduled events (`detail-type == "Scheduled Event"`,
  the function named by the rule after its last "-"), `command` ("module.function") and
  `raw_command` (Python source); HTTP events become one WSGI call of the app.

Zappa's handler imports boto3 at load time; so does this one, so a runtime without boto3
fails here as it would for Zappa.
"""
import base64
import importlib
import io
import os
import sys
import urllib.parse

import boto3  # noqa: F401  (Zappa's handler needs it; the runtime must provide it)

TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml")


class LambdaHandler:
    """One per process: the settings and the app, built by the first instantiation."""

    __instance = None
    settings = None
    wsgi_app = None

    def __new__(cls, settings_name="zappa_settings"):
        if LambdaHandler.__instance is None:
            print("Instancing..")
            LambdaHandler.__instance = object.__new__(cls)
        return LambdaHandler.__instance

    def __init__(self, settings_name="zappa_settings"):
        if self.settings:
            return  # built already: the costly part runs once per process
        settings = importlib.import_module(settings_name)
        for key, value in (getattr(settings, "ENVIRONMENT_VARIABLES", None) or {}).items():
            os.environ[str(key)] = str(value)
        if getattr(settings, "DJANGO_SETTINGS", None):
            # Django's own entry point; DJANGO_SETTINGS_MODULE tells it which settings to load.
            os.environ["DJANGO_SETTINGS_MODULE"] = settings.DJANGO_SETTINGS
            from django.core.wsgi import get_wsgi_application
            self.wsgi_app = get_wsgi_application()
        elif getattr(settings, "APP_MODULE", None):
            module = importlib.import_module(settings.APP_MODULE)
            self.wsgi_app = getattr(module, settings.APP_FUNCTION)
        self.settings = settings

    @classmethod
    def lambda_handler(cls, event, context):
        handler = _global_handler or cls()
        return handler.handler(event, context)

    def handler(self, event, context):
        if not isinstance(event, dict):
            return None
        if event.get("version") == "2.0" and "requestContext" in event:
            return _http_v2(self.wsgi_app, event, context)
        if event.get("httpMethod"):
            return _http_v1(self.wsgi_app, event, context)
        if event.get("detail-type") == "Scheduled Event":
            name = event.get("resources", [""])[0].split("/")[-1].split("-")[-1]
            if "." in name:
                return _call(_import(name), event, context)
            return None
        if event.get("command"):
            result = _call(_import(event["command"]), event, context)
            print("Result of %s:" % event["command"])
            print(result)
            return result
        if event.get("raw_command"):
            exec(event["raw_command"], {})  # admin-only, as in Zappa: the Lambda API is authenticated
            return None
        return None


def _import(dotted):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _call(fn, event, context):
    for args in ((event, context), (event,), ()):
        try:
            return fn(*args)
        except TypeError as e:
            if "positional argument" not in str(e):
                raise
    raise RuntimeError("function takes neither (event, context), (event) nor ()")


def _environ(method, path, query, headers, body, source_ip, event, context):
    host = headers.get("host", "localhost")
    server_name, _, port = host.partition(":")
    env = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": urllib.parse.unquote(path, encoding="latin-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": server_name,
        "SERVER_PORT": port or "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": source_ip,
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": headers.get("content-type", ""),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": headers.get("x-forwarded-proto", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": True,
        "lambda.event": event,
        "lambda.context": context,
    }
    for k, v in headers.items():
        if k not in ("content-type", "content-length"):
            env["HTTP_" + k.upper().replace("-", "_")] = v
    return env


def _run_wsgi(app, env):
    out = {}
    chunks = []

    def start_response(status, response_headers, exc_info=None):
        out["status"] = int(status.split(" ", 1)[0])
        out["headers"] = response_headers
        return chunks.append

    result = app(env, start_response)
    try:
        chunks.extend(c for c in result if c)
    finally:
        if hasattr(result, "close"):
            result.close()
    return out["status"], out["headers"], b"".join(chunks)


def _body_out(headers, body):
    ctype = next((v for k, v in headers if k.lower() == "content-type"), "")
    if ctype.startswith(TEXT_TYPES):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def _raw_body(event):
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")


def _http_v1(app, event, context):
    headers = {}
    for k, vs in (event.get("multiValueHeaders") or {}).items():
        headers[k.lower()] = ", ".join(vs)
    for k, v in (event.get("headers") or {}).items():
        headers.setdefault(k.lower(), v)
    mvq = event.get("multiValueQueryStringParameters") or {}
    query = urllib.parse.urlencode([(k, v) for k, vs in mvq.items() for v in vs]) if mvq else \
        urllib.parse.urlencode(event.get("queryStringParameters") or {})
    source_ip = event.get("requestContext", {}).get("identity", {}).get("sourceIp", "")
    env = _environ(event["httpMethod"], event.get("path", "/"), query, headers, _raw_body(event), source_ip,
                   event, context)
    status, rheaders, body = _run_wsgi(app, env)
    multi = {}
    for k, v in rheaders:
        if k.lower() in ("content-length", "connection", "transfer-encoding"):
            continue
        multi.setdefault(k, []).append(v)
    text, b64 = _body_out(rheaders, body)
    return {"statusCode": status, "headers": {k: vs[-1] for k, vs in multi.items()}, "multiValueHeaders": multi,
            "body": text, "isBase64Encoded": b64}


def _http_v2(app, event, context):
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    if event.get("cookies"):
        headers["cookie"] = "; ".join(event["cookies"])
    http = event.get("requestContext", {}).get("http", {})
    path = event.get("rawPath", "/")
    # An HTTP API's named stage is part of rawPath (as on AWS); Zappa's handler treats it as the
    # script name, not as part of the app's path, and so do we.
    stage = event.get("requestContext", {}).get("stage", "$default")
    if stage and stage != "$default" and (path == "/" + stage or path.startswith("/" + stage + "/")):
        path = path[len(stage) + 1:] or "/"
    env = _environ(http.get("method", "GET"), path, event.get("rawQueryString", ""), headers,
                   _raw_body(event), http.get("sourceIp", ""), event, context)
    status, rheaders, body = _run_wsgi(app, env)
    out_headers, cookies = {}, []
    for k, v in rheaders:
        lk = k.lower()
        if lk in ("content-length", "connection", "transfer-encoding"):
            continue
        if lk == "set-cookie":
            cookies.append(v)
        else:
            out_headers[lk] = out_headers[lk] + ", " + v if lk in out_headers else v
    text, b64 = _body_out(rheaders, body)
    return {"statusCode": status, "headers": out_headers, "cookies": cookies, "body": text, "isBase64Encoded": b64}


def keep_warm_callback(event, context):
    """The target of Zappa's keep-warm rule (…-zappa-keep-warm-handler.keep_warm_callback)."""
    print("keep warm")


def lambda_handler(event, context):
    return LambdaHandler.lambda_handler(event, context)


# Zappa's opt-in: build the handler when the module loads rather than on the first call.
_global_handler = LambdaHandler() if os.environ.get("INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT") else None
