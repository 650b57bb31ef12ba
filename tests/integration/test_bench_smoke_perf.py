"""The service benchmark still runs end to end (at a tiny scale): dataset, captured statements
under pgbench, the reference minimal check-in, a real gunicorn under load, the webhook outbox's
cost with the delivery worker, and a report with every operation. (The replica step makes a
standby of the checkout's cluster: tests/e2e/test_replicas.py covers that machinery.)"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from bench import loadgen, perf, presence
from core.uow import sqlalchemy_url


def test_service_benchmark_smoke(tmp_path: Path) -> None:
    name = f"co_bench_smoke_{secrets.token_hex(3)}"
    try:
        assert (
            perf.main(
                [
                    "--scale",
                    "2k",
                    "--database",
                    name,
                    "--seconds",
                    "1",
                    "--warmup",
                    "0.5",
                    "--clients",
                    "2",
                    "--out",
                    str(tmp_path),
                    "--no-presence",  # its own smoke test is below
                    "--no-replica",
                ]
            )
            == 0
        )
    finally:
        server = make_url(sqlalchemy_url(os.environ["DATABASE_URL"]))
        admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    report = json.loads((tmp_path / "report.json").read_text())
    for op in perf.ISOLATED:
        assert report["servers"][0]["isolated"][op]["ceiling_tps"] > 0, op
        assert report["servers"][0]["isolated"][op]["count"] > 0, op
        assert report["servers"][0]["isolated"][op]["errors"] == 0, op
    assert set(report["servers"][0]["mix_peak"]["ops"]) <= set(loadgen.OPS)
    assert report["servers"][0]["worker_rss_mb"]
    assert report["servers"][0]["floor"]["per_s"] > 0
    assert report["servers"][0]["floor"]["errors"] == 0
    assert report["servers"][0]["reference_checkin"]["tps"] > 0
    assert report["servers"][0]["reference_checkin"]["failed"] == 0
    modes = report["outbox"]["modes"]
    assert modes["none"]["delivered"] == 0
    assert modes["subscribed"]["delivered"] > 0  # the worker sent them, the receiver got them
    assert modes["deferred"]["delivered"] > 0
    assert report["outbox"]["received"] == (
        modes["subscribed"]["delivered"] + modes["deferred"]["delivered"]
    )
    assert modes["subscribed"]["errors"] == 0
    assert modes["subscribed"]["worker_cpu_ms"] > 0
    assert report["outbox"]["breakdown"]["checkin_cpu"] > 0
    assert {t["target"].split()[0] for t in report["targets"]} >= {
        "checkin",
        "check-in",
        "nearby",
        "p99",
        "outbox:",
        "webhooks,",
    }
    assert "## Targets" in (tmp_path / "report.md").read_text()


def test_database_cpu_is_counted_per_cluster() -> None:
    """The benchmark's database CPU is the cluster that serves the URL (its postmaster and its
    children), not every postgres process on the machine: work on it shows, and the count is
    at most what the whole machine's postgres processes used."""
    url = os.environ["DATABASE_URL"]
    cluster = perf.Cluster("primary", url)
    assert cluster.postmaster is not None
    engine = create_engine(sqlalchemy_url(url))
    try:
        before = cluster.cpu_s()
        with engine.connect() as conn:
            conn.execute(text("SELECT count(*) FROM generate_series(1, 3000000)")).scalar()
        assert cluster.cpu_s() - before > 0.05
    finally:
        engine.dispose()
    assert perf.cluster_cpu_s(None) == 0.0


def test_presence_benchmark_smoke() -> None:
    """A tap's verification, a tap and its check-in, and a GPS check-in are each measured."""
    result = presence.measure(os.environ["DATABASE_URL"], n=5, verifications=50)
    assert 0 < result["verification"]["tap_verification_us"] < 10_000
    for kind in ("gps_checkin", "tap", "tap_checkin"):
        assert result["requests"][kind]["requests"] == 5
        assert result["requests"][kind]["cpu_ms"] > 0
    assert "tap check-in" in "\n".join(presence.markdown(result))
