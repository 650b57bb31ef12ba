"""The retention job on a benchmark database, and check-in latency while it runs.

    .venv/bin/python -m bench.retention --database-url postgresql://.../co_bench_100k

On a database `bench.dataset` built (5 check-ins per venue over the 90 days up to 3 days ago),
a thread checks in random users at random venues through the check-in use case, back to back,
for `--baseline` seconds; then `core.privacy.apply_retention` runs while the thread goes on.
Prints the job's figures and the check-in latency (p50, p95, p99, max) before and during the
job: the baseline is measured in the same run, right before, on the same machine.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from core import privacy
from core.uow import UnitOfWork, make_engine
from offers.checkins import CheckinInput, check_in


def _percentiles(samples: list[float]) -> str:
    if not samples:
        return "no check-ins"
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return (
        f"{len(samples)} check-ins, p50 {statistics.median(ordered) * 1000:.1f} ms, "
        f"p95 {at(0.95):.1f} ms, p99 {at(0.99):.1f} ms, max {ordered[-1] * 1000:.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--baseline", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=privacy.RETENTION_BATCH)
    args = parser.parse_args(argv)

    engine = make_engine(args.database_url, pool_size=2)
    with engine.connect() as conn:
        venues = conn.execute(
            text(
                "SELECT id, ST_Y(location::geometry) AS lat, ST_X(location::geometry) AS lon"
                " FROM venues WHERE deleted_at IS NULL ORDER BY random() LIMIT 500"
            )
        ).all()
        users = conn.execute(text("SELECT id FROM users ORDER BY random() LIMIT 5000")).scalars()
        users = list(users)
        precise, old = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE coarsened_at IS NULL),"
                " count(*) FILTER (WHERE coarsened_at IS NULL"
                "   AND created_at < now() - make_interval(days => :d))"
                " FROM checkins"
            ),
            {"d": privacy.RETENTION_DAYS},
        ).one()
    print(
        f"check-ins still precise: {precise:,}; older than {privacy.RETENTION_DAYS} days: {old:,}"
    )

    make_session = sessionmaker(engine, expire_on_commit=False)
    phase: dict[str, list[float]] = {"before": [], "during": []}
    current = ["before"]
    stop = threading.Event()

    def checkins() -> None:
        rng = random.Random(7)
        while not stop.is_set():
            venue: Any = rng.choice(venues)
            started = time.perf_counter()
            check_in(
                UnitOfWork(make_session),
                rng.choice(users),
                CheckinInput(venue.id, venue.lat, venue.lon, 10.0, datetime.now(UTC)),
            )
            phase[current[0]].append(time.perf_counter() - started)

    worker = threading.Thread(target=checkins, daemon=True)
    worker.start()
    time.sleep(args.baseline)
    current[0] = "during"
    report = privacy.apply_retention(engine, batch=args.batch)
    stop.set()
    worker.join()
    print(
        f"retention job: {report.coarsened:,} check-ins coarsened in {report.batches} batches, "
        f"{report.idempotency_records} idempotency records and {report.rate_limit_counters} "
        f"rate-limit counters pruned, in {report.seconds:.1f} s "
        f"({report.coarsened / max(report.seconds, 1e-9):,.0f} check-ins/s)"
    )
    print(f"check-ins before the job ({args.baseline:.0f} s): {_percentiles(phase['before'])}")
    print(f"check-ins during the job: {_percentiles(phase['during'])}")
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
