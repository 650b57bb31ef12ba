"""Operating the real server: gunicorn started as `scripts/run.sh` starts it (`tests/servers.py`).

- Metrics add up over gunicorn's worker processes (prometheus_client's multiprocess mode) after
  real traffic, and a dead worker's live gauges stop counting.
- Every line the server prints is JSON, with one `request` line per request and never a secret.
- SIGTERM is graceful: a request in flight when it arrives still gets its answer.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from core.uow import sqlalchemy_url
from mobile_stub.client import ApiError, Client, HttpTransport
from tests.factories import offer_body, venue_body
from tests.servers import Server, metric_value, start_gunicorn
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

TOKEN = secrets.token_hex(24)
LON, LAT = 24.9384, 60.1699  # tests.factories.HELSINKI


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("metrics")


@pytest.fixture(scope="module")
def server(
    live_database_url: str, metrics_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Two workers with metrics on, sharing `metrics_dir`."""
    started = start_gunicorn(
        live_database_url,
        tmp_path_factory.mktemp("ops") / "gunicorn.log",
        env={"METRICS_TOKEN": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        workers=2,
        threads=4,
    )
    yield started
    assert started.stop() == 0


def scrape(server: Server) -> str:
    response = requests.get(
        f"{server.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.text


def worker_pids(metrics_dir: Path) -> set[int]:
    """Workers with live gauges in the shared directory (each reports its pool)."""
    return {int(p.stem.rpartition("_")[2]) for p in metrics_dir.glob("gauge_livesum_*.db")}


def traffic(base: str) -> dict[str, Any]:
    """A merchant, an offer, two check-ins (one verified, one rejected) and three redemption
    attempts (redeemed, already redeemed, unknown), over real HTTP."""
    transport = HttpTransport(base)
    api = Client(transport)
    tag = secrets.token_hex(4)
    owner_key = api.create_merchant("Ops Cafe", f"ops-{tag}@example.com")["api_key"]
    owner = api.with_token(owner_key)
    venue = owner.create_venue(venue_body(name="Ops venue"))
    owner.activate_offer(owner.create_offer(offer_body([venue["id"]]))["id"])
    user_token = api.create_user(f"ops_{tag}", "correct horse")["token"]
    stranger_token = api.create_user(f"ops2_{tag}", "correct horse")["token"]
    taken = datetime.now(UTC).isoformat()
    checkin = api.with_token(user_token).check_in(venue["id"], LAT, LON, 10, taken)
    assert checkin["status"] == "verified"
    rejected = api.with_token(stranger_token).check_in(
        venue["id"], LAT, LON, 10, taken, mock_location=True
    )
    assert [r["code"] for r in rejected["reasons"]] == ["mock_location"]
    code = checkin["unlocks"][0]["code"]
    owner.redeem(code, venue["id"])
    for attempt in (code, "AAAA-AAAA-AAA"):
        with pytest.raises(ApiError):
            owner.redeem(attempt)
    transport.close()
    return {"secrets": [owner_key, user_token, stranger_token, code, code.replace("-", "")]}


def test_metrics_add_up_over_the_workers_after_real_traffic(
    server: Server, metrics_dir: Path
) -> None:
    wait_for(lambda: len(worker_pids(metrics_dir)) == 2, "both workers to report")
    before = scrape(server)
    # Each worker's two pools (transactions, autocommit) may each open 5 + 10 connections: the
    # gauge adds up over both workers.
    assert metric_value(before, "checkin_offers_db_pool_connections_max") == 60

    for _ in range(20):  # a new connection each: any worker may answer
        assert requests.get(f"{server.base}/healthz", timeout=10).status_code == 200
    traffic(server.base)
    after = scrape(server)

    def moved(name: str, **labels: str) -> float:
        full = f"checkin_offers_{name}"
        return metric_value(after, full, **labels) - metric_value(before, full, **labels)

    healthz = {"method": "GET", "route": "/healthz", "status": "200"}
    assert moved("http_requests_total", **healthz) == 20
    assert moved("http_request_duration_seconds_count", **healthz) == 20
    assert moved("http_requests_total", method="POST", route="/v1/checkins", status="201") == 2
    assert moved("http_requests_total", method="POST", route="/v1/redemptions", status="409") == 1
    assert moved("http_requests_total", method="POST", route="/v1/redemptions", status="404") == 1
    assert moved("checkins_total", verdict="verified") == 1
    assert moved("checkins_total", verdict="rejected") == 1
    assert moved("checkin_rejection_reasons_total", reason="mock_location") == 1
    assert moved("unlocks_total", kind="every_checkin") == 1
    assert moved("redemptions_total", kind="every_checkin") == 1
    assert moved("redemption_attempts_total", outcome="redeemed") == 1
    assert moved("redemption_attempts_total", outcome="already_redeemed") == 1
    assert moved("redemption_attempts_total", outcome="not_found") == 1
    assert metric_value(after, "checkin_offers_db_pool_connections_open") >= 1
    assert metric_value(after, "checkin_offers_db_pool_connections_in_use") >= 0


def test_metrics_need_the_token_under_gunicorn_too(server: Server) -> None:
    response = requests.get(f"{server.base}/metrics", timeout=10)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"


def test_a_dead_workers_gauges_stop_counting(server: Server, metrics_dir: Path) -> None:
    wait_for(lambda: len(worker_pids(metrics_dir)) == 2, "both workers to report")
    healthz = {"method": "GET", "route": "/healthz", "status": "200"}
    served = metric_value(scrape(server), "checkin_offers_http_requests_total", **healthz)
    victim = min(worker_pids(metrics_dir))
    os.kill(victim, signal.SIGKILL)
    # gunicorn's child_exit hook drops the dead worker's gauges; a new worker reports its own.
    wait_for(
        lambda: victim not in worker_pids(metrics_dir) and len(worker_pids(metrics_dir)) == 2,
        "the worker to be replaced",
    )
    exposition = scrape(server)
    assert metric_value(exposition, "checkin_offers_db_pool_connections_max") == 60
    # Counters keep what the dead worker counted.
    assert metric_value(exposition, "checkin_offers_http_requests_total", **healthz) >= served


def test_the_server_prints_json_lines_one_per_request_and_no_secrets(server: Server) -> None:
    sent = traffic(server.base)
    request_id = f"ops-{secrets.token_hex(4)}"
    response = requests.get(
        f"{server.base}/readyz", headers={"X-Request-ID": request_id}, timeout=10
    )
    assert response.headers["X-Request-ID"] == request_id
    wait_for(lambda: request_id in server.log(), "the request's log line")
    lines = [line for line in server.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert all({"time", "level", "logger", "event", "pid"} <= r.keys() for r in records)
    ours = [r for r in records if r["event"] == "request" and r.get("request_id") == request_id]
    assert len(ours) == 1
    assert ours[0]["route"] == "/readyz" and ours[0]["status"] == 200
    assert not [r for r in records if r["logger"] == "gunicorn.access"]
    assert {"checkin", "redemption"} <= {r["event"] for r in records}
    log = server.log()
    for secret in sent["secrets"]:
        assert secret not in log
    assert TOKEN not in log and "Bearer" not in log


def test_sigterm_lets_the_request_in_flight_finish(live_database_url: str, tmp_path: Path) -> None:
    """A check-in held up inside the server (its per-user lock is taken here) when SIGTERM
    arrives still gets its 201, and the server then exits cleanly."""
    server = start_gunicorn(
        live_database_url, tmp_path / "gunicorn.log", workers=1, threads=4, graceful_timeout=20
    )
    try:
        api = Client(HttpTransport(server.base))
        tag = secrets.token_hex(4)
        owner = api.with_token(api.create_merchant("Late", f"late-{tag}@example.com")["api_key"])
        venue = owner.create_venue(venue_body(name="Late venue"))
        created = api.create_user(f"late_{tag}", "correct horse")
        user_id, token = created["user"]["id"], created["token"]

        engine = create_engine(sqlalchemy_url(live_database_url))
        blocker = engine.connect()
        lock = {"k": f"user:{user_id}"}
        blocker.execute(text("SELECT pg_advisory_lock(hashtextextended(:k, 0))"), lock)

        answer: dict[str, Any] = {}

        def check_in() -> None:
            response = requests.post(
                f"{server.base}/v1/checkins",
                json={
                    "venue_id": venue["id"],
                    "lat": LAT,
                    "lon": LON,
                    "accuracy_m": 10,
                    "observed_at": datetime.now(UTC).isoformat(),
                },
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            answer.update(status=response.status_code, body=response.json(), at=time.monotonic())

        thread = threading.Thread(target=check_in)
        thread.start()
        waiting = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        with engine.connect() as probe:
            wait_for(lambda: probe.execute(waiting).scalar_one() > 0, "the check-in to wait")

        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        wait_for(lambda: "Handling signal: term" in server.log(), "gunicorn to handle SIGTERM")
        time.sleep(0.5)  # a while in which it must not quit (a non-event: nothing to poll for)
        assert server.proc.poll() is None, "the server quit with a request in flight"
        blocker.execute(text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"), lock)
        blocker.close()

        thread.join(timeout=30)
        assert answer["status"] == 201, answer
        assert answer["body"]["status"] == "verified"
        assert answer["at"] > signalled
        assert server.proc.wait(timeout=30) == 0
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT status FROM checkins WHERE id = :id"), {"id": answer["body"]["id"]}
            ).scalar_one()
        assert stored == "verified"
        engine.dispose()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
