"""A small WSGI adapter for function URLs (payload format 2.0).

make_handler(wsgi_app) returns a Lambda handler that turns the function URL event into a WSGI
environ (PEP 3333), calls the app once, and returns the result dict function URLs expect
({"statusCode", "headers", "cookies", "body", "isBase64Encoded"}). Bodies that are not UTF-8
text travel base64-encoded in both directions, as AWS does.
"""
import base64
import io
import os
import sys
import urllib.parse

TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml",
              "application/x-www-form-urlencoded", "image/svg+xml")


def _environ(event, context):
    http = event.get("requestContext", {}).get("http", {})
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")
    if event.get("cookies"):
        headers["cookie"] = "; ".join(event["cookies"])
    host = headers.get("host", "localhost")
    server_name, _, port = host.partition(":")
    proto = headers.get("x-forwarded-proto", "http")
    env = {
        "REQUEST_METHOD": http.get("method", "GET"),
        "SCRIPT_NAME": "",
        "PATH_INFO": urllib.parse.unquote(event.get("rawPath", "/"), encoding="latin-1"),
        "QUERY_STRING": event.get("rawQueryString", ""),
        "SERVER_NAME": server_name,
        "SERVER_PORT": port or ("443" if proto == "https" else "80"),
        "SERVER_PROTOCOL": http.get("protocol", "HTTP/1.1"),
        "REMOTE_ADDR": http.get("sourceIp", ""),
        "CONTENT_LENGTH": str(len(raw)),
        "CONTENT_TYPE": headers.get("content-type", ""),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": proto,
        "wsgi.input": io.BytesIO(raw),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        # A fresh process per request (Geysir's default), unless the function chose reuse mode.
        "wsgi.run_once": os.environ.get("GEYSIR_EXECUTION_MODE", "per-request") != "reuse",
        "lambda.event": event,
        "lambda.context": context,
    }
    for k, v in headers.items():
        if k in ("content-type", "content-length"):
            continue
        env["HTTP_" + k.upper().replace("-", "_")] = v
    return env


def make_handler(app):
    def handler(event, context):
        status_headers = {}

        def start_response(status, response_headers, exc_info=None):
            if exc_info and status_headers:
                raise exc_info[1].with_traceback(exc_info[2])
            status_headers["status"] = int(status.split(" ", 1)[0])
            status_headers["headers"] = response_headers
            return lambda data: chunks.append(data)

        chunks = []
        result = app(_environ(event, context), start_response)
        try:
            for data in result:
                if data:
                    chunks.append(data)
        finally:
            if hasattr(result, "close"):
                result.close()
        body = b"".join(chunks)
        headers, cookies = {}, []
        for name, value in status_headers.get("headers", []):
            if name.lower() in ("content-length", "transfer-encoding", "connection"):
                continue  # framing is the gateway's business: it sets these for the real body
            if name.lower() == "set-cookie":
                cookies.append(value)
            elif name.lower() in headers:
                headers[name.lower()] += ", " + value
            else:
                headers[name.lower()] = value
        ctype = headers.get("content-type", "")
        out = {"statusCode": status_headers.get("status", 500), "headers": headers, "cookies": cookies}
        if not body or ctype.startswith(TEXT_TYPES):
            try:
                out["body"] = body.decode("utf-8")
                out["isBase64Encoded"] = False
                return out
            except UnicodeDecodeError:
                pass
        out["body"] = base64.b64encode(body).decode("ascii")
        out["isBase64Encoded"] = True
        return out

    return handler
