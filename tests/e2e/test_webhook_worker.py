"""The webhook worker as a process (`python -m api.webhook_worker`, as `make run` and Compose
start it) beside the real server: `/readyz` sees it; SIGTERM mid-delivery lets the delivery in
flight finish and exits 0; a new worker sends the rest, every committed event exactly once here,
signed so that the receiver's library verifies it."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from core import webhooks
from core.audit import Actor
from core.uow import UnitOfWork, make_engine
from mobile_stub.client import Client
from tests.factories import offer_body, venue_body
from tests.receiver import Receiver
from tests.servers import ROOT
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def engine(live_database_url: str) -> Iterator[Engine]:
    engine = make_engine(live_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _worker(database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "WEBHOOKS_ALLOW_HTTP_LOOPBACK": "1",
        "WEBHOOK_WORKER_THREADS": "2",
        "LOG_FORMAT": "json",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "api.webhook_worker"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _status(engine: Engine, endpoint_id: uuid.UUID) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT status, count(*) FROM webhook_deliveries WHERE endpoint_id = :id"
                " GROUP BY status"
            ),
            {"id": endpoint_id},
        ).all()
    return {r[0]: int(r[1]) for r in rows}


def _readyz_worker(base: str) -> Any:
    return requests.get(f"{base}/readyz", timeout=10).json()["webhooks"]["worker"]


def test_sigterm_finishes_the_delivery_in_flight_and_a_new_worker_sends_the_rest(
    live_server: str,
    live_api: Client,
    live_database_url: str,
    engine: Engine,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    created = live_api.create_merchant("Hook Cafe", "hook@example.com")
    owner = live_api.with_token(created["api_key"])
    hook = webhooks.create_endpoint(  # loopback: the live server runs with production's policy
        UnitOfWork(sessionmaker(engine)),
        Actor.operator("test"),
        uuid.UUID(created["merchant"]["id"]),
        receiver.url(),
        [webhooks.CHECKIN_VERIFIED],
        webhooks.UrlPolicy(allow_http_loopback=True),
    )
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    owner.activate_offer(owner.create_offer(offer_body([venue["id"]]))["id"])
    checkins = []
    for _ in range(3):
        user = live_api.with_token(
            live_api.create_user(f"u{secrets.token_hex(4)}", "correct horse")["token"]
        )
        lon, lat = venue["location"]["coordinates"]
        checkins.append(user.check_in(venue["id"], lat, lon, 10, datetime.now(UTC).isoformat()))

    receiver.delay = 2.0  # slow: the first delivery is in flight when SIGTERM comes
    log = tmp_path / "worker.log"
    first = _worker(live_database_url, log)
    try:
        wait_for(lambda: _readyz_worker(live_server) == "running", "/readyz to see the worker")
        wait_for(lambda: receiver.requests, "the first delivery to arrive", timeout=30)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=20) == 0, log.read_text()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # the delivery in flight finished and was recorded; nothing more was claimed (one endpoint:
    # one delivery in flight at a time)
    assert len(receiver.requests) == 1
    assert _status(engine, hook["id"]) == {"delivered": 1, "pending": 2}
    assert _readyz_worker(live_server) == "not_running"  # its heartbeat left with it

    receiver.delay = 0.0
    second = _worker(live_database_url, log)
    try:
        wait_for(
            lambda: _status(engine, hook["id"]) == {"delivered": 3},
            "the rest to be delivered",
            timeout=30,
        )
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0, log.read_text()
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    payloads = receiver.verified(hook["secret"])
    assert sorted(p["data"]["id"] for p in payloads) == sorted(c["id"] for c in checkins)
    ids = [headers["webhook-id"] for _, headers, _ in receiver.requests]
    assert len(set(ids)) == 3


def test_a_database_connection_lost_mid_delivery_sends_it_again_with_the_same_id(
    live_api: Client,
    live_database_url: str,
    engine: Engine,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    """What a database restart does to the worker: its transaction, holding the delivery, is
    gone before the attempt is recorded. The worker carries on, and the delivery is sent again
    with the same webhook-id (at least once), then recorded."""
    created = live_api.create_merchant("Restart Cafe", "restart@example.com")
    owner = live_api.with_token(created["api_key"])
    hook = webhooks.create_endpoint(
        UnitOfWork(sessionmaker(engine)),
        Actor.operator("test"),
        uuid.UUID(created["merchant"]["id"]),
        receiver.url(),
        [webhooks.CHECKIN_VERIFIED],
        webhooks.UrlPolicy(allow_http_loopback=True),
    )
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    user = live_api.with_token(
        live_api.create_user(f"u{secrets.token_hex(4)}", "correct horse")["token"]
    )
    lon, lat = venue["location"]["coordinates"]
    user.check_in(venue["id"], lat, lon, 10, datetime.now(UTC).isoformat())

    receiver.delay = 2.0
    log = tmp_path / "worker.log"
    worker = _worker(live_database_url, log)
    try:
        wait_for(lambda: receiver.requests, "the delivery to arrive", timeout=30)
        with engine.begin() as conn:  # the worker's claim, waiting on the receiver, is cut off
            cut = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND state = 'idle in transaction' AND query LIKE '%EXECUTE webhook_claim%'"
                )
            ).all()
        assert cut and all(terminated for (terminated,) in cut)
        receiver.delay = 0.0
        wait_for(
            lambda: _status(engine, hook["id"]) == {"delivered": 1},
            "the delivery to be sent again and recorded",
            timeout=30,
        )
        assert worker.poll() is None  # the worker carried on
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    ids = [headers["webhook-id"] for _, headers, _ in receiver.requests]
    assert len(ids) == 2 and len(set(ids)) == 1
    assert len(receiver.verified(hook["secret"])) == 2
