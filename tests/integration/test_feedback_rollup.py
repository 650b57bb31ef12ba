"""The feedback rollup (migration 0015) gives exactly the report the direct computation gives.

The oracle is the report as it was computed before the rollup, from every feedback row
(`bench/feedback_direct.py`). Hypothesis builds random histories: feedback around UTC midnights
and hours (the rollup's block boundaries), first replies written with the feedback or later (the update
trigger), a first reply moved earlier (what `LEAST` does when a reply that read the clock first
wins the row lock second), erased comments, deleted feedback (the delete trigger, as a cascade
runs it), a closed venue; then compares both reports over random periods and targets.
"""

from __future__ import annotations

import math
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session

from api import db
from bench.feedback_direct import offer_ratings_direct, responsiveness_direct
from mobile_stub.client import Client
from offers import analytics, feedback
from tests.factories import offer_body, venue_body

A = {"type": "Point", "coordinates": [24.9384, 60.1699]}
B = {"type": "Point", "coordinates": [24.9500, 60.1800]}

# Times are offsets in seconds from a UTC midnight three days ago; these land exactly on hour
# and day boundaries (the rollup's blocks), a microsecond either side.
DAY_S = 86_400
EDGES = [
    k * DAY_S + h * 3600 + e
    for k in (-1, 0, 1, 2)
    for h in (0, 1, 7)
    for e in (-0.000001, 0, 0.000001)
]
DELAYS = [0, 0.4, 1, 59.5, DAY_S - 0.000001, DAY_S, DAY_S + 0.000001, 3 * DAY_S, 40 * DAY_S]

offsets = st.one_of(st.sampled_from(EDGES), st.floats(-2 * DAY_S, 3 * DAY_S - 1, allow_nan=False))
delays = st.one_of(st.none(), st.sampled_from(DELAYS), st.floats(0, 10 * DAY_S, allow_nan=False))
items = st.fixed_dictionaries(
    {
        "venue": st.integers(0, 1),
        "at": offsets,
        "rating": st.integers(1, 5),
        "delay": delays,
        # "now": replied with the feedback; "later": a reply's UPDATE afterwards; "earlier": a
        # later reply first, then LEAST moves it to this one
        "how": st.sampled_from(["now", "later", "earlier"]),
        "unlock": st.integers(0, 2),  # offers unlocked on the visit
        "delete": st.booleans(),
    }
)
periods = st.tuples(st.one_of(st.none(), offsets), st.one_of(st.none(), st.floats(1, 5 * DAY_S)))
targets = st.sampled_from([24.0, 0.0001, 1 / 3600, 23.999999, 24.000001, 720.0, 1.5])


