"""The analytics benchmark still builds its data and runs every call (at a tiny scale)."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import create_engine, make_url, text

from bench import analytics
from core.uow import sqlalchemy_url


def test_analytics_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    import os

    name = f"co_bench_smoke_{secrets.token_hex(3)}"
    try:
        assert (
            analytics.main(
                ["--checkins", "3000", "--users", "300", "--repeat", "1", "--database", name]
            )
            == 0
        )
    finally:
        server = make_url(sqlalchemy_url(os.environ["DATABASE_URL"]))
        admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    out = capsys.readouterr().out
    assert "3,000 check-ins" in out
    assert "leak report" in out and "x baseline" in out
