"""Rate limits, key rotation and revocation, constant-time key checks, security headers, CORS.

In-process, on the test database: the rate limiter's PostgreSQL counters go through the test's
connection, so they are rolled back with it. `tests/e2e/test_ratelimit.py` proves the limits
hold across two gunicorn workers (PostgreSQL and Redis).
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from api import create_app, db, docs
from api.config import ConfigError, load
from api.ratelimit import EXEMPT_PATHS, PostgresStorage
from core.models import RateLimitCounter
from mobile_stub.client import ApiError, Client, FlaskTransport
from tests.factories import bind_to_connection
from tests.waiting import wait_for

URL = "postgresql://u:p@localhost:5432/db"
# What production needs at least.
BASE = {"DATABASE_URL": URL, "NFC_MASTER_KEY": "ab" * 32, "SECRET_KEY": "k" * 32}
NEARBY = "/v1/venues/nearby?lat=60.17&lon=24.94"

AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(database_url: str, engine: Engine) -> Iterator[AppFactory]:
    """Apps with settings of the test's choosing, on one connection rolled back at the end."""
    connection = engine.connect()
    outer = connection.begin()

    def make(**overrides: Any) -> Flask:
        # Limits on whatever the environment says (a benchmark may have turned them off).
        settings = {"DATABASE_URL": database_url, "TESTING": True, "RATE_LIMIT_ENABLED": True}
        app = create_app({**settings, **overrides})
        bind_to_connection(app, connection)
        return app

    yield make
    outer.rollback()
    connection.close()


def _client(app: Flask, token: str | None = None) -> Client:
    return Client(FlaskTransport(app.test_client()), token)


# ---- rate limits -----------------------------------------------------------------------------


