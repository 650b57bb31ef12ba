"""`python -m api.webhook_worker`: the webhook delivery worker (core/delivery.py) as a process.

It reads the same settings as the API (api/config.py), so `make run`, `docker compose up` and a
production deployment start it beside the API with the same environment. SIGTERM or SIGINT
stops it gracefully: no new deliveries are claimed, those in flight finish (bounded by the
delivery timeouts), and it exits 0. `--once` sends what is due now and exits (cron, tests).

With `WEBHOOK_WORKER_METRICS_PORT` it serves Prometheus metrics on that port: deliveries by
outcome and their durations (the queue's depth is the API's `/metrics`, read from the database).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from sqlalchemy.orm import sessionmaker

from api import config as config_module
from api import observability
from core import webhooks
from core.delivery import Worker
from core.uow import make_engine

log = logging.getLogger("checkin_offers.webhooks")


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.outcomes = Counter(
            "checkin_offers_webhook_deliveries",
            "Webhook delivery attempts, by outcome (delivered, http_4xx, http_5xx, error, "
            "refused) and what became of the delivery (delivered, pending, failed)",
            ["outcome", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "checkin_offers_webhook_delivery_duration_seconds",
            "Time one webhook delivery attempt took",
            registry=self.registry,
        )

    def observe(self, _claimed: webhooks.Claimed, outcome: webhooks.Outcome, status: str) -> None:
        self.outcomes.labels(outcome.label, status).inc()
        self.duration.observe(outcome.duration_ms / 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.webhook_worker", description=__doc__)
    parser.add_argument("--once", action="store_true", help="send what is due now, then exit")
    args = parser.parse_args(argv)
    try:
        settings = config_module.load()
    except config_module.ConfigError as error:
        print(f"error: {error.report()}", file=sys.stderr)
        return 2
    # The API's log lines (LOG_FORMAT, LOG_LEVEL): JSON in a container, short text at a terminal.
    observability.configure_logging(settings["LOG_LEVEL"], settings["LOG_FORMAT"])
    threads = settings["WEBHOOK_WORKER_THREADS"]
    engine = make_engine(settings["DATABASE_URL"], pool_size=threads + 1, max_overflow=1)
    metrics = WorkerMetrics()
    worker = Worker(
        sessionmaker(engine, expire_on_commit=False),
        webhooks.UrlPolicy(allow_http_loopback=settings["WEBHOOKS_ALLOW_HTTP_LOOPBACK"]),
        threads=threads,
        on_outcome=metrics.observe,
    )
    if args.once:
        sent = worker.drain()
        log.info("sent %d due deliveries", sent)
        engine.dispose()
        return 0
    port = settings["WEBHOOK_WORKER_METRICS_PORT"]
    if port:
        start_http_server(port, registry=metrics.registry)
    done = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: finishing deliveries in flight", signal.Signals(signum).name)
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.start()
    log.info("webhook worker started (%d threads)", threads)
    done.wait()
    worker.stop(timeout=webhooks.CONNECT_TIMEOUT_S + webhooks.READ_TIMEOUT_S + 5)
    engine.dispose()
    log.info("webhook worker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
