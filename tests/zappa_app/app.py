"""The Flask app of the Zappa end-to-end tests (tests/integration/test_zappa.py): the shape of
the one Zappa's reference traces were recorded with (`/`, `/echo`, a scheduled `app.tick`, a
direct `app.hello`), plus routes that show what a URL round-trips: cookies, binary bodies.
Flask is Debian's python3-flask, importable by the runtime's interpreter; it is not in the zip.
"""
import json
import os

from flask import Flask, Response, jsonify, request

app = Flask(__name__)

# Changed by the tests between deploys (the zip's own VERSION file), so which code answers
# after an update or a rollback is visible from outside.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "VERSION")) as f:
    VERSION = f.read().strip()


@app.route("/")
def index():
    return f"tinyapp {VERSION}\n", 200, {"Content-Type": "text/plain"}


@app.route("/echo", methods=["GET", "POST", "PUT"])
def echo():
    return jsonify(
        version=VERSION,
        method=request.method,
        path=request.path,
        args=request.args.to_dict(flat=False),
        headers={k.lower(): v for k, v in request.headers.items()},
        cookies=request.cookies,
        body=request.get_data(as_text=True),
    )


@app.route("/cookies")
def cookies():
    r = Response("two cookies\n", mimetype="text/plain")
    r.set_cookie("a", "1", path="/")
    r.set_cookie("b", "2", httponly=True)
    return r


@app.route("/binary", methods=["POST"])
def binary():
    data = request.get_data()
    return Response(bytes(reversed(data)), mimetype="application/octet-stream",
                    headers={"X-Length": str(len(data))})


def tick(event=None, context=None):
    print("TICK " + json.dumps({"kwargs": (event or {}).get("kwargs"), "detail-type": (event or {}).get("detail-type")}))
    return "ticked"


def hello(event=None, context=None):
    print("HELLO from app.hello")
    return f"hello from tinyapp {VERSION}"
