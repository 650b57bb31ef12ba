"""Per request, at most one database session (closed, and rolled back unless committed, at
teardown) and one connection in autocommit (closed at teardown). Use cases get the session
wrapped in a unit of work (`uow()`); only they commit.

Read-only views call their query through `read()`, which runs it on a read replica when one is
configured, healthy and (for reads that must see earlier writes) caught up, and on the primary
otherwise (`api/replicas.py`, docs/scaling.md)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app, g
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from api.replicas import PRIMARY_POSITION, ReplicaSet, lsn
from core.uow import UnitOfWork, make_engine

T = TypeVar("T")
log = logging.getLogger("checkin_offers.db")


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
    app.extensions["replicas"] = (
        ReplicaSet(app.config) if app.config["DATABASE_REPLICA_URLS"] else None
    )
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


def replicas() -> ReplicaSet | None:
    found: ReplicaSet | None = current_app.extensions.get("replicas")
    return found


def fence() -> int:
    """The primary's WAL flush position now: every commit acknowledged before lies below it."""
    position = connection().execute(PRIMARY_POSITION).scalar_one()
    return lsn(position) or 0


def read(query: Callable[[Session], T], *, fresh: bool = True) -> T:
    """Run a read-only `query` on a replica when one may serve it, else on the primary.

    `fresh`: the read must see every write committed before this request began (the caller's
    own above all): a replica serves it only once it has replayed past the primary's WAL
    position (`fence()`). Not fresh (nearby's listing, which has no caller whose writes it must
    show): any replica in rotation, at most `REPLICA_MAX_LAG_SECONDS` behind. A replica that fails the query is taken out of rotation
    and the query runs again on the primary, so a replica that goes away never fails a request.
    """
    found = replicas()
    if found is None:
        return query(session())
    replica, reason = found.choose(fence() if fresh else None)
    if replica is not None:
        replica_session: Session = replica.sessions()
        g.setdefault("replica_sessions", []).append(replica_session)
        try:
            result = query(replica_session)
        except DBAPIError as error:
            # Down, restarted, or a query cancelled by a recovery conflict: the primary answers.
            with contextlib.suppress(DBAPIError):
                replica_session.rollback()
            if error.connection_invalidated or not _still_answers(replica_session):
                found.mark_down(replica, error)
            log.warning(
                "replica %s failed a read (%s); reading the primary", replica.name, error.orig
            )
            _count("primary", replica.name, "replica_failed")
        else:
            _count("replica", replica.name, "replica")
            return result
    else:
        _count("primary", "", reason)
    return query(session())


def _still_answers(replica_session: Session) -> bool:
    try:
        replica_session.connection().exec_driver_sql("SELECT 1")
        return True
    except DBAPIError:
        return False


def _count(target: str, replica: str, reason: str) -> None:
    from api import metrics  # api.metrics imports api.auth, which imports this module

    recorder = metrics.current()
    if recorder is not None:
        recorder.observe_read(target, replica, reason)


def _close(_exc: BaseException | None) -> None:
    for replica_session in g.pop("replica_sessions", ()):
        try:
            replica_session.rollback()
            replica_session.close()
        except DBAPIError:
            pass  # the replica went away under it: its pool has been told
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
    if app.extensions.get("replicas") is not None:
        app.extensions["replicas"].dispose()
