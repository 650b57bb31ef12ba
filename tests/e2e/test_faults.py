"""PostgreSQL restarts in the middle of a burst of check-ins and redemptions.

A PostgreSQL cluster of this test's own (it is stopped and started, so it cannot be the shared
one) serves a real gunicorn. Parallel clients check in and redeem with idempotency keys and retry
on 503 or a lost connection, as the contract tells them to. After the database comes back:
every request that got a 2xx is in the database, nothing was applied twice, the cap held
exactly, and the service recovered by itself.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from api.cli import alembic_config
from mobile_stub.client import Client, HttpTransport
from tests.factories import offer_body, venue_body
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A throwaway cluster of this checkout, beside the suite's own: `scripts/pg.sh --cluster`
    puts it where the PostgreSQL server may write (as root, outside a checkout it may not enter)
    and `destroy` removes it with its data."""

    def __init__(self, name: str):
        self.name = name

    def pg(self, *args: str) -> str:
        done = subprocess.run(
            [str(ROOT / "scripts" / "pg.sh"), "--cluster", self.name, *args],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def start(self) -> None:
        self.pg("start")

    def stop(self) -> None:
        self.pg("stop")

    def destroy(self) -> None:
        self.pg("destroy")

    def url(self, db: str = "postgres") -> str:
        return self.pg("url", db)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    cluster = Cluster(f"faults-{secrets.token_hex(3)}")
    try:
        cluster.start()
        admin = create_engine(
            cluster.url().replace("postgresql:", "postgresql+psycopg2:"),
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE app"))
        admin.dispose()
        config = alembic_config(cluster.url("app"))
        config.attributes["skip_logging"] = True
        from alembic import command

        command.upgrade(config, "head")
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def server(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = (tmp_path_factory.mktemp("faults") / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "api.wsgi:app",
            "--bind",
            f"127.0.0.1:{port}",
            "--worker-class",
            "gthread",
            "--workers",
            "2",
            "--threads",
            "8",
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": cluster.url("app")},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(Path(log.name).read_text()) from None
            time.sleep(0.1)
    yield base
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@dataclass
class Outcomes:
    checkins: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> 201 body
    redemptions: dict[str, dict[str, Any]] = field(default_factory=dict)  # code -> 201 body
    refused: list[tuple[str, int, str]] = field(default_factory=list)
    unavailable: int = 0  # 503 problem+json answers seen
    transport_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _post(
    session: requests.Session,
    url: str,
    token: str,
    key: str,
    body: dict[str, Any],
    out: Outcomes,
    deadline: float,
) -> requests.Response | None:
    """POST with an idempotency key, retrying the same key on 503 or a lost connection."""
    while time.monotonic() < deadline:
        try:
            response = session.post(
                url,
                json=body,
                timeout=10,
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
            )
        except requests.RequestException:
            with out.lock:
                out.transport_errors += 1
            time.sleep(0.2)
            continue
        if response.status_code == 503:
            assert response.headers["Content-Type"] == "application/problem+json"
            assert response.json()["code"] == "service_unavailable"
            with out.lock:
                out.unavailable += 1
            time.sleep(0.2)
            continue
        return response
    return None


def test_database_restart_mid_burst_loses_and_duplicates_nothing(
    cluster: Cluster, server: str
) -> None:
    api = Client(HttpTransport(server))
    owner = api.with_token(api.create_merchant("Faulty", "f@example.com")["api_key"])
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    cap = 40
    offer = owner.activate_offer(
        owner.create_offer(offer_body([venue["id"]], total_cap=cap, per_user_cap=1000))["id"]
    )
    staff_key = owner.create_key("staff")["api_key"]
    tokens = [
        api.create_user(f"f{i}_{secrets.token_hex(3)}", "pass-word-1")["token"] for i in range(12)
    ]
    lon, lat = venue["location"]["coordinates"]
    out = Outcomes()
    stop_at = time.monotonic() + 14
    give_up = stop_at + 30
    unlocked_codes: list[str] = []

    def phone(token: str) -> None:
        session = requests.Session()
        while time.monotonic() < stop_at:
            key = secrets.token_hex(8)
            body = {
                "venue_id": venue["id"],
                "lat": lat,
                "lon": lon,
                "accuracy_m": 10,
                "observed_at": datetime.now(UTC).isoformat(),
            }
            response = _post(session, f"{server}/v1/checkins", token, key, body, out, give_up)
            if response is None:
                continue
            assert response.status_code == 201, response.text
            with out.lock:
                out.checkins[key] = response.json()
                unlocked_codes.extend(u["code"] for u in response.json()["unlocks"])
            time.sleep(0.05)

    def till() -> None:
        session = requests.Session()
        redeemed = 0
        while time.monotonic() < stop_at or redeemed < len(unlocked_codes):
            with out.lock:
                pending = unlocked_codes[redeemed:]
            if not pending:
                time.sleep(0.05)
                if time.monotonic() > give_up:
                    break
                continue
            code = pending[0]
            redeemed += 1
            response = _post(
                session,
                f"{server}/v1/redemptions",
                staff_key,
                f"till-{code}",
                {"code": code},
                out,
                give_up,
            )
            if response is None:
                continue
            with out.lock:
                if response.status_code == 201:
                    out.redemptions[code] = response.json()
                else:
                    out.refused.append((code, response.status_code, response.json()["code"]))

    health_during_outage: list[int] = []

    def chaos() -> None:
        # The database goes away once the burst is under way ...
        wait_for(lambda: len(out.checkins) >= 10, "the burst to get going", timeout=60)
        cluster.stop()
        time.sleep(0.5)  # the outage lasts a while (a duration, not a wait for an event)
        try:
            health_during_outage.append(requests.get(f"{server}/healthz", timeout=5).status_code)
        except requests.RequestException:
            health_during_outage.append(-1)
        time.sleep(2)
        cluster.start()  # ... and comes back

    threads = [threading.Thread(target=phone, args=(t,)) for t in tokens]
    threads += [threading.Thread(target=till), threading.Thread(target=chaos)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(t.is_alive() for t in threads)

    # The service recovered by itself.
    assert requests.get(f"{server}/healthz", timeout=5).status_code == 200
    assert health_during_outage == [503]
    assert out.unavailable > 0  # clients did see the outage, as 503 problem+json

    engine = create_engine(cluster.url("app").replace("postgresql:", "postgresql+psycopg2:"))
    with engine.connect() as conn:
        stored = {str(r[0]) for r in conn.execute(text("SELECT id FROM checkins"))}
        acknowledged = {body["id"] for body in out.checkins.values()}
        assert acknowledged <= stored  # every 2xx is in the database
        assert len(stored) == len(acknowledged)  # and nothing was applied twice
        unlocks = conn.execute(text("SELECT count(*) FROM unlocks")).scalar()
        count = conn.execute(
            text("SELECT unlocked_count FROM offers WHERE id = :o"), {"o": offer["id"]}
        ).scalar()
        assert unlocks == count == cap  # the cap held exactly
        redeemed = {str(r[0]) for r in conn.execute(text("SELECT unlock_id FROM redemptions"))}
        assert {b["unlock_id"] for b in out.redemptions.values()} == redeemed
        assert len(out.redemptions) == cap and not out.refused
    engine.dispose()
    assert len(out.checkins) > cap
