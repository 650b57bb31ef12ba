"""Webhooks through a restart of the database server itself and a crash of the worker, both in
the middle of a delivery (issue 17: "a test restarts the worker and the database mid-delivery").

The suite's cluster is shared by every test, so this one runs a private PostgreSQL cluster of its
own (`scripts/pg.sh --cluster NAME start`), migrated to head, and stops and starts it. The API
runs in this process on that cluster; the worker is the real process (`python -m
api.webhook_worker`, as `make run` starts it); the receiver is a real HTTP server on loopback
that can hold its answers back, so a delivery is in flight for exactly as long as a restart takes.

What must hold: the worker survives the database going away (it logs, reconnects and carries
on), `/readyz` says 503 while the database is down and sees the worker again after; every event
the database committed arrives, at least once, with the same `webhook-id` and the same body on
every retry, each signature verified by the receiver-side `standardwebhooks` library; the
deliveries cut off by the restart and by the crash are among those sent twice; nothing arrives
that the database did not commit (a check-in refused while the database was down sends nothing).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from flask import Flask
from sqlalchemy import Engine, make_url, text
from standardwebhooks.webhooks import Webhook

from api import create_app, db
from api.cli import alembic_config
from core import webhooks
from core.uow import make_engine
from mobile_stub.client import ApiError, Client, FlaskTransport
from tests.conftest import SECRET_KEY
from tests.factories import offer_body, venue_body
from tests.receiver import Receiver
from tests.servers import ROOT
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e


def _pg(cluster: str, *args: str) -> str:
    done = subprocess.run(
        [str(ROOT / "scripts" / "pg.sh"), "--cluster", cluster, *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@dataclass
class Cluster:
    name: str
    url: str

    def stop(self) -> None:
        _pg(self.name, "stop")

    def start(self) -> None:
        assert _pg(self.name, "start") == "started"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    own = _pg("main", "url", "postgres")
    if make_url(own).port != make_url(os.environ["DATABASE_URL"]).port:
        pytest.skip("DATABASE_URL is not this checkout's private cluster: no cluster to restart")
    name = f"whrestart-{secrets.token_hex(3)}"
    try:
        _pg(name, "start")
        url = _pg(name, "url")  # its database checkin_offers, made by pg.sh
        config = alembic_config(url)
        config.attributes["skip_logging"] = True
        command.upgrade(config, "head")
        yield Cluster(name, url)
    finally:
        _pg(name, "destroy")


@pytest.fixture
def app(cluster: Cluster) -> Iterator[Flask]:
    app = create_app(
        {
            "DATABASE_URL": cluster.url,
            "WEBHOOKS_ALLOW_HTTP_LOOPBACK": True,
            "RATE_LIMIT_ENABLED": False,
            "METRICS_TOKEN": "t" * 32,
            "SECRET_KEY": SECRET_KEY,
            "TESTING": True,
        }
    )
    yield app
    db.dispose(app)


@pytest.fixture
def engine(cluster: Cluster) -> Iterator[Engine]:
    engine = make_engine(cluster.url)
    yield engine
    engine.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Workers:
    """Worker processes started by the test; all killed at the end, whatever happened."""

    def __init__(self, database_url: str, log: Path):
        self.database_url = database_url
        self.log = log
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "WEBHOOKS_ALLOW_HTTP_LOOPBACK": "1",
            "WEBHOOK_WORKER_THREADS": "2",
            "LOG_FORMAT": "text",
        }
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "api.webhook_worker"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(cluster: Cluster, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(cluster.url, tmp_path / "worker.log")
    yield w
    w.kill_all()


def _ready(app: Flask) -> tuple[int, Any]:
    response = app.test_client().get("/readyz")
    return response.status_code, response.get_json()


def _events(engine: Engine, merchant_id: uuid.UUID) -> dict[str, str]:
    """The merchant's committed events: id (the webhook-id), type."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, type FROM webhook_events WHERE merchant_id = :m"), {"m": merchant_id}
        ).all()
    return {str(r.id): r.type for r in rows}


