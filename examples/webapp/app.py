"""The example web app: a Flask app that answers which release and which
worker served it, checks its database for /health, and hands work to a
Celery worker through Redis (/add)."""

import os
import sqlite3

from flask import Flask, jsonify, request

from tasks import add

app = Flask(__name__)
DATABASE = os.environ["WEBAPP_DB"]
RELEASE = os.environ.get("WEBAPP_RELEASE", "v1")


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
