"""The connection pool survives dead connections without a ping on every checkout."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from core import uow
from tests.waiting import wait_for


def _kill(engine: Engine, pid: int) -> None:
    """Terminate a backend and wait until it is gone (a loaded machine can take seconds).

    A transaction sees pg_stat_activity as it was at its first look: each poll clears that
    snapshot, or a backend still alive at the first poll would look alive for good."""
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

        def gone() -> bool:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
            return conn.execute(alive, {"pid": pid}).scalar_one() == 0

        wait_for(
            gone,
            f"backend {pid} to exit",
            timeout=60,
            every=0.01,
        )


@pytest.fixture(params=[False, True], ids=["transactions", "autocommit"])
def pool_engine(database_url: str, request: pytest.FixtureRequest):
    engine = uow.make_engine(database_url, pool_size=1, max_overflow=0, autocommit=request.param)
    yield engine
    engine.dispose()


def test_a_connection_idle_in_the_pool_is_pinged_and_replaced_when_dead(
    pool_engine: Engine, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pool_engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    _kill(engine, pid)
    monkeypatch.setattr(uow, "PING_AFTER_IDLE_S", 0.0)  # as if it had sat idle for a while
    with pool_engine.connect() as conn:
        new_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    assert new_pid != pid


def test_a_connection_back_a_moment_ago_is_not_pinged(
    pool_engine: Engine, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uow, "PING_AFTER_IDLE_S", 60.0)  # however slow this machine is
    with pool_engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    _kill(engine, pid)
    # Under load connections come back within milliseconds: no ping, so the dead one fails
    # its statement, and the pool is invalidated so the next checkout opens a fresh one.
    with pytest.raises(DBAPIError) as raised, pool_engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert raised.value.connection_invalidated
    with pool_engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
