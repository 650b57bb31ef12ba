"""The service benchmark still runs end to end (at a tiny scale): dataset, captured statements
under pgbench, a real gunicorn under load, and a report with every operation."""

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
    assert {t["target"].split()[0] for t in report["targets"]} >= {"checkin", "nearby", "p99"}
    assert "## Targets" in (tmp_path / "report.md").read_text()


def test_presence_benchmark_smoke() -> None:
    """A tap's verification, a tap and its check-in, and a GPS check-in are each measured."""
    result = presence.measure(os.environ["DATABASE_URL"], n=5, verifications=50)
    assert 0 < result["verification"]["tap_verification_us"] < 10_000
    for kind in ("gps_checkin", "tap", "tap_checkin"):
        assert result["requests"][kind]["requests"] == 5
        assert result["requests"][kind]["cpu_ms"] > 0
    assert "tap check-in" in "\n".join(presence.markdown(result))
