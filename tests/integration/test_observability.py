"""Operability in-process: request ids, structured logs, metrics, `/healthz` and `/readyz`.

The same behaviour under gunicorn's workers (multiprocess metrics, JSON lines on stdout,
graceful shutdown) is in `tests/e2e/test_operations.py`.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import generate_latest
from pythonjsonlogger.json import JsonFormatter
from sqlalchemy import Engine, text

from api import create_app, db
from api.cli import alembic_config
from api.observability import log_config
from mobile_stub.client import ApiError, Client, FlaskTransport
from tests.factories import bind_to_connection, offer_body, venue_body
from tests.servers import metric_value

TOKEN = "test-metrics-token-" + "0" * 16
PROBLEM = "application/problem+json"
LON, LAT = 24.9384, 60.1699  # tests.factories.HELSINKI


@pytest.fixture
def make_app(database_url: str, engine: Engine) -> Iterator[Callable[..., Flask]]:
    """Apps with settings of the test's choosing, on the test's rolled-back connection."""
    connection = engine.connect()
    outer = connection.begin()
    built: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        app = create_app({"DATABASE_URL": database_url, "TESTING": True, **overrides})
        bind_to_connection(app, connection)
        built.append(app)
        return app

    yield build
    outer.rollback()
    connection.close()
    for app in built:
        db.dispose(app)


@pytest.fixture
def metrics_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(METRICS_TOKEN=TOKEN)


def scrape(client: FlaskClient) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def now() -> str:
    return datetime.now(UTC).isoformat()


@pytest.fixture
def caplog_info(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="checkin_offers")
    return caplog


def events(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    """The fields of every `event` record (a record's `extra` fields are its attributes)."""
    return [vars(r) for r in caplog.records if r.getMessage() == event]


def a_world(api: Client, tag: str = "") -> dict[str, Any]:
    """A merchant with an active every_checkin offer at a venue, a user and a verified check-in
    that unlocked a code."""
    owner = api.with_token(api.create_merchant(f"Cafe{tag}", f"o{tag}@example.com")["api_key"])
    venue = owner.create_venue(venue_body())
    offer = owner.create_offer(offer_body([venue["id"]]))
    owner.activate_offer(offer["id"])
    handle = f"u_{secrets.token_hex(4)}"
    created = api.create_user(handle, "correct horse")
    user = api.with_token(created["token"])
    checkin = user.check_in(venue["id"], LAT, LON, 10, now())
    assert checkin["status"] == "verified", checkin
    return {
        "owner": owner,
        "owner_key": owner.token,
        "venue": venue,
        "offer": offer,
        "user": user,
        "user_id": created["user"]["id"],
        "user_token": created["token"],
        "checkin": checkin,
        "code": checkin["unlocks"][0]["code"],
    }


# ---- request ids -------------------------------------------------------------------------------


def test_a_request_id_is_generated_and_echoed(client: FlaskClient) -> None:
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/no/such/path").headers["X-Request-ID"]
    assert len(first) == 32 and int(first, 16) >= 0
    assert first != second


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123", True),
        ("01HZX3:edge.lb_7", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ("", False),
        ("line\u2028break", False),
    ],
)
def test_a_sane_incoming_request_id_is_kept(client: FlaskClient, sent: str, kept: bool) -> None:
    echoed = client.get("/healthz", headers={"X-Request-ID": sent}).headers["X-Request-ID"]
    assert (echoed == sent) is kept
    assert len(echoed) <= 128


def test_errors_carry_the_request_id_too(client: FlaskClient) -> None:
    response = client.post("/v1/checkins", json={}, headers={"X-Request-ID": "req-401"})
    assert response.status_code == 401
    assert response.headers["X-Request-ID"] == "req-401"


# ---- logs --------------------------------------------------------------------------------------


