"""One database session per request, closed (and rolled back unless committed) at teardown."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session, sessionmaker

from core.uow import make_engine


def init_app(app: Flask) -> None:
    engine = make_engine(
        app.config["DATABASE_URL"],
        pool_size=app.config["DB_POOL_SIZE"],
        max_overflow=app.config["DB_MAX_OVERFLOW"],
    )
    app.extensions["engine"] = engine
    app.extensions["sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.extensions["autocommit_sessionmaker"] = sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )
    app.teardown_appcontext(_close_session)


def session(*, autocommit: bool = False) -> Session:
    """The request's session. With `autocommit` (asked for before anything else in the request
    uses the database) each statement is its own transaction: no BEGIN, COMMIT or ROLLBACK
    round trips, for reads and for writes that stand alone."""
    if "db_session" not in g:
        factory = "autocommit_sessionmaker" if autocommit else "sessionmaker"
        g.db_session = current_app.extensions[factory]()
    s: Session = g.db_session
    return s


def _close_session(_exc: BaseException | None) -> None:
    s = g.pop("db_session", None)
    if s is not None:
        s.rollback()
        s.close()
