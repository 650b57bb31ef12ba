"""Jobs the service runs by itself: the retention job (core/privacy.py), started in every
gunicorn worker (`api/gunicorn_conf.py`, `post_worker_init`).

Each worker runs a daemon thread that wakes every `RETENTION_INTERVAL_MINUTES` (the first time
after a random minute, so workers started together spread out) and calls
`core.privacy.apply_retention`, which runs only in the process that takes its PostgreSQL
advisory lock: one run at a time across every worker and host, and when that process dies its
lock goes with its connection, so the next wake-up elsewhere takes over. The job works in short
transactions, so a worker stopped half way leaves nothing half done. A failed run is logged and
tried again at the next wake-up. The thread has an engine of its own (one connection), so it
never takes a connection the requests need.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

from flask import Flask

from core import privacy
from core.uow import make_engine

log = logging.getLogger("checkin_offers.jobs")


def start_retention(app: Flask, first_delay_s: float | None = None) -> threading.Event | None:
    """Start the retention thread unless `RETENTION_JOB_ENABLED` is off; setting the event it
    answers stops it."""
    if not app.config["RETENTION_JOB_ENABLED"]:
        return None
    stop = threading.Event()
    delay = random.uniform(5, 60) if first_delay_s is None else first_delay_s
    thread = threading.Thread(
        target=_loop,
        args=(app.config, delay, stop),
        name="retention-job",
        daemon=True,
    )
    thread.start()
    return stop


def _loop(config: Any, delay: float, stop: threading.Event) -> None:
    engine = make_engine(config["DATABASE_URL"], pool_size=1, max_overflow=0)
    interval = config["RETENTION_INTERVAL_MINUTES"] * 60
    try:
        while not stop.wait(delay):
            delay = interval
            try:
                report = privacy.apply_retention(engine, retention_days=config["RETENTION_DAYS"])
            except Exception as error:  # the database away, a statement timeout: try later
                log.warning(
                    "the retention job failed (%s: %s); it runs again in %d min",
                    type(error).__name__,
                    str(error).splitlines()[0][:200] if str(error) else "",
                    interval // 60,
                )
                continue
            if report.ran and (report.coarsened or report.idempotency_records):
                log.info(
                    "retention job: %d check-ins coarsened, %d idempotency records and %d "
                    "rate-limit counters pruned in %.1f s",
                    report.coarsened,
                    report.idempotency_records,
                    report.rate_limit_counters,
                    report.seconds,
                )
    finally:
        engine.dispose()