def test_one_log_line_per_request_with_route_template_and_caller(
    client: FlaskClient, owner: Client, caplog_info: pytest.LogCaptureFixture
) -> None:
    venue = owner.create_venue(venue_body())
    caplog_info.clear()
    response = client.get(
        f"/v1/venues/{venue['id']}",
        headers={"Authorization": f"Bearer {owner.token}", "X-Request-ID": "trace-1"},
    )
    assert response.status_code == 200
    (line,) = events(caplog_info, "request")
    assert line["name"] == "checkin_offers.request"
    assert line["request_id"] == "trace-1"
    assert line["method"] == "GET"
    assert line["route"] == "/v1/venues/<uuid:venue_id>"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert line["merchant_id"] == owner.me()["id"]
    assert line["key_role"] == "owner"
    assert "user_id" not in line


def test_request_line_of_an_unknown_path_has_no_route(
    client: FlaskClient, caplog_info: pytest.LogCaptureFixture
) -> None:
    client.get("/7K3Q-XM9T-2RK")
    (line,) = events(caplog_info, "request")
    assert line["route"] is None
    assert line["status"] == 404
    assert "7K3Q" not in json.dumps(line, default=str)


def test_checkin_verdicts_and_redemption_outcomes_are_logged(
    api: Client, caplog_info: pytest.LogCaptureFixture
) -> None:
    world = a_world(api)
    stranger = api.with_token(api.create_user(f"s_{secrets.token_hex(4)}", "pass-word-1")["token"])
    stranger.check_in(world["venue"]["id"], LAT + 0.01, LON, 10, now(), mock_location=True)
    owner = world["owner"]
    owner.redeem(world["code"], world["venue"]["id"])
    with pytest.raises(ApiError):
        owner.redeem(world["code"], world["venue"]["id"])

    verified, rejected = events(caplog_info, "checkin")
    assert verified["name"] == "checkin_offers.checkin"
    assert verified["verdict"] == "verified"
    assert verified["reasons"] == []
    assert verified["user_id"] == world["user_id"]
    assert verified["venue_id"] == world["venue"]["id"]
    assert verified["checkin_id"] == world["checkin"]["id"]
    assert verified["unlocked_offer_ids"] == [world["offer"]["id"]]
    assert rejected["verdict"] == "rejected"
    assert rejected["reasons"] == ["outside_geofence", "mock_location"]
    assert rejected["unlocked_offer_ids"] == []

    redeemed, refused = events(caplog_info, "redemption")
    assert redeemed["outcome"] == "redeemed"
    assert redeemed["offer_id"] == world["offer"]["id"]
    assert redeemed["venue_id"] == world["venue"]["id"]
    assert refused["outcome"] == "already_redeemed"
    # Each outcome line shares its request's id.
    request_ids = {r["request_id"] for r in events(caplog_info, "request")}
    assert {verified["request_id"], redeemed["request_id"]} <= request_ids


def test_an_idempotent_replay_logs_no_second_verdict(
    api: Client, owner: Client, mobile: Client, caplog_info: pytest.LogCaptureFixture
) -> None:
    venue = owner.create_venue(venue_body())
    taken = now()
    first = mobile.check_in(venue["id"], LAT, LON, 10, taken, idempotency_key="tap-1")
    again = mobile.check_in(venue["id"], LAT, LON, 10, taken, idempotency_key="tap-1")
    assert again["id"] == first["id"]
    assert len(events(caplog_info, "checkin")) == 1
    assert [r.get("idempotent_replay", False) for r in events(caplog_info, "request")][-2:] == [
        False,
        True,
    ]


