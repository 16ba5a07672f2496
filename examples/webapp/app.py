"""The example web app: a Flask app that answers which release and which
worker served it, checks its database for /health, and hands work to a
Celery worker through Redis (/add). It counts its requests with
prometheus_client in multiprocess mode; ringmaster serves the four
workers' figures merged at /metrics/web."""

import os
import sqlite3
import time

from flask import Flask, g, jsonify, request
from prometheus_client import Counter, Histogram

from tasks import add

app = Flask(__name__)
DATABASE = os.environ["WEBAPP_DB"]
RELEASE = os.environ.get("WEBAPP_RELEASE", "v1")

REQUESTS = Counter("webapp_requests", "Requests answered.", ["endpoint", "status"])
LATENCY = Histogram("webapp_request_seconds", "Time to answer a request.", ["endpoint"])


@app.before_request
def start_timer():
    g.started = time.perf_counter()


@app.after_request
def count(response):
    endpoint = request.endpoint or "none"
    REQUESTS.labels(endpoint=endpoint, status=str(response.status_code)).inc()
    LATENCY.labels(endpoint=endpoint).observe(time.perf_counter() - g.started)
    return response


@app.get("/")
def index():
    process = os.environ.get("RINGMASTER_PROCESS", "?")
    return f"webapp {RELEASE} from {process} (pid {os.getpid()})\n"


@app.get("/health")
def health():
    # Healthy means the schema the migration made is there.
    with sqlite3.connect(DATABASE) as db:
        (version,) = db.execute("SELECT version FROM schema_version").fetchone()
    return f"ok (schema {version})\n"


@app.get("/add")
def add_numbers():
    x = int(request.args.get("x", "1"))
    y = int(request.args.get("y", "1"))
    result = add.delay(x, y).get(timeout=10)
    return jsonify(x=x, y=y, result=result)
