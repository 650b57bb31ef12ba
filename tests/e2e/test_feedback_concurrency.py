"""Feedback and replies under real parallel HTTP requests against a real gunicorn process:
parallel posts of feedback for one check-in store exactly one (the unique index decides, the
others are 409 `already_given`), and parallel first replies agree on when the feedback was first
answered."""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.feedback_direct import responsiveness_direct
from core.uow import make_engine
from mobile_stub.client import ApiError, Client
from offers import feedback
from tests.e2e.test_concurrency import client, in_parallel
from tests.factories import venue_body
from tests.integration.test_feedback_rollup import close

pytestmark = pytest.mark.e2e


def outcome(result: Any) -> Any:
    return (result.status, result.code) if isinstance(result, ApiError) else 201


def test_parallel_feedback_for_one_checkin_is_stored_once(
    live_server: str, live_api: Client
) -> None:
    owner = live_api.with_token(
        live_api.create_merchant("Feedback Cafe", "fb@example.com")["api_key"]
    )
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    lon, lat = venue["location"]["coordinates"]
    token = live_api.create_user(f"f{secrets.token_hex(6)}", "pass-word-1")["token"]
    for attempt in range(3):  # a few rounds: one lucky interleaving proves nothing
        user = client(live_server, token)
        checkin = user.check_in(venue["id"], lat, lon, 10, datetime.now(UTC).isoformat())
        assert checkin["status"] == "verified"
        phones = [client(live_server, token) for _ in range(2 if attempt == 0 else 8)]
        results = in_parallel(
            [
                lambda p=p, n=n, c=checkin["id"]: p.give_feedback(c, 1 + n % 5, f"take {n}")  # type: ignore[misc]
                for n, p in enumerate(phones)
            ]
        )
        assert Counter(outcome(r) for r in results) == {
            201: 1,
            (409, "already_given"): len(phones) - 1,
        }
        [stored] = [r for r in results if isinstance(r, dict)]
        mine = [f for f in user.my_feedback() if f["checkin_id"] == checkin["id"]]
        assert [(f["id"], f["rating"]) for f in mine] == [(stored["id"], stored["rating"])]

    # parallel replies to one feedback: all stored, one first reply time, the earliest
    feedback_id = stored["id"]
    staff_key = owner.create_key("staff")["api_key"]
    tills = [client(live_server, staff_key) for _ in range(6)]
    replies = in_parallel(
        [
            lambda t=t, n=n: t.reply_to_feedback(feedback_id, f"thanks {n}")
            for n, t in enumerate(tills)
        ]  # type: ignore[misc]
    )
    assert all(isinstance(r, dict) for r in replies)
    [item] = [f for f in owner.list_feedback() if f["id"] == feedback_id]
    assert len(item["replies"]) == 6
    assert item["first_reply_at"] == min(r["created_at"] for r in item["replies"])


def test_parallel_first_replies_keep_the_rollup_exact(
    live_server: str, live_api: Client, live_database_url: str
) -> None:
    """First replies to many feedback of one venue at once all update the same rollup rows (the
    venue's blocks of today): none fails or deadlocks, and the report the rollup gives equals the
    direct computation over the feedback rows afterwards."""
    owner = live_api.with_token(
        live_api.create_merchant("Rollup Cafe", "rollup@example.com")["api_key"]
    )
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    lon, lat = venue["location"]["coordinates"]
    given = []
    for n in range(12):
        token = live_api.create_user(f"r{secrets.token_hex(6)}", "pass-word-1")["token"]
        user = client(live_server, token)
        checkin = user.check_in(venue["id"], lat, lon, 10, datetime.now(UTC).isoformat())
        given.append(user.give_feedback(checkin["id"], 1 + n % 5)["id"])
    staff_key = owner.create_key("staff")["api_key"]
    # two tills answer each of the first ten at once; the last two stay unanswered
    calls = [
        lambda f=f, k=k: client(live_server, staff_key).reply_to_feedback(f, f"thanks {k}")
        for f in given[:10]
        for k in range(2)
    ]
    results = in_parallel(calls)  # type: ignore[arg-type]
    assert all(isinstance(r, dict) for r in results), results
    report = owner.responsiveness()
    assert (report["feedback"], report["answered"], report["pending"]) == (12, 10, 2)

    engine = make_engine(live_database_url)
    try:
        with Session(engine) as session:
            merchant = session.scalar(
                text("SELECT merchant_id FROM venues WHERE id = :v"), {"v": venue["id"]}
            )
            got = feedback.responsiveness(session, merchant)
            want = responsiveness_direct(session, merchant)
    finally:
        engine.dispose()
    close(got, want)