def test_logs_never_hold_secrets_codes_or_passwords(
    api: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world = a_world(api)
    staff = world["owner"].create_key("staff", "till")
    till = api.with_token(staff["api_key"])
    presence = world["owner"].presence_code(world["venue"]["id"])["code"]
    till.redeem(world["code"])
    with pytest.raises(ApiError):
        api.login("nobody-here", "wrong password 123")
    formatter = JsonFormatter(
        **{k: v for k, v in log_config("DEBUG")["formatters"]["json"].items() if k != "()"}
    )
    rendered = "\n".join(formatter.format(record) for record in caplog.records)
    assert '"event": "request"' in rendered and '"event": "redemption"' in rendered
    code = world["code"]
    secrets_sent = [
        world["owner_key"],
        world["user_token"],
        staff["api_key"],
        "correct horse",
        "wrong password 123",
        code,
        code.replace("-", ""),
        presence,
    ]
    for secret in secrets_sent:
        assert secret not in rendered, secret
    assert "Authorization" not in rendered and "Bearer" not in rendered


def test_log_lines_are_json_with_time_level_logger_and_fields() -> None:
    formatter = JsonFormatter(
        **{k: v for k, v in log_config("INFO")["formatters"]["json"].items() if k != "()"}
    )
    record = logging.LogRecord(
        "checkin_offers.request", logging.INFO, __file__, 1, "request", (), None
    )
    record.route = "/healthz"
    line = json.loads(formatter.format(record))
    assert line["event"] == "request"
    assert line["level"] == "INFO"
    assert line["logger"] == "checkin_offers.request"
    assert line["route"] == "/healthz"
    assert datetime.fromisoformat(line["time"]).tzinfo is not None
    assert isinstance(line["pid"], int)


# ---- metrics -----------------------------------------------------------------------------------


def test_metrics_are_off_unless_configured(client: FlaskClient, app: Flask) -> None:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404
    assert response.mimetype == PROBLEM
    assert response.get_json()["code"] == "not_found"
    assert app.extensions["metrics"] is None


def test_metrics_need_the_token(metrics_app: Flask) -> None:
    client = metrics_app.test_client()
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": TOKEN},
    ):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.mimetype == PROBLEM
        assert response.get_json()["code"] == "unauthorized"
    assert "checkin_offers_http_requests_total" in scrape(client)


