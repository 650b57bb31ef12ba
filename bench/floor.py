"""The floor under the service: a Flask app whose nearby answers `{"venues": []}` without
touching the database. `bench.perf` serves it exactly as it serves the service (same server,
command, workers and threads) and drives it with the same load, so the report shows what the
HTTP server and Flask cost per request before the service does any work."""

from __future__ import annotations

from flask import Flask, Response, jsonify

app = Flask(__name__)


@app.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@app.get("/v1/venues/nearby")
def nearby() -> Response:
    return jsonify(venues=[])
