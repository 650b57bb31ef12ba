"""The unit of work: one use case, one transaction. Only an explicit `commit()` persists."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, Executable, create_engine, event, exc
from sqlalchemy.orm import Session

# A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 1.0


def sqlalchemy_url(url: str) -> str:
    """A PostgreSQL URL for the psycopg2 driver (SQLAlchemy 2.1 defaults to psycopg 3)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    max_overflow: int = 10,
    autocommit: bool = False,
    connect_timeout: int | None = None,
) -> Engine:
    """An engine whose pool survives a database restart. With `autocommit` its connections are
    in autocommit mode for good: each statement is its own transaction.

    SQLAlchemy's `pool_pre_ping` costs a round trip on every checkout, a tenth of a nearby
    request's time here (docs/performance.md). Instead a connection is pinged only when it has
    sat in the pool for over `PING_AFTER_IDLE_S`: after a restart, or a quiet spell, that
    catches the dead ones. A connection used moments before the server went away fails its
    statement instead; SQLAlchemy then sees the disconnect and invalidates every connection
    the pool holds, so each worker answers at most one request 503 `service_unavailable`.

    With `connect_timeout` (read replicas), a server that does not answer fails the connection,
    and one that stops answering on an open connection its statement, within about that long.
    """
    engine = create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        # Error messages (and so logged tracebacks) leave out the statement's parameters: they
        # hold unlock codes, token hashes and the like.
        hide_parameters=True,
        # Timestamps come back in UTC whatever the server's default zone. JIT compilation costs
        # more than it saves on these short queries (measured: 4 s of JIT on a 1.3 s report).
        connect_args={
            "options": "-c timezone=UTC -c jit=off",
            **(
                {
                    "connect_timeout": connect_timeout,
                    # A server that stops answering on an open connection (a network partition)
                    # fails its statement within seconds, not the kernel's minutes.
                    "tcp_user_timeout": connect_timeout * 1000,
                    "keepalives": 1,
                    "keepalives_idle": connect_timeout,
                    "keepalives_interval": 1,
                    "keepalives_count": 3,
                }
                if connect_timeout
                else {}
            ),
        },
        **({"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None} if autocommit else {}),
    )

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned_at = record.info.get("returned_at")
        if returned_at is None or time.monotonic() - returned_at < PING_AFTER_IDLE_S:
            return  # just opened, or back in the pool a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool drops this connection and hands out another (or opens a new one).
            raise exc.DisconnectionError() from error

    return engine


def execute(
    db: Session | Connection,
    statement: Executable,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
) -> CursorResult[Any]:
    """Run a Core or text statement in the session's transaction, on its connection.

    `Session.execute` takes every statement through the ORM's machinery (plugins, events, bind
    lookup): measured here, about 0.2 ms of CPU per statement on top of 0.2 ms for the whole
    statement on the connection. The hot paths (a check-in's ten statements, a redemption's
    six) use this instead. Objects added to the session are flushed first, as
    `Session.execute` would."""
    if isinstance(db, Session):
        db.flush()
        db = db.connection()
    return db.execute(statement, params)


class UnitOfWork:
    """One use case, one transaction (docs/architecture.md).

    A use case opens the unit (`with uow:`), does its locking, change and audit record through
    `uow.session`, and calls `commit()`; leaving the block without it rolls everything back.

    Blocks nest: an inner `with uow:` joins the outer one's transaction. Inside `held()` a use
    case's `commit()` only flushes, and the caller that holds the unit commits once for all:
    that is how an idempotency record and the answer it stores commit with the change they
    describe (`core/idempotency.py`).
    """

    def __init__(self, session_factory: Callable[[], Session], *, owns_session: bool = True):
        self._factory = session_factory
        self._owns_session = owns_session  # False: the request's session, closed at teardown
        self._depth = 0
        self._held = 0
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        if self._depth == 0:
            self.session = self._factory()
        self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth > 0:
            return
        # What a use case answers outlives its unit: detached as loaded, never expired by the
        # rollback below (which has nothing to undo after a commit).
        self.session.expunge_all()
        self.session.rollback()
        if self._owns_session:
            self.session.close()

    def commit(self) -> None:
        """Persist the unit's changes; under `held()`, leave that to the holder."""
        if self._held:
            self.session.flush()
            return
        self.session.commit()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Use cases run in this block commit with the holder's own `commit()`, afterwards."""
        if self._depth == 0:
            raise RuntimeError("hold a unit of work inside its `with` block")
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