def close(got: Any, want: Any, path: str = "") -> None:
    """Equal, floats to the rounding the report does (0.1 s, 0.01 star)."""
    if isinstance(want, dict):
        assert set(got) == set(want), path
        for key in want:
            close(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for n, (g, w) in enumerate(zip(got, want, strict=True)):
            close(g, w, f"{path}[{n}]")
    elif isinstance(want, float) and isinstance(got, float):
        assert math.isclose(got, want, abs_tol=0.1001), (path, got, want)
    else:
        assert got == want, (path, got, want)


@pytest.fixture
def shop(app: Flask, owner: Client) -> dict[str, Any]:
    venue_a = owner.create_venue(venue_body(name="A", location=A))
    venue_b = owner.create_venue(venue_body(name="B", location=B))
    ids = [venue_a["id"], venue_b["id"]]
    offers = [
        owner.activate_offer(owner.create_offer(offer_body(ids, title=title))["id"])
        for title in ("Bun", "Coffee")
    ]
    with app.app_context():
        session = db.session()
        merchant = session.scalar(
            text("SELECT merchant_id FROM venues WHERE id = :v"), {"v": venue_a["id"]}
        )
        user = uuid.uuid4()
        session.execute(
            text("INSERT INTO users (id, handle, password_hash) VALUES (:u, :h, 'x')"),
            {"u": user, "h": f"r{secrets.token_hex(5)}"},
        )
        session.commit()
    return {
        "merchant": merchant,
        "venues": [uuid.UUID(v) for v in ids],
        "offers": [uuid.UUID(o["id"]) for o in offers],
        "user": user,
    }


def build(session: Session, shop: dict[str, Any], history: list[dict[str, Any]]) -> datetime:
    """Write `history` as rows (check-ins, unlocks, feedback, then later replies, erasures and
    deletions, each its own statement as the app would); returns the base midnight."""
    now = session.scalar(text("SELECT now()"))
    base = datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=3)
    session.execute(text("DELETE FROM feedback WHERE merchant_id = :m"), {"m": shop["merchant"]})
    later = []
    for n, item in enumerate(history):
        created = base + timedelta(seconds=item["at"])
        venue = shop["venues"][item["venue"]]
        checkin, fid = uuid.uuid4(), uuid.uuid4()
        session.execute(
            text(
                """
                INSERT INTO checkins (id, user_id, venue_id, location, accuracy_m, observed_at,
                    mock_location, presence_code_sent, status, reasons, reason_codes, created_at)
                SELECT :c, :u, v.id, v.location, 10, :t, false, false, 'verified', '[]', '{}', :t
                FROM venues v WHERE v.id = :v
                """
            ),
            {"c": checkin, "u": shop["user"], "v": venue, "t": created},
        )
        for offer in shop["offers"][: item["unlock"]]:
            session.execute(
                text(
                    """
                    INSERT INTO unlocks (id, offer_id, user_id, checkin_id, venue_id, merchant_id,
                                         code, created_at, expires_at, proof)
                    VALUES (gen_random_uuid(), :o, :u, :c, :v, :m, :code, :t, :t, 'gps')
                    """
                ),
                {
                    "o": offer,
                    "u": shop["user"],
                    "c": checkin,
                    "v": venue,
                    "m": shop["merchant"],
                    "code": secrets.token_hex(6).upper(),
                    "t": created,
                },
            )
        replied = None if item["delay"] is None else created + timedelta(seconds=item["delay"])
        session.execute(
            text(
                """
                INSERT INTO feedback (id, checkin_id, user_id, venue_id, merchant_id, rating,
                                      comment, created_at, first_reply_at)
                VALUES (:f, :c, :u, :v, :m, :r, :comment, :t, :first)
                """
            ),
            {
                "f": fid,
                "c": checkin,
                "u": shop["user"],
                "v": venue,
                "m": shop["merchant"],
                "r": item["rating"],
                "comment": f"visit {n}",
                "t": created,
                "first": replied if item["how"] == "now" else None,
            },
        )
        if replied is not None and item["how"] != "now":
            later.append((fid, replied, item["how"]))
        if item["delete"]:
            later.append((fid, None, "delete"))
    for fid, replied, how in later:
        if how == "delete":
            session.execute(text("DELETE FROM feedback WHERE id = :f"), {"f": fid})
            continue
        if how == "earlier":  # a later reply lands first; the earlier one wins by LEAST
            session.execute(
                text("UPDATE feedback SET first_reply_at = :t WHERE id = :f"),
                {"f": fid, "t": replied + timedelta(hours=5)},
            )
        session.execute(
            text(
                "UPDATE feedback SET first_reply_at = LEAST(first_reply_at, CAST(:t AS timestamptz))"
                " WHERE id = :f"
            ),
            {"f": fid, "t": replied},
        )
    # an erasure (issue 18) clears comments and keeps ratings: nothing the rollup counts
    session.execute(
        text("UPDATE feedback SET comment = NULL WHERE user_id = :u"), {"u": shop["user"]}
    )
    return base


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=st.lists(items, max_size=25),
    asks=st.lists(st.tuples(periods, targets, st.booleans()), min_size=1, max_size=3),
    close_b=st.booleans(),
)
def test_the_rollup_report_equals_the_direct_computation(
    app: Flask,
    shop: dict[str, Any],
    history: list[dict[str, Any]],
    asks: list[Any],
    close_b: bool,
) -> None:
    with app.app_context():
        session = db.session()
        base = build(session, shop, history)
        session.execute(
            text("UPDATE venues SET deleted_at = CASE WHEN :c THEN now() END WHERE id = :v"),
            {"c": close_b, "v": shop["venues"][1]},
        )
        m = shop["merchant"]
        for (start, length), target, one_venue in asks:
            lo = None if start is None else base + timedelta(seconds=start)
            hi = None if length is None or lo is None else lo + timedelta(seconds=length)
            venue = shop["venues"][0] if one_venue else None
            got = feedback.responsiveness(session, m, lo, hi, target, venue)
            want = responsiveness_direct(session, m, lo, hi, target, venue)
            close(got, want)
        # offer health reads the same rollup
        health = {h["offer_id"]: h for h in analytics.offer_health(session, m)}
        for offer, (n, mean) in offer_ratings_direct(session, m).items():
            assert health[offer]["feedback"] == n
            assert health[offer]["rating_mean"] == (None if mean is None else round(mean, 2))
        # deleting every feedback leaves nothing counted
        session.execute(text("DELETE FROM feedback WHERE merchant_id = :m"), {"m": m})
        for table, column in (
            ("feedback_rollup", "feedback"),
            ("feedback_rollup_responses", "answered"),
            ("feedback_rollup_offers", "feedback"),
        ):
            left = session.scalar(
                text(f"SELECT count(*) FROM {table} WHERE merchant_id = :m AND {column} <> 0"),
                {"m": m},
            )
            assert left == 0, table
        assert not session.scalar(
            text("SELECT count(*) FROM feedback_responses WHERE merchant_id = :m"), {"m": m}
        )


