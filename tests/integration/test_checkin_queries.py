"""The latency budget of a check-in: a fixed number of round trips whatever the number of offers,
and every query on an index."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, event, text

from api import db
from mobile_stub.client import ApiError, Client
from offers import checkins
from tests.factories import offer_body, venue_body


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def _venue_with_offers(owner: Client, n: int) -> dict[str, Any]:
    venue: dict[str, Any] = owner.create_venue(venue_body(name=f"v{n}", checkin_cooldown_minutes=0))
    kinds = [
        {"kind": "every_checkin"},
        {"kind": "first_visit"},
        {"kind": "nth_visit", "visits": 2, "within_days": 7},
        {"kind": "top_visitor"},
        {"kind": "group", "min_people": 2, "within_minutes": 30},
    ]
    for i in range(n):
        offer = owner.create_offer(offer_body([venue["id"]], rule=kinds[i % len(kinds)]))
        owner.activate_offer(offer["id"])
    return venue


def _check_in(user: Client, venue: dict[str, Any]) -> dict[str, Any]:
    lon, lat = venue["location"]["coordinates"]
    return user.check_in(venue["id"], lat, lon, 10, datetime.now(UTC).isoformat())


def test_round_trips_do_not_grow_with_the_number_of_offers(
    api: Client, owner: Client, statements: list[tuple[str, Any]]
) -> None:
    counts = {}
    for n in (1, 5, 25):
        venue = _venue_with_offers(owner, n)
        user = api.with_token(api.create_user(f"u{secrets.token_hex(4)}", "pass-word-1")["token"])
        statements.clear()
        result = _check_in(user, venue)
        assert result["unlocks"]
        counts[n] = len(statements)
    assert counts[1] == counts[5] == counts[25], counts
    # the token's owner (once per worker and token) and its rate-limit buckets (token and user;
    # in Redis when REDIS_URL is set), auth, the lock with venue+history (one call), insert,
    # candidates, claim, unlocks, the webhook outbox, savepoint bookkeeping
    assert counts[1] <= 13, counts


def test_every_checkin_query_uses_an_index(
    app: Any, api: Client, owner: Client, statements: list[tuple[str, Any]]
) -> None:
    venue = _venue_with_offers(owner, 5)
    user = api.with_token(api.create_user(f"u{secrets.token_hex(4)}", "pass-word-1")["token"])
    _check_in(user, venue)  # history for the second one
    statements.clear()
    _check_in(user, venue)
    captured = [
        (sql, params)
        for sql, params in statements
        if sql.lstrip().upper().startswith(("SELECT", "UPDATE", "INSERT", "WITH"))
    ]
    assert len(captured) >= 5
    with app.app_context():
        session = db.session()
        session.execute(text("SET LOCAL enable_seqscan = off"))
        cursor = session.connection().connection.cursor()
        for sql, params in captured:
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Seq Scan" not in plan, f"{sql}\n{plan}"
    # The venue+history and candidates statements call migration 0018's PL/pgSQL functions,
    # whose EXPLAIN is a Function Scan: their own statements' plans, as each connection runs
    # them (custom plans for the first calls, then the generic one), come from auto_explain.
    calls = [(sql, params) for sql, params in captured if any(f in sql for f in _FUNCTIONS)]
    assert len(calls) == 2, [sql for sql, _ in captured]
    for mode in ("force_custom_plan", "force_generic_plan"):
        for sql, params in calls:
            plans = _nested_plans(app, sql, params, mode)
            main = "FROM venues v" if "venue_and_history" in sql else "FROM offer_venues ov"
            assert any(main in p and "Index" in p for p in plans), (mode, sql, plans)
            for plan in plans:
                assert "Seq Scan" not in plan, f"{mode}: {sql}\n{plan}"


_FUNCTIONS = ("checkin_venue_and_history", "checkin_candidates")  # migration 0018


def _nested_plans(app: Any, sql: str, params: Any, plan_cache_mode: str) -> list[str]:
    """The plans of the statements a function call runs, from auto_explain (rolled back)."""
    with app.app_context():
        session = db.session()
        raw = session.connection().connection
        cursor = raw.cursor()
        cursor.execute("LOAD 'auto_explain'")
        for setting, value in (
            ("auto_explain.log_min_duration", "0"),
            ("auto_explain.log_nested_statements", "on"),
            ("auto_explain.log_level", "notice"),
            ("enable_seqscan", "off"),
            ("plan_cache_mode", plan_cache_mode),
        ):
            cursor.execute("SELECT set_config(%s, %s, true)", (setting, value))
        # the connection may hold the functions' plans already, made without these settings
        cursor.execute("DISCARD PLANS")
        del raw.notices[:]
        cursor.execute(sql, params)
        cursor.fetchall()
        plans = [n for n in raw.notices if "Query Text" in n]
        session.rollback()
    # the function's own statements, not the call
    body = [p for p in plans if not any(f"FROM {f}(" in p for f in _FUNCTIONS)]
    assert len(body) < len(plans), plans
    return body


def test_a_redemption_takes_the_same_few_statements_whatever_its_outcome(
    api: Client, owner: Client, statements: list[tuple[str, Any]]
) -> None:
    venue = _venue_with_offers(owner, 1)
    user = api.with_token(api.create_user(f"u{secrets.token_hex(4)}", "pass-word-1")["token"])
    code = _check_in(user, venue)["unlocks"][0]["code"]
    written = []
    for _ in range(2):  # redeemed, then refused as already redeemed
        statements.clear()
        try:
            owner.redeem(code, venue["id"])
        except ApiError as refusal:
            assert refusal.code == "already_redeemed"
        sent = [
            " ".join(s.split()[:5])
            for s, _ in statements
            if not s.startswith(("SAVEPOINT", "RELEASE")) and "rate_limit_counters" not in s
        ]
        written.append(sent)
    # the key, one lookup, the redemption with its attempt (or the attempt alone), the audit
    # event of a redemption, its webhook event in the outbox (core/webhooks.py)
    assert len(written[0]) <= 5, written
    assert len(written[1]) <= 3, written


def test_the_venue_read_waits_for_the_users_lock_and_sees_what_its_holder_committed(
    committed_app: Flask, committed_api: Client, committed_owner: Client
) -> None:
    """The user's lock and the venue+history read are one call (migration 0018): the read must
    wait for a check-in in flight of the same user and see it once committed, as the separate
    statements did (a function running its read in the caller's snapshot would not)."""
    venue = committed_owner.create_venue(venue_body(name="locked", checkin_cooldown_minutes=0))
    user_id = committed_api.create_user(f"l{secrets.token_hex(4)}", "pass-word-1")["user"]["id"]
    engine = committed_app.extensions["engine"]
    params = {
        "venue_id": venue["id"],
        "user_id": user_id,
        "device_id": None,
        "observed_at": None,
        "window_days": 7,
        "rejection_hours": 24,
        "staff_device_days": 30,
    }
    observed = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with engine.connect() as holder, engine.connect() as reader:
        holder.begin()
        holder.execute(checkins._USER_LOCK, {"k": f"user:{user_id}"})
        holder.execute(
            text(
                "INSERT INTO checkins (id, user_id, venue_id, location, accuracy_m, observed_at,"
                " mock_location, presence_code_sent, status, reasons, reason_codes, strikes,"
                " proof, created_at)"
                " SELECT gen_random_uuid(), :u, v.id, v.location, 10, :at, false, false,"
                " 'verified', '[]', '{}', '{}', 'gps', now() FROM venues v WHERE v.id = :v"
            ),
            {"u": user_id, "v": venue["id"], "at": observed},
        )
        reader.begin()
        reader.execute(text("SELECT now()"))  # the reader's transaction (and snapshot) first
        with ThreadPoolExecutor(1) as pool:
            read = pool.submit(lambda: reader.execute(checkins._VENUE_AND_HISTORY, params).one())
            time.sleep(0.5)
            assert not read.done(), "the read did not wait for the user's lock"
            holder.commit()
            row = read.result(timeout=10)
        reader.rollback()
    assert row.latest_observed_at == observed