def test_the_per_ip_limit_answers_429_problem_json_with_retry_after(make_app: AppFactory) -> None:
    client = make_app(RATE_LIMIT_PER_IP="3/minute").test_client()
    remaining = []
    for _ in range(3):
        ok = client.get(NEARBY)
        assert ok.status_code == 200
        assert ok.headers["RateLimit-Limit"] == "3"
        assert 0 < int(ok.headers["RateLimit-Reset"]) <= 60
        assert ok.headers["RateLimit-Policy"].startswith("3;w=60")
        assert "Retry-After" not in ok.headers
        remaining.append(int(ok.headers["RateLimit-Remaining"]))
    assert remaining == [2, 1, 0]

    refused = client.get(NEARBY)
    assert refused.status_code == 429
    assert refused.headers["Content-Type"] == "application/problem+json"
    problem = refused.get_json()
    assert (problem["code"], problem["status"]) == ("rate_limited", 429)
    assert "client address" in problem["detail"] and "3/minute" in problem["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["X-Request-ID"]
    # Another address has a budget of its own; the per-IP limit covers credentials too.
    other = client.get(NEARBY, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 200
    assert (
        client.post("/v1/merchants", json={"name": "x", "email": "x@example.com"}).status_code
        == 429
    )


def test_probes_docs_and_preflights_are_never_limited(make_app: AppFactory) -> None:
    client = make_app(RATE_LIMIT_PER_IP="1/minute").test_client()
    assert client.get(NEARBY).status_code == 200
    assert client.get(NEARBY).status_code == 429
    for _ in range(3):
        for path in sorted(EXEMPT_PATHS - {"/metrics"}):
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert "RateLimit-Limit" not in answer.headers
        static = client.get("/docs/static/swagger-ui.css")
        assert static.status_code == 200
        static.close()
        assert client.options("/v1/venues").status_code == 200


def test_unknown_paths_count_too(make_app: AppFactory) -> None:
    client = make_app(RATE_LIMIT_PER_IP="2/minute").test_client()
    assert [client.get(f"/nothing/{i}").status_code for i in range(3)] == [404, 404, 429]


def test_each_api_key_has_its_own_budget(make_app: AppFactory) -> None:
    app = make_app(RATE_LIMIT_PER_KEY="3/minute")
    owner = _client(app).with_token(_client(app).create_merchant("C", "c@example.com")["api_key"])
    staff = owner.with_token(owner.create_key("staff")["api_key"])  # owner: 1 request so far
    owner.me()
    response = owner.call("GET", "/v1/merchants/me")
    assert response.headers["RateLimit-Limit"] == "3"
    assert response.headers["RateLimit-Remaining"] == "0"
    with pytest.raises(ApiError) as err:
        owner.me()
    assert (err.value.status, err.value.code) == (429, "rate_limited")
    assert "this API key" in err.value.response.body["detail"]
    assert staff.me()  # another key of the same merchant


def test_a_forged_secret_counts_against_the_key_it_names(make_app: AppFactory) -> None:
    """The budget is found by the key's public lookup before the secret is checked."""
    app = make_app(RATE_LIMIT_PER_KEY="2/minute")
    token = _client(app).create_merchant("C", "c@example.com")["api_key"]
    forged = _client(app, token[: token.rindex("_") + 1] + "not-the-secret")
    for _ in range(2):
        with pytest.raises(ApiError) as err:
            forged.me()
        assert err.value.status == 401
    with pytest.raises(ApiError) as err:
        _client(app, token).me()
    assert err.value.status == 429


def test_each_user_has_one_budget_whatever_the_tokens(make_app: AppFactory) -> None:
    app = make_app(RATE_LIMIT_PER_USER="2/minute")
    api = _client(app)
    one = api.with_token(api.create_user("limited_one", "pass-word-1")["token"])
    two = api.with_token(api.create_user("limited_two", "pass-word-1")["token"])
    one.wallet()
    one.wallet()
    with pytest.raises(ApiError) as err:
        one.wallet()
    assert (err.value.status, err.value.code) == (429, "rate_limited")
    assert "this user (all the user's tokens)" in err.value.response.body["detail"]
    assert two.wallet() == []
    # A fresh token of the same user shares the user's budget (issue 23: it started full).
    fresh = api.with_token(api.login("limited_one", "pass-word-1"))
    with pytest.raises(ApiError) as err:
        fresh.wallet()
    assert (err.value.status, err.value.code) == (429, "rate_limited")


def test_a_merchants_keys_share_one_budget(make_app: AppFactory) -> None:
    app = make_app(RATE_LIMIT_PER_MERCHANT="4/minute")
    owner = _client(app).with_token(_client(app).create_merchant("C", "c@example.com")["api_key"])
    other = _client(app).with_token(_client(app).create_merchant("D", "d@example.com")["api_key"])
    extra = owner.with_token(owner.create_key("staff")["api_key"])  # the merchant's 1st
    fresh = owner.with_token(owner.create_key("owner")["api_key"])  # 2nd
    owner.me()
    extra.me()  # 4th of the merchant's, over two keys; the new key has made none
    for key in (owner, extra, fresh):
        with pytest.raises(ApiError) as err:
            key.me()
        assert (err.value.status, err.value.code) == (429, "rate_limited")
        assert "this merchant (all its API keys)" in err.value.response.body["detail"]
    assert other.me()  # another merchant's budget is its own


def test_a_window_ends_and_the_budget_comes_back(make_app: AppFactory) -> None:
    client = make_app(RATE_LIMIT_PER_IP="2/second").test_client()
    assert [client.get(NEARBY).status_code for _ in range(3)] == [200, 200, 429]
    wait_for(lambda: client.get(NEARBY).status_code == 200, "the next window", timeout=5)


def test_limits_can_be_turned_off(make_app: AppFactory) -> None:
    client = make_app(RATE_LIMIT_ENABLED=False, RATE_LIMIT_PER_IP="1/minute").test_client()
    answers = [client.get(NEARBY) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all("RateLimit-Limit" not in a.headers for a in answers)


def test_a_storage_outage_falls_back_to_counting_in_memory(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The service keeps answering (each worker then counts alone) instead of failing."""
    client = make_app(RATE_LIMIT_PER_IP="2/minute").test_client()

    def down(*_args: Any, **_kwargs: Any) -> int:
        raise OperationalError("INSERT ...", {}, Exception("connection refused"))

    monkeypatch.setattr(PostgresStorage, "incr", down)
    monkeypatch.setattr(PostgresStorage, "check", lambda _self: False)
    assert [client.get(NEARBY).status_code for _ in range(3)] == [200, 200, 429]
    assert "falling back to in-memory storage" in caplog.text


def test_postgres_counters_are_exact_under_concurrency(database_url: str) -> None:
    """Hits from many threads, each on its own connection and committed: no hit is lost."""
    app = create_app({"DATABASE_URL": database_url})
    storage = PostgresStorage()
    key = f"test/{uuid.uuid4()}"
    seen: list[int] = []
    lock = threading.Lock()

    def hit() -> None:
        for _ in range(10):
            with app.app_context():
                count = storage.incr(key, 60)
            with lock:
                seen.append(count)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert sorted(seen) == list(range(1, 81))  # every hit saw its own count
        with app.app_context():
            assert storage.get(key) == 80
            assert 0 < storage.get_expiry(key) - time.time() <= 60
    finally:
        with app.app_context():
            storage.clear(key)
            assert db.session().get(RateLimitCounter, key) is None
        app.extensions["ratelimit_engine"].dispose()
        db.dispose(app)


def test_every_operation_but_the_probes_documents_429(client: Any) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            listed = "429" in operation["responses"]
            assert listed == (path not in EXEMPT_PATHS), (method, path)


def test_limit_settings_are_checked_at_start() -> None:
    for name in ("RATE_LIMIT_PER_KEY", "RATE_LIMIT_PER_USER", "RATE_LIMIT_PER_IP"):
        for bad in ("lots", "0/minute", "10/fortnight", "10"):
            with pytest.raises(ConfigError, match=f"{name} must be a rate limit"):
                load(environ={**BASE, name: bad})
    assert load(environ={**BASE, "RATE_LIMIT_PER_IP": "20/second;600 per 10 minutes"})
    with pytest.raises(ConfigError, match="RATE_LIMIT_ENABLED must be true or false"):
        load(environ={**BASE, "RATE_LIMIT_ENABLED": "maybe"})
    assert load(environ={**BASE, "RATE_LIMIT_ENABLED": "off"})["RATE_LIMIT_ENABLED"] is False
    with pytest.raises(ConfigError, match="REDIS_URL must be a Redis URL"):
        load(environ={**BASE, "REDIS_URL": "memcached://x"})
    assert load(environ={**BASE, "REDIS_URL": "redis://:pw@h:6379/0"})["REDIS_URL"]


# ---- keys: revocation and rotation -----------------------------------------------------------


def test_rotation_gives_the_key_a_new_secret_and_the_old_one_fails_at_once(owner: Client) -> None:
    created = owner.create_key("staff", "till 1")
    old = owner.with_token(created["api_key"])
    assert old.me()
    rotated = owner.rotate_key(created["id"])
    assert (rotated["id"], rotated["role"], rotated["label"]) == (created["id"], "staff", "till 1")
    assert rotated["api_key"] != created["api_key"] and rotated["revoked_at"] is None
    with pytest.raises(ApiError) as err:
        old.me()
    assert err.value.status == 401
    assert owner.with_token(rotated["api_key"]).me()
    assert [k["id"] for k in owner.list_keys() if k["role"] == "staff"] == [created["id"]]


def test_an_owner_key_can_rotate_itself(owner: Client) -> None:
    me = next(k for k in owner.list_keys() if k["role"] == "owner")
    rotated = owner.rotate_key(me["id"])
    with pytest.raises(ApiError) as err:
        owner.me()
    assert err.value.status == 401
    assert owner.with_token(rotated["api_key"]).me()


def test_revoked_keys_stay_revoked(owner: Client) -> None:
    created = owner.create_key("analyst")
    first = owner.revoke_key(created["id"])["revoked_at"]
    assert first is not None
    assert owner.revoke_key(created["id"])["revoked_at"] == first  # again: nothing changes
    with pytest.raises(ApiError) as err:
        owner.rotate_key(created["id"])
    assert (err.value.status, err.value.code) == (409, "key_revoked")
    with pytest.raises(ApiError) as err:
        owner.with_token(created["api_key"]).me()
    assert err.value.status == 401


def test_only_an_owner_rotates_and_only_its_own_merchants_keys(
    owner: Client, other_owner: Client
) -> None:
    staff = owner.with_token(owner.create_key("staff")["api_key"])
    theirs = other_owner.create_key("staff")
    with pytest.raises(ApiError) as err:
        staff.rotate_key(theirs["id"])
    assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        owner.rotate_key(theirs["id"])
    assert err.value.status == 404
    with pytest.raises(ApiError) as err:
        owner.rotate_key(str(uuid.uuid4()))
    assert err.value.status == 404


def test_an_expired_user_token_fails_at_once(app: Flask, api: Client) -> None:
    user = api.with_token(api.create_user("soon_gone", "pass-word-1")["token"])
    assert user.wallet() == []
    with app.app_context():
        db.session().execute(text("UPDATE user_tokens SET expires_at = now() - interval '1 s'"))
        db.session().commit()
    with pytest.raises(ApiError) as err:
        user.wallet()
    assert err.value.status == 401


# ---- security headers ------------------------------------------------------------------------


def test_api_answers_carry_the_security_headers(client: Any, owner: Client) -> None:
    answers = [
        client.get(NEARBY),  # JSON
        client.get("/v1/venues"),  # problem+json 401
        client.get("/nowhere"),  # problem+json 404
        client.get("/openapi.json"),
    ]
    for answer in answers:
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert "Strict-Transport-Security" not in answer.headers
        assert "Access-Control-Allow-Origin" not in answer.headers


def test_authenticated_answers_are_not_stored_by_caches(client: Any, owner: Client) -> None:
    mine = client.get("/v1/merchants/me", headers={"Authorization": f"Bearer {owner.token}"})
    assert mine.headers["Cache-Control"] == "no-store"
    refused = client.get("/v1/merchants/me", headers={"Authorization": "Bearer nonsense"})
    assert refused.headers["Cache-Control"] == "no-store"
    assert "Cache-Control" not in client.get(NEARBY).headers


def test_the_docs_page_may_run_its_own_inline_script_and_nothing_else(client: Any) -> None:
    page = client.get("/docs")
    policy = page.headers["Content-Security-Policy"]
    (script,) = re.findall(r"<script>(.*?)</script>", page.get_data(as_text=True), re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}'" in policy
    assert (
        "unsafe-eval" not in policy
        and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    )
    assert "frame-ancestors 'none'" in policy
    assert docs.PAGE.count("<script>") == 1


def test_dashboard_pages_keep_their_own_policy(client: Any) -> None:
    page = client.get("/dashboard/sign-in")
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_hsts_only_when_configured(make_app: AppFactory) -> None:
    answer = make_app(HSTS_SECONDS=31536000).test_client().get(NEARBY)
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_the_client_address_comes_from_trusted_proxies_only(make_app: AppFactory) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    direct = make_app(RATE_LIMIT_PER_IP="1/minute").test_client()
    assert direct.get(NEARBY, headers=forwarded).status_code == 200
    spoofed = {**forwarded, "X-Forwarded-For": "203.0.113.10"}
    assert direct.get(NEARBY, headers=spoofed).status_code == 429  # the header is ignored

    proxied = make_app(RATE_LIMIT_PER_IP="1/minute", TRUSTED_PROXIES=1).test_client()
    assert proxied.get(NEARBY, headers={"X-Forwarded-For": "203.0.113.11"}).status_code == 200
    assert proxied.get(NEARBY, headers={"X-Forwarded-For": "203.0.113.11"}).status_code == 429
    assert proxied.get(NEARBY, headers={"X-Forwarded-For": "203.0.113.12"}).status_code == 200


# ---- CORS ------------------------------------------------------------------------------------

PREFLIGHT = {
    "Origin": "https://app.example",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def test_cors_is_off_unless_configured(client: Any) -> None:
    for answer in (
        client.get(NEARBY, headers={"Origin": "https://app.example"}),
        client.options("/v1/venues", headers=PREFLIGHT),
    ):
        assert not [h for h, _ in answer.headers if h.startswith("Access-Control-")]


def test_cors_allows_the_configured_origins_only(make_app: AppFactory) -> None:
    client = make_app(CORS_ORIGINS=("https://app.example", "http://localhost:3000")).test_client()
    allowed = client.get(NEARBY, headers={"Origin": "https://app.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Origin" in allowed.headers["Vary"]
    assert "RateLimit-Remaining" in allowed.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Credentials" not in allowed.headers

    preflight = client.options("/v1/venues", headers=PREFLIGHT)
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert int(preflight.headers["Access-Control-Max-Age"]) > 0

    for origin in ("https://evil.example", "https://app.example.evil.example", "null"):
        refused = client.get(NEARBY, headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in refused.headers, origin
        assert "Origin" in refused.headers["Vary"]
    dashboard = client.get("/dashboard/sign-in", headers={"Origin": "https://app.example"})
    assert "Access-Control-Allow-Origin" not in dashboard.headers


def test_cors_for_any_origin(make_app: AppFactory) -> None:
    client = make_app(CORS_ORIGINS=("*",)).test_client()
    answer = client.get(NEARBY, headers={"Origin": "https://anywhere.example"})
    assert answer.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_origins_are_checked_at_start() -> None:
    config = load(environ={**BASE, "CORS_ORIGINS": " https://a.example, http://b:8080 "})
    assert config["CORS_ORIGINS"] == ("https://a.example", "http://b:8080")
    for bad in ("https://a.example/", "a.example", "https://a.example/path", "ftp://a.example"):
        with pytest.raises(ConfigError, match="CORS_ORIGINS must be"):
            load(environ={**BASE, "CORS_ORIGINS": bad})