def test_three_ranks_in_one_reply_time_band(app: Flask, shop: dict[str, Any]) -> None:
    """Six answers whose median's and p90's ranks (2, 3 and 4, 5) put three in one band of reply
    time: each rank's value is read (the benchmark's random data once made this a 500)."""
    delays = [77.3, 4269.5, 16564.4, 19715.8, 20964.8, 27203.3]  # bands 12, 24, 28, 28, 28, 29
    history = [
        {
            "venue": 0,
            "at": n * 3600.0,
            "rating": 4,
            "delay": d,
            "how": "now",
            "unlock": 0,
            "delete": False,
        }
        for n, d in enumerate(delays)
    ]
    with app.app_context():
        session = db.session()
        build(session, shop, history)
        m = shop["merchant"]
        got = feedback.responsiveness(session, m)
        close(got, responsiveness_direct(session, m, None, None, 24.0, None))
        assert got["first_response_s"]["p90"] == pytest.approx((20964.8 + 27203.3) / 2, abs=0.1)


def test_a_period_is_whole_hour_blocks_and_two_partial_hours() -> None:
    now = datetime(2026, 12, 7, 3, 30, tzinfo=UTC)
    s = feedback.span(datetime(2026, 11, 30, 12, 15, tzinfo=UTC), feedback.OPEN_END, now)
    assert s.e1 == datetime(2026, 11, 30, 13, tzinfo=UTC)
    # nothing is created after this hour: the blocks end at the roundest hour after it
    assert s.e2 > now and s.e2 <= feedback.OPEN_END
    hours = [
        h
        for level, block in zip(s.levels, s.blocks, strict=True)
        for h in range(block << level, (block + 1) << level)
    ]
    first = (s.e1 - feedback.EPOCH) // feedback.HOUR
    assert hours == list(range(first, (s.e2 - feedback.EPOCH) // feedback.HOUR))
    assert len(s.levels) <= 2 * (feedback.ROLLUP_MAX_LEVEL + 1)
    whole = feedback.span(feedback.EPOCH, feedback.OPEN_END, now)
    assert (whole.levels, whole.blocks) == ((feedback.ROLLUP_MAX_LEVEL,), (0,))
    inside = feedback.span(now - timedelta(minutes=20), now, now)
    assert (inside.e1, inside.e2, inside.levels) == (now, now, ())
