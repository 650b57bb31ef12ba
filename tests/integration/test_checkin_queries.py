"""The latency budget of a check-in: a fixed number of round trips whatever the number of offers,
and every query on an index."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from api import db
from mobile_stub.client import ApiError, Client
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
    # in Redis when REDIS_URL is set), auth, lock, venue+history, insert, candidates, claim,
    # unlocks, the webhook outbox, savepoint bookkeeping
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
