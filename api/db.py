"""Per request, at most one database session (closed, and rolled back unless committed, at
teardown) and one connection in autocommit (closed at teardown). Use cases get the session
wrapped in a unit of work (`uow()`); only they commit."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from core.uow import UnitOfWork, make_engine


def init_app(app: Flask) -> None:
    engine = make_engine(
        app.config["DATABASE_URL"],
        pool_size=app.config["DB_POOL_SIZE"],
        max_overflow=app.config["DB_MAX_OVERFLOW"],
    )
    app.extensions["engine"] = engine
    app.extensions["sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    # A pool of its own, whose connections stay in autocommit: switching a pooled connection
    # into autocommit and back on every request cost more than the query's own Python time
    # (docs/performance.md). Few idle connections: it serves nearby, and one request at a time
    # per thread uses one pool or the other.
    most = app.config["DB_POOL_SIZE"] + app.config["DB_MAX_OVERFLOW"]
    autocommit = make_engine(
        app.config["DATABASE_URL"],
        pool_size=min(2, most),
        max_overflow=max(0, most - 2),
        autocommit=True,
    )
    app.extensions["autocommit_engine"] = autocommit
    app.extensions["autocommit_connect"] = autocommit.connect
    app.teardown_appcontext(_close)


def session() -> Session:
    """The request's session: one transaction, committed only by an explicit `commit()`."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["sessionmaker"]()
    s: Session = g.db_session
    return s


def release() -> None:
    """End the request's session now (rolled back, its connection back in the pool): for a
    view that goes on with a session of its own, such as a streamed answer that outlives the
    request's teardown."""
    s = g.pop("db_session", None)
    if s is not None:
        s.rollback()
        s.close()


def uow() -> UnitOfWork:
    """A unit of work on the request's session, for the use cases a view calls: they commit
    it; whatever they leave uncommitted is rolled back when they return."""
    return UnitOfWork(session, owns_session=False)


def unit_of_work() -> UnitOfWork:
    """A unit of work on a session of its own (CLI commands and other work outside a request)."""
    return UnitOfWork(current_app.extensions["sessionmaker"])


def connection() -> Connection:
    """The request's connection in autocommit: each statement is its own transaction (no BEGIN,
    COMMIT or ROLLBACK round trips) and there is no ORM session to keep, for reads and for
    writes that stand alone."""
    if "db_connection" not in g:
        g.db_connection = current_app.extensions["autocommit_connect"]()
    c: Connection = g.db_connection
    return c


def _close(_exc: BaseException | None) -> None:
    s = g.pop("db_session", None)
    if s is not None:
        s.rollback()
        s.close()
    c = g.pop("db_connection", None)
    if c is not None:
        c.close()


def dispose(app: Flask) -> None:
    """Close every pooled connection of the app's engines (scripts and tests, when done)."""
    app.extensions["engine"].dispose()
    app.extensions["autocommit_engine"].dispose()
