"""Read replicas on real streaming replication (docs/scaling.md, api/replicas.py).

A hot standby of the suite's own cluster, made with `pg_basebackup -R` by `scripts/pg.sh --cluster
NAME standby` (as the `postgres` user when run as root, on a free port of its own), serves the
app's reads. The tests prove that reads are served by the standby, that writes and the reads
that must see them go right, that a standby whose replay is paused is routed around and put back,
and that stopping the standby in the middle of a load fails no request. It starts PostgreSQL
processes, so it is an e2e test.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, make_url, text

from api import create_app, db
from api.replicas import display_name
from core.uow import sqlalchemy_url
from mobile_stub.client import Client, FlaskTransport, HttpTransport
from tests.conftest import SECRET_KEY, _create_database, _drop_database
from tests.factories import HELSINKI, offer_body, venue_body
from tests.servers import start_gunicorn
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MAX_LAG = 0.5
CHECK_EVERY = 0.1


def _pg(cluster: str, *args: str) -> str:
    done = subprocess.run(
        [str(ROOT / "scripts" / "pg.sh"), "--cluster", cluster, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@dataclass
class Standby:
    cluster: str
    primary_url: str
    url: str
    database: str

    def stop(self) -> None:
        _pg(self.cluster, "stop")

    def start(self) -> None:
        _pg(self.cluster, "standby")

    def engine(self) -> Engine:
        return create_engine(sqlalchemy_url(self.url), isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="module")
def standby() -> Iterator[Standby]:
    own = _pg("main", "url", "postgres")
    if make_url(own).port != make_url(os.environ["DATABASE_URL"]).port:
        pytest.skip("DATABASE_URL is not this checkout's private cluster: no standby to make")
    name = f"co_replica_{secrets.token_hex(4)}"
    primary_url = _create_database(name)
    cluster = f"replica-{secrets.token_hex(3)}"
    _pg(cluster, "standby")
    url = make_url(sqlalchemy_url(_pg(cluster, "url", name)))
    yield Standby(
        cluster,
        primary_url,
        url.set(drivername="postgresql").render_as_string(hide_password=False),
        name,
    )
    _pg(cluster, "destroy")
    _drop_database(name)


@pytest.fixture
def app(standby: Standby) -> Iterator[Flask]:
    app = create_app(
        {
            "DATABASE_URL": standby.primary_url,
            "DATABASE_REPLICA_URLS": (standby.url,),
            "REPLICA_MAX_LAG_SECONDS": MAX_LAG,
            "REPLICA_CHECK_SECONDS": CHECK_EVERY,
            "REPLICA_FRESH_WAIT_MS": 200,
            "METRICS_TOKEN": "t" * 32,
            "RATE_LIMIT_ENABLED": False,
            "SECRET_KEY": SECRET_KEY,
            "TESTING": True,
        }
    )
    yield app
    db.dispose(app)


def _client(app: Flask) -> Client:
    return Client(FlaskTransport(app.test_client()))


def _reads(app: Flask, target: str, reason: str | None = None) -> float:
    """Reads counted so far on `target` (`replica` or `primary`), optionally for one reason."""
    counted = 0.0
    for metric in app.extensions["metrics"].reads.collect():
        for sample in metric.samples:
            if (
                sample.name.endswith("_total")
                and sample.labels["target"] == target
                and (reason is None or sample.labels["reason"] == reason)
            ):
                counted += sample.value
    return counted


def _readyz(app: Flask) -> dict:
    response = app.test_client().get("/readyz")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _state(app: Flask) -> str:
    state: str = _readyz(app)["replicas"][0]["state"]
    return state


def _merchant(app: Flask) -> tuple[Client, str, str]:
    api = _client(app)
    owner = api.with_token(
        api.create_merchant("Replica Cafe", f"{secrets.token_hex(4)}@example.com")["api_key"]
    )
    venue = owner.create_venue(venue_body())
    offer = owner.create_offer(offer_body([venue["id"]]))
    owner.activate_offer(offer["id"])
    return owner, venue["id"], offer["id"]


def test_reads_are_served_by_the_standby_and_writes_by_the_primary(
    app: Flask, standby: Standby
) -> None:
    owner, venue_id, offer_id = _merchant(app)
    before = _reads(app, "replica")

    listed = owner.list_offers()
    assert [o["id"] for o in listed] == [offer_id]
    assert owner.get_venue(venue_id)["id"] == venue_id
    found = _client(app).nearby(60.1699, 24.9384, radius_m=2000)
    assert offer_id in [o["id"] for v in found for o in v["offers"]]

    assert _reads(app, "replica") - before == 3, _reads(app, "primary")
    ready = _readyz(app)
    assert ready["replicas"] == [
        {
            "name": display_name(standby.url),
            "state": "up",
            "lag_seconds": pytest.approx(0, abs=MAX_LAG),
        }
    ]
    # What the standby served is really on the standby: it is in recovery and has the offer.
    with standby.engine().connect() as conn:
        assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is True
        assert conn.execute(text("SELECT count(*) FROM offers")).scalar_one() >= 1


def test_read_your_writes_holds_under_load(app: Flask) -> None:
    """Parallel owners edit an offer and read it straight back, again and again: every read
    sees the edit it follows, and the standby still serves most of them."""
    failures: list[str] = []
    before = _reads(app, "replica")

    def owner_loop(n: int) -> None:
        owner, _venue, offer_id = _merchant(app)
        for i in range(15):
            title = f"Edit {n}-{i}"
            owner.update_offer(offer_id, {"title": title})
            seen = owner.get_offer(offer_id)["title"]
            if seen != title:
                failures.append(f"wrote {title}, read {seen}")
            if title not in [o["title"] for o in owner.list_offers()]:
                failures.append(f"{title} missing from the list")

    threads = [threading.Thread(target=owner_loop, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert _reads(app, "replica") - before > 0


def test_the_wallet_shows_the_unlock_of_the_check_in_just_made(app: Flask) -> None:
    _owner, venue_id, offer_id = _merchant(app)
    lon, lat = HELSINKI["coordinates"]
    before = _reads(app, "replica")
    for n in range(10):
        user = _client(app).with_token(
            _client(app).create_user(f"wallet_{n}_{secrets.token_hex(3)}", "correct horse")["token"]
        )
        checkin = user.check_in(venue_id, lat, lon, 10, datetime.now(UTC).isoformat())
        assert [u["offer_id"] for u in checkin["unlocks"]] == [offer_id]
        assert [e["offer_id"] for e in user.wallet()] == [offer_id]
    assert _reads(app, "replica") - before > 0


def test_read_your_writes_across_gunicorn_workers(
    standby: Standby, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The API as served (gunicorn, several workers: a write and the read after it land on any
    of them) against the primary and the standby: every read sees the write before it."""
    server = start_gunicorn(
        standby.primary_url,
        tmp_path_factory.mktemp("replicas") / "gunicorn.log",
        env={
            "DATABASE_REPLICA_URLS": standby.url,
            "REPLICA_MAX_LAG_SECONDS": str(MAX_LAG),
            "RATE_LIMIT_ENABLED": "false",
        },
        workers=3,
        threads=4,
    )
    failures: list[str] = []
    try:
        api = Client(HttpTransport(server.base))
        owner = api.with_token(
            api.create_merchant("Served Cafe", f"{secrets.token_hex(4)}@example.com")["api_key"]
        )
        venue = owner.create_venue(venue_body())
        served_before = _standby_transactions(standby)

        def loop(n: int) -> None:
            client = Client(HttpTransport(server.base)).with_token(owner.token)
            offer = client.create_offer(offer_body([venue["id"]], title=f"Offer {n}"))
            for i in range(20):
                title = f"Offer {n}.{i}"
                client.update_offer(offer["id"], {"title": title})
                if (seen := client.get_offer(offer["id"])["title"]) != title:
                    failures.append(f"wrote {title}, read {seen}")

        threads = [threading.Thread(target=loop, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # The standby served reads: its own statistics count the service's transactions
        # (a standby counts what runs on it; 120 reads were made, some go to the primary).
        wait_for(
            lambda: _standby_transactions(standby) - served_before > 30,
            "transactions on the standby",
        )
        ready = requests_get(server.base + "/readyz")
        assert ready["replicas"][0]["state"] == "up"
    finally:
        server.stop()
    assert failures == []


def _standby_transactions(standby: Standby) -> int:
    engine = standby.engine()
    with engine.connect() as conn:
        count: int = conn.execute(
            text("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :db"),
            {"db": standby.database},
        ).scalar_one()
    engine.dispose()
    return count


def requests_get(url: str) -> dict:
    import json
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        found: dict = json.loads(response.read())
        return found


def test_a_lagging_standby_is_routed_around_and_put_back(app: Flask, standby: Standby) -> None:
    owner, _venue, offer_id = _merchant(app)
    _client(app).nearby(60.1699, 24.9384, radius_m=2000)  # in rotation
    with standby.engine().connect() as conn:
        conn.execute(text("SELECT pg_wal_replay_pause()"))
    try:
        # WAL keeps coming; the standby does not replay it.
        owner.update_offer(offer_id, {"title": "After the pause"})
        time.sleep(MAX_LAG + 2 * CHECK_EVERY)
        owner.update_offer(offer_id, {"title": "After the pause, again"})
        wait_for(lambda: _state(app) == "lagging", "the standby lagging", timeout=10)

        before = _reads(app, "primary", "no_replica")
        # Stale reads do not happen: the edit is seen, from the primary.
        assert owner.get_offer(offer_id)["title"] == "After the pause, again"
        found = _client(app).nearby(60.1699, 24.9384, radius_m=2000)
        assert "After the pause, again" in [o["title"] for v in found for o in v["offers"]]
        assert _reads(app, "primary", "no_replica") - before == 2
    finally:
        with standby.engine().connect() as conn:
            conn.execute(text("SELECT pg_wal_replay_resume()"))
    wait_for(lambda: _state(app) == "up", "the standby up", timeout=10)
    before = _reads(app, "replica")
    assert owner.get_offer(offer_id)["title"] == "After the pause, again"
    assert _reads(app, "replica") - before == 1


def test_stopping_the_standby_mid_load_fails_no_request(app: Flask, standby: Standby) -> None:
    owner, _venue, offer_id = _merchant(app)
    stop = threading.Event()
    errors: list[str] = []
    done = [0]

    def reader() -> None:
        client = _client(app)
        while not stop.is_set():
            try:
                client.nearby(60.1699, 24.9384, radius_m=2000)
                titles = [o["title"] for o in owner.list_offers()]
                assert titles, "no offers"
                done[0] += 1
            except Exception as error:
                errors.append(repr(error))

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                owner.update_offer(offer_id, {"title": f"Load {i}"})
                assert owner.get_offer(offer_id)["title"] == f"Load {i}"
            except Exception as error:
                errors.append(repr(error))

    threads = [threading.Thread(target=reader) for _ in range(3)] + [
        threading.Thread(target=writer)
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        standby.stop()
        wait_for(lambda: _state(app) == "down", "the standby down", timeout=10)
        time.sleep(1.0)  # load on, standby down
    finally:
        stop.set()
        for t in threads:
            t.join()
        standby.start()
    assert errors == []
    assert done[0] > 0
    assert _reads(app, "primary", "no_replica") + _reads(app, "primary", "replica_failed") > 0
    # Back when it is healthy.
    wait_for(lambda: _state(app) == "up", "the standby up", timeout=30)
    # Back in rotation, it serves again once it has replayed what it missed.
    before = _reads(app, "replica")
    wait_for(
        lambda: owner.list_offers() and _reads(app, "replica") > before,
        "a read served by the restarted standby",
        timeout=30,
    )
    assert errors == []
