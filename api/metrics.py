"""Prometheus metrics, served at `GET /metrics` in the text exposition format.

Off unless `METRICS_TOKEN` is set: then nothing is collected and `/metrics` answers 404 like any
unknown path. On, a scrape needs `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise).

Under gunicorn each worker is a process of its own, so counts are shared through files in
`PROMETHEUS_MULTIPROC_DIR` (prometheus_client's multiprocess mode, chosen by that variable when
prometheus_client is first imported; `api/gunicorn_conf.py` sets it before any worker starts and
removes a dead worker's live gauges). A scrape, answered by any one worker, then adds up every
worker's files. Without that variable (the Flask test client, `flask run`) the metrics live in
the app's own registry, so each app built by `create_app` counts from zero.

`/metrics` is a plain Flask route, outside the OpenAPI document: it is for Prometheus, not for
API clients.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import Engine, event
from werkzeug.exceptions import NotFound

from api import db
from api.auth import bearer
from core import webhooks
from core.errors import UnauthorizedError

PREFIX = "checkin_offers"
UNMATCHED_ROUTE = "unmatched"  # a path no route matched: never the path itself (cardinality)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

bp = Blueprint("metrics", __name__)


class Metrics:
    """The service's metrics, built per app."""

    def __init__(self, multiprocess_dir: str | None):
        self.multiprocess_dir = multiprocess_dir
        # Multiprocess mode: values live in files, and a scrape reads them all through a fresh
        # registry; the metric objects are registered nowhere.
        self.registry = None if multiprocess_dir else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.checkins = Counter(
            f"{PREFIX}_checkins", "Check-ins recorded, by verdict", ["verdict"], registry=r
        )
        self.rejections = Counter(
            f"{PREFIX}_checkin_rejection_reasons",
            "Reasons given for rejected check-ins (a check-in may give several)",
            ["reason"],
            registry=r,
        )
        self.unlocks = Counter(
            f"{PREFIX}_unlocks",
            "Offers unlocked (codes issued), by rule kind",
            ["kind"],
            registry=r,
        )
        self.holdouts = Counter(
            f"{PREFIX}_holdouts",
            "Unlocks withheld because the user is in the offer's holdout group, by rule kind",
            ["kind"],
            registry=r,
        )
        self.redemptions = Counter(
            f"{PREFIX}_redemptions",
            "Codes redeemed, by the offer's rule kind",
            ["kind"],
            registry=r,
        )
        self.redemption_attempts = Counter(
            f"{PREFIX}_redemption_attempts",
            "Redemption attempts, by outcome (redeemed or the refusal's code)",
            ["outcome"],
            registry=r,
        )
        # Gauges add up over the live workers ("livesum"); a dead worker's share is removed.
        self.pool_in_use = Gauge(
            f"{PREFIX}_db_pool_connections_in_use",
            "Database connections checked out of the pools",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.pool_open = Gauge(
            f"{PREFIX}_db_pool_connections_open",
            "Database connections open (in use or idle in the pools)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.pool_max = Gauge(
            f"{PREFIX}_db_pool_connections_max",
            "Most connections the pools may open (pool size plus overflow, over all workers)",
            registry=r,
            multiprocess_mode="livesum",
        )

        self.reads = Counter(
            f"{PREFIX}_db_reads",
            "Reads that a replica may serve, by where they ran (`replica` or `primary`), the "
            "replica (that served it, or failed it) and why (`replica`; to the primary: "
            "`no_replica` in rotation, `behind` the caller's writes, `replica_failed`)",
            ["target", "replica", "reason"],
            registry=r,
        )
        self.replica_lag = Gauge(
            f"{PREFIX}_db_replica_lag_seconds",
            "A replica's replay lag at its last check (the largest any worker saw)",
            ["replica"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.replica_in_rotation = Gauge(
            f"{PREFIX}_db_replica_in_rotation",
            "1 while a replica is in rotation, 0 while it is down, lagging or not a standby "
            "(0 if any worker has it out)",
            ["replica"],
            registry=r,
            multiprocess_mode="livemin",
        )

    def observe_read(self, target: str, replica: str, reason: str) -> None:
        self.reads.labels(target, replica, reason).inc()

    def observe_replica(self, replica: Any) -> None:
        self.replica_lag.labels(replica.name).set(
            replica.lag_seconds if replica.lag_seconds is not None else float("nan")
        )
        self.replica_in_rotation.labels(replica.name).set(1 if replica.state == "up" else 0)

    def observe_request(self, method: str, route: str | None, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"  # any token is a method to Werkzeug
        labels = (method, route or UNMATCHED_ROUTE, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def observe_checkin(
        self, verdict: str, reasons: list[str], unlocked: list[str], held_out: list[str]
    ) -> None:
        self.checkins.labels(verdict).inc()
        for reason in reasons:
            self.rejections.labels(reason).inc()
        for kind in unlocked:
            self.unlocks.labels(kind).inc()
        for kind in held_out:
            self.holdouts.labels(kind).inc()

    def observe_redemption(self, outcome: str, kind: str | None) -> None:
        self.redemption_attempts.labels(outcome).inc()
        if kind is not None:
            self.redemptions.labels(kind).inc()

    def watch_pool(self, engine: Engine, capacity: int) -> None:
        """Follow the engine's pool through its events (each worker reports its own pools)."""
        self.pool_max.inc(capacity)

        def on_checkout(*_args: Any) -> None:
            self.pool_in_use.inc()

        def on_checkin(*_args: Any) -> None:
            self.pool_in_use.dec()

        def on_connect(*_args: Any) -> None:
            self.pool_open.inc()

        def on_close(*_args: Any) -> None:
            self.pool_open.dec()

        event.listen(engine, "checkout", on_checkout)
        event.listen(engine, "checkin", on_checkin)
        event.listen(engine, "connect", on_connect)
        event.listen(engine, "close", on_close)

    def render(self) -> bytes:
        """The exposition text, over every worker's files in multiprocess mode."""
        if self.registry is not None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        return generate_latest(registry)


def init_app(app: Flask) -> None:
    """Collect metrics when `METRICS_TOKEN` is set, and serve them at `/metrics` (404 otherwise)."""
    app.register_blueprint(bp)
    if not app.config.get("METRICS_TOKEN"):
        app.extensions["metrics"] = None
        return
    recorder = Metrics(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None)
    capacity = app.config["DB_POOL_SIZE"] + app.config["DB_MAX_OVERFLOW"]
    recorder.watch_pool(app.extensions["engine"], capacity)
    recorder.watch_pool(app.extensions["autocommit_engine"], capacity)
    replicas = app.extensions.get("replicas")
    if replicas is not None:
        replicas.on_state = recorder.observe_replica
    app.extensions["metrics"] = recorder


def current() -> Metrics | None:
    """The app's metrics, or None when they are off."""
    recorder: Metrics | None = current_app.extensions.get("metrics")
    return recorder


@bp.get("/metrics")
def scrape() -> Response:
    recorder = current()
    token = current_app.config.get("METRICS_TOKEN")
    if recorder is None or not token:
        raise NotFound()
    sent = bearer() or ""
    if not hmac.compare_digest(sent.encode(), token.encode()):
        raise UnauthorizedError("a valid metrics token is required (Authorization: Bearer ...)")
    body = recorder.render() + webhook_queue_metrics()
    return Response(body, mimetype=None, content_type=CONTENT_TYPE_LATEST)


class _WebhookQueue:
    """The webhook outbox as the database has it at scrape time (the same for every worker
    and host, so read, not counted). The delivery worker's own outcomes are its metrics."""

    def __init__(self, state: webhooks.QueueState):
        self.state = state

    def collect(self) -> Any:
        s = self.state
        for name, doc, value in (
            (
                "webhook_queue_pending",
                "Webhook deliveries waiting to be sent or retried",
                s.pending,
            ),
            ("webhook_queue_due", "Webhook deliveries due now", s.due),
            (
                "webhook_queue_oldest_due_seconds",
                "How long the oldest due webhook delivery has waited",
                s.oldest_due_s,
            ),
            ("webhook_endpoints_failing", "Webhook endpoints marked failing", s.failing_endpoints),
            ("webhook_workers_running", "Webhook workers with a recent heartbeat", s.workers),
        ):
            yield GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)


def webhook_queue_metrics() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_WebhookQueue(webhooks.queue_state(db.session())))
    return generate_latest(registry)
