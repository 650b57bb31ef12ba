"""The unit of work: one use case, one transaction. Only an explicit `commit()` persists."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker


def sqlalchemy_url(url: str) -> str:
    """A PostgreSQL URL for the psycopg2 driver (SQLAlchemy 2.1 defaults to psycopg 3)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10) -> Engine:
    """An engine whose pool survives a database restart (`pool_pre_ping`)."""
    return create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        # Error messages (and so logged tracebacks) leave out the statement's parameters: they
        # hold unlock codes, token hashes and the like.
        hide_parameters=True,
        # Timestamps come back in UTC whatever the server's default zone. JIT compilation costs
        # more than it saves on these short queries (measured: 4 s of JIT on a 1.3 s report).
        connect_args={"options": "-c timezone=UTC -c jit=off"},
    )


class UnitOfWork:
    def __init__(self, session_factory: sessionmaker[Session]):
        self._factory = session_factory
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        self.session = self._factory()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.session.rollback()
        self.session.close()

    def commit(self) -> None:
        self.session.commit()
