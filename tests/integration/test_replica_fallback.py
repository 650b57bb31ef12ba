"""Replicas that cannot serve are out of rotation, and their reads go to the primary without an
error: a URL that names a primary (not a standby, e.g. a promoted replica) and one where nothing
listens. Real standbys: tests/e2e/test_replicas.py."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import make_url

from api import create_app, db
from mobile_stub.client import Client, FlaskTransport
from tests.conftest import SECRET_KEY
from tests.factories import offer_body, venue_body


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: nothing listens


@pytest.fixture
def app(committed_database_url: str, committed_app: Flask) -> Iterator[Flask]:
    """Two bad replicas; `committed_app` empties the database afterwards."""
    nowhere = (
        make_url(committed_database_url)
        .set(drivername="postgresql", port=_closed_port())
        .render_as_string(hide_password=False)
    )
    app = create_app(
        {
            "DATABASE_URL": committed_database_url,
            "DATABASE_REPLICA_URLS": (committed_database_url, nowhere),
            "METRICS_TOKEN": "m" * 32,
            "SECRET_KEY": SECRET_KEY,
            "TESTING": True,
        }
    )
    yield app
    db.dispose(app)


def test_a_primary_or_a_dead_replica_is_out_of_rotation_and_reads_go_to_the_primary(
    app: Flask,
) -> None:
    api = Client(FlaskTransport(app.test_client()))
    owner = api.with_token(api.create_merchant("Fallback Cafe", "f@example.com")["api_key"])
    venue = owner.create_venue(venue_body())
    offer = owner.create_offer(offer_body([venue["id"]]))

    assert owner.get_offer(offer["id"])["title"] == offer["title"]
    assert [v["id"] for v in owner.list_venues()] == [venue["id"]]

    ready = app.test_client().get("/readyz")
    assert ready.status_code == 200
    assert [(r["state"], r["lag_seconds"]) for r in ready.get_json()["replicas"]] == [
        ("not_standby", 0.0),
        ("down", None),
    ]
    reads = {
        (s.labels["target"], s.labels["reason"]): s.value
        for s in app.extensions["metrics"].reads.collect()[0].samples
        if s.name.endswith("_total")
    }
    assert reads == {("primary", "no_replica"): 2.0}
    text = app.test_client().get("/metrics", headers={"Authorization": "Bearer " + "m" * 32}).text
    assert "checkin_offers_db_replica_in_rotation{" in text
