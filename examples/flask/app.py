"""A Flask hello app served by Geysir through our WSGI adapter (geysir_wsgi.py).

Deploy:  geysir deploy examples/flask --name flask-hello --handler app.handler --url
Locally, the same `app` runs under any WSGI server:  gunicorn -w 2 app:app
"""
from flask import Flask, jsonify, request

import geysir_wsgi

app = Flask(__name__)


@app.route("/")
def index():
    return "Hello from Flask on Geysir!\n", 200, {"Content-Type": "text/plain"}


@app.route("/echo", methods=["GET", "POST"])
def echo():
    return jsonify(method=request.method, path=request.path, args=request.args.to_dict(flat=False),
                   body=request.get_data(as_text=True))


# The Lambda handler: function URL event in, function URL result out.
handler = geysir_wsgi.make_handler(app)
