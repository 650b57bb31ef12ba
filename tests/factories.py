"""Request bodies for tests: a valid default, changed by keyword; and an app bound to a test's
connection."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import Connection
from sqlalchemy.orm import sessionmaker

from api import db

HELSINKI = {"type": "Point", "coordinates": [24.9384, 60.1699]}


def venue_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Kahvila", "location": HELSINKI, "timezone": "Europe/Helsinki"}
    body.update(overrides)
    return body


def offer_body(venues: list[str], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "venue_ids": venues,
        "title": "Free coffee",
        "rule": {"kind": "every_checkin"},
    }
    body.update(overrides)
    return body


def bind_to_connection(app: Flask, connection: Connection) -> None:
    """Make `app` work in savepoints of `connection`'s transaction, which the test rolls back:
    the request's session, and, standing in for its autocommit connection (`execute`,
    `commit` and `close` alike), a session too."""
    db.dispose(app)
    app.extensions["sessionmaker"] = app.extensions["autocommit_connect"] = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