def _unfinished(engine: Engine, merchant_id: uuid.UUID) -> set[str]:
    """Events whose delivery is not recorded delivered yet."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e.id FROM webhook_events e LEFT JOIN webhook_deliveries d"
                " ON d.event_id = e.id AND d.status = 'delivered'"
                " WHERE e.merchant_id = :m AND d.id IS NULL"
            ),
            {"m": merchant_id},
        ).all()
    return {str(r.id) for r in rows}


def test_every_committed_event_arrives_signed_through_a_database_restart_and_a_worker_crash(
    app: Flask,
    cluster: Cluster,
    engine: Engine,
    receiver: Receiver,
    workers: Workers,
) -> None:
    api = Client(FlaskTransport(app.test_client()))
    created = api.create_merchant("Restart Roasters", f"{secrets.token_hex(4)}@example.com")
    owner = api.with_token(created["api_key"])
    merchant_id = uuid.UUID(created["merchant"]["id"])
    hook = owner.create_webhook(
        receiver.url(), [webhooks.CHECKIN_VERIFIED, webhooks.UNLOCK_CREATED]
    )
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    owner.activate_offer(owner.create_offer(offer_body([venue["id"]]))["id"])
    lon, lat = venue["location"]["coordinates"]
    user = api.with_token(api.create_user(f"u{secrets.token_hex(4)}", "correct horse")["token"])
    committed: list[str] = []  # check-ins answered 201: their transactions committed

    def check_in() -> None:
        answer = user.check_in(venue["id"], lat, lon, 10, datetime.now(UTC).isoformat())
        assert answer["status"] == "verified", answer
        committed.append(answer["id"])

    for _ in range(3):
        check_in()

    # 1. The database restarts while a delivery is in flight: the receiver has it, the worker's
    # transaction (holding the claim) is cut off before the attempt is recorded.
    receiver.hold()
    first = workers.start()
    wait_for(lambda: _ready(app)[1]["webhooks"]["worker"] == "running", "the worker's heartbeat")
    wait_for(lambda: receiver.requests, "the first delivery to arrive", timeout=30)
    cut_by_restart = receiver.requests[0][1]["webhook-id"]
    cluster.stop()
    # The receiver answers 200 now (well within the worker's read timeout); the worker cannot
    # record it.
    receiver.release()
    status, problem = _ready(app)
    assert (status, problem["code"]) == (503, "service_unavailable")
    with pytest.raises(ApiError) as refused:  # nothing committed, so nothing may be sent
        user.check_in(venue["id"], lat, lon, 10, datetime.now(UTC).isoformat())
    assert refused.value.status == 503
    wait_for(
        lambda: "database error, retrying" in workers.text(),
        "the worker to notice the database is gone",
    )
    cluster.start()
    assert first.poll() is None, workers.text()  # it survived
    wait_for(lambda: _ready(app)[0] == 200, "/readyz to see the database again", timeout=30)
    wait_for(
        lambda: _ready(app)[1]["webhooks"]["worker"] == "running",
        "the worker's heartbeat after the restart",
        timeout=30,
    )
    wait_for(
        lambda: [h for _, h, _ in receiver.requests[1:] if h["webhook-id"] == cut_by_restart],
        "the delivery cut off by the restart to be sent again",
        timeout=30,
    )
    # Each thread that met the outage says so once it claims again (after at most 5 s).
    wait_for(
        lambda: "database reachable again" in workers.text(),
        "the worker to log that the database is back",
        timeout=20,
    )

    # 2. The worker crashes (SIGKILL, no graceful stop) while a delivery is in flight; a new
    # worker sends it again.
    for _ in range(3):
        check_in()
    receiver.hold()
    arrived = len(receiver.requests)
    wait_for(lambda: len(receiver.requests) > arrived, "a delivery in flight when the worker dies")
    cut_by_crash = receiver.requests[arrived][1]["webhook-id"]
    first.kill()
    first.wait()
    receiver.release()
    second = workers.start()
    for _ in range(2):
        check_in()

    wait_for(
        lambda: _unfinished(engine, merchant_id) == set(),
        "every delivery to be recorded delivered",
        timeout=30,
    )
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=20) == 0, workers.text()

    # Every committed event, and nothing else, arrived: each request signed for this endpoint
    # (verified by the receiver's library) with its event's id and the same body on every retry.
    events = _events(engine, merchant_id)
    signer = Webhook(hook["secret"])
    bodies: dict[str, set[bytes]] = defaultdict(set)
    checkins: dict[str, str] = {}
    for _path, headers, body in receiver.requests:
        payload = signer.verify(body, headers)
        bodies[headers["webhook-id"]].add(body)
        assert events[headers["webhook-id"]] == payload["type"]
        if payload["type"] == webhooks.CHECKIN_VERIFIED:
            checkins[payload["data"]["id"]] = headers["webhook-id"]
    assert set(bodies) == set(events)
    assert all(len(b) == 1 for b in bodies.values())
    assert sorted(checkins) == sorted(committed)  # the refused check-in sent nothing
    assert webhooks.UNLOCK_CREATED in events.values()
    sent = [h["webhook-id"] for _, h, _ in receiver.requests]
    assert sent.count(cut_by_restart) >= 2 and sent.count(cut_by_crash) >= 2
    assert "database error, retrying" in workers.text()