def test_metrics_are_not_in_the_openapi_document(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "/metrics" not in paths
    assert {"/healthz", "/readyz"} <= set(paths)
    assert {"200", "503"} <= set(paths["/readyz"]["get"]["responses"])


def test_request_counts_and_latency_by_route_and_status(metrics_app: Flask) -> None:
    client = metrics_app.test_client()
    for _ in range(3):
        client.get("/healthz")
    client.get("/no/such/path")
    client.get("/v1/venues/00000000-0000-0000-0000-000000000000")  # 401 without a key
    client.open("/healthz", method="BREW")  # any method name: one label value for them all
    exposition = scrape(client)

    def requests(route: str, status: str) -> float:
        return metric_value(
            exposition,
            "checkin_offers_http_requests_total",
            method="GET",
            route=route,
            status=status,
        )

    assert requests("/healthz", "200") == 3
    assert requests("unmatched", "404") == 1
    assert requests("/v1/venues/<uuid:venue_id>", "401") == 1
    assert (
        metric_value(
            exposition,
            "checkin_offers_http_requests_total",
            method="other",
            route="unmatched",  # routing failed: no rule matched this method
            status="405",
        )
        == 1
    )
    count = metric_value(
        exposition,
        "checkin_offers_http_request_duration_seconds_count",
        method="GET",
        route="/healthz",
        status="200",
    )
    assert count == 3
    assert (
        metric_value(
            exposition,
            "checkin_offers_http_request_duration_seconds_bucket",
            method="GET",
            route="/healthz",
            status="200",
            le="+Inf",
        )
        == 3
    )


def test_checkins_unlocks_and_redemptions_are_counted(metrics_app: Flask) -> None:
    client = metrics_app.test_client()
    api = Client(FlaskTransport(client))
    world = a_world(api)
    stranger = api.with_token(api.create_user(f"s_{secrets.token_hex(4)}", "pass-word-1")["token"])
    stranger.check_in(world["venue"]["id"], LAT + 0.01, LON, 10, now(), mock_location=True)
    # a retry replays the first answer: counted once
    taken = now()
    stranger.check_in(world["venue"]["id"], LAT, LON, 10, taken, idempotency_key="k1")
    stranger.check_in(world["venue"]["id"], LAT, LON, 10, taken, idempotency_key="k1")
    owner = world["owner"]
    owner.redeem(world["code"], world["venue"]["id"])
    for code in (world["code"], "AAAA"):
        with pytest.raises(ApiError):
            owner.redeem(code)
    exposition = scrape(client)

    def value(name: str, **labels: str) -> float:
        return metric_value(exposition, f"checkin_offers_{name}", **labels)

    assert value("checkins_total", verdict="verified") == 2
    assert value("checkins_total", verdict="rejected") == 1
    assert value("checkin_rejection_reasons_total", reason="outside_geofence") == 1
    assert value("checkin_rejection_reasons_total", reason="mock_location") == 1
    assert value("checkin_rejection_reasons_total", reason="stale_fix") == 0
    assert value("unlocks_total", kind="every_checkin") == 2
    assert value("redemptions_total", kind="every_checkin") == 1
    assert value("redemption_attempts_total", outcome="redeemed") == 1
    assert value("redemption_attempts_total", outcome="already_redeemed") == 1
    assert value("redemption_attempts_total", outcome="not_found") == 1


def test_pool_use_is_a_gauge(metrics_app: Flask) -> None:
    client = metrics_app.test_client()
    # Both pools, transactions and autocommit, each DB_POOL_SIZE + DB_MAX_OVERFLOW at most.
    assert metric_value(scrape(client), "checkin_offers_db_pool_connections_max") == 30
    engine = metrics_app.extensions["engine"]
    autocommit = metrics_app.extensions["autocommit_engine"]
    with engine.connect(), engine.connect(), autocommit.connect():
        exposition = scrape(client)
        assert metric_value(exposition, "checkin_offers_db_pool_connections_in_use") == 3
        assert metric_value(exposition, "checkin_offers_db_pool_connections_open") == 3
    exposition = scrape(client)
    assert metric_value(exposition, "checkin_offers_db_pool_connections_in_use") == 0
    assert metric_value(exposition, "checkin_offers_db_pool_connections_open") == 3
    db.dispose(metrics_app)
    assert metric_value(scrape(client), "checkin_offers_db_pool_connections_open") == 0


def test_each_app_counts_from_zero(make_app: Callable[..., Flask]) -> None:
    first = make_app(METRICS_TOKEN=TOKEN).test_client()
    first.get("/healthz")
    second = make_app(METRICS_TOKEN=TOKEN).test_client()
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    assert metric_value(scrape(first), "checkin_offers_http_requests_total", **labels) == 1
    assert metric_value(scrape(second), "checkin_offers_http_requests_total", **labels) == 0


# ---- verification thresholds from the configuration ---------------------------------------------


def test_verification_thresholds_come_from_the_configuration(
    make_app: Callable[..., Flask],
) -> None:
    five_minutes_ago = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()

    def check_in(app: Flask) -> dict[str, Any]:
        api = Client(FlaskTransport(app.test_client()))
        tag = secrets.token_hex(3)
        owner = api.with_token(api.create_merchant("T", f"t{tag}@example.com")["api_key"])
        venue = owner.create_venue(venue_body())
        user = api.with_token(api.create_user(f"t_{tag}", "pass-word-1")["token"])
        return dict(user.check_in(venue["id"], LAT, LON, 10, five_minutes_ago))

    strict = check_in(make_app())
    assert [r["code"] for r in strict["reasons"]] == ["stale_fix"]
    assert "older than 120 s" in strict["reasons"][0]["detail"]
    lenient = check_in(make_app(CHECKIN_STALE_AFTER_SECONDS=600))
    assert lenient["status"] == "verified", lenient["reasons"]


# ---- health and readiness ------------------------------------------------------------------------


def test_healthz_keeps_its_contract(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok"}


def _heads(database_url: str) -> tuple[set[str], list[str]]:
    script = ScriptDirectory.from_config(alembic_config(database_url))
    heads = set(script.get_heads())
    older = [rev.revision for rev in script.walk_revisions() if rev.revision not in heads]
    return heads, older


def test_readyz_at_the_migration_head(client: FlaskClient, database_url: str) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    (head,) = _heads(database_url)[0]
    assert response.get_json() == {
        "status": "ready",
        "database": "ok",
        "schema": "current",
        "revision": head,
        # no delivery worker runs in this test: reported, and the API is ready all the same
        "webhooks": {
            "worker": "not_running",
            "workers": 0,
            "pending": 0,
            "oldest_due_seconds": 0.0,
        },
    }


def _set_schema_revision(app: Flask, revision: str | None) -> None:
    with app.app_context():
        session = db.session()
        session.execute(text("DELETE FROM alembic_version"))
        if revision is not None:
            session.execute(text("INSERT INTO alembic_version VALUES (:r)"), {"r": revision})
        session.commit()


def test_readyz_while_migrations_are_pending(
    app: Flask, client: FlaskClient, database_url: str
) -> None:
    _, older = _heads(database_url)
    for revision in [None, *older[:1]]:
        _set_schema_revision(app, revision)
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.mimetype == PROBLEM
        body = response.get_json()
        assert body["code"] == "not_ready"
        assert "flask --app api.wsgi migrate" in body["detail"]


def test_readyz_when_a_newer_release_has_migrated(app: Flask, client: FlaskClient) -> None:
    """Additive-first migrations: the older version keeps serving a newer schema."""
    _set_schema_revision(app, "f00dfeedbeef")
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["schema"] == "ahead"
    assert response.get_json()["revision"] == "f00dfeedbeef"


def test_readyz_and_healthz_when_the_database_is_down() -> None:
    app = create_app({"DATABASE_URL": "postgresql://nobody:x@127.0.0.1:1/none", "TESTING": True})
    client = app.test_client()
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert response.status_code == 503
        assert response.mimetype == PROBLEM
        assert response.get_json()["code"] == "service_unavailable"
    db.dispose(app)


def test_the_webhook_queue_is_a_gauge_read_from_the_outbox(metrics_app: Flask) -> None:
    client = metrics_app.test_client()
    api = Client(FlaskTransport(client))
    owner = api.with_token(api.create_merchant("Hooked", "hooked@example.com")["api_key"])
    owner.create_webhook("https://93.184.216.34/hook", ["checkin.verified"])  # nothing is sent
    venue = owner.create_venue(venue_body())
    user = api.with_token(api.create_user("hooked_user", "correct horse")["token"])
    lon, lat = venue["location"]["coordinates"]
    user.check_in(venue["id"], lat, lon, 10, now())
    text_ = scrape(client)
    assert metric_value(text_, "checkin_offers_webhook_queue_pending") == 1
    assert metric_value(text_, "checkin_offers_webhook_queue_due") == 1
    assert metric_value(text_, "checkin_offers_webhook_workers_running") == 0


def test_the_worker_counts_delivery_outcomes() -> None:
    from api.webhook_worker import WorkerMetrics
    from core.webhooks import Outcome

    recorder = WorkerMetrics()
    recorder.observe(None, Outcome(200, None, 12), "delivered")  # type: ignore[arg-type]
    recorder.observe(None, Outcome(503, "answered 503", 40), "pending")  # type: ignore[arg-type]
    recorder.observe(None, Outcome(None, "refused: private", 1), "failed")  # type: ignore[arg-type]
    exposed = generate_latest(recorder.registry).decode()
    name = "checkin_offers_webhook_deliveries_total"
    assert f'{name}{{outcome="delivered",status="delivered"}} 1.0' in exposed
    assert f'{name}{{outcome="http_5xx",status="pending"}} 1.0' in exposed
    assert f'{name}{{outcome="refused",status="failed"}} 1.0' in exposed
