"""The check-in counters (migration 0017, offers/counters.py) against the queries they replaced.

Random histories (several users, devices and venues; verified and rejected check-ins; times
that land exactly on and around the window edges; erasures, the retention job's rewrite of
device ids, status flips and deletions; a top_visitor window created half-way) run through the
old queries (tests/integration/counters_oracle.py, which count the check-ins themselves) and
the new ones at every step, at a simulated clock: every figure must be the same. Then real
parallel check-ins through the use case, and the counters must equal a recount.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, TextClause, text

from api import db
from core.privacy import _COARSEN_BATCH, _ERASE_STEPS
from mobile_stub.client import Client
from offers import checkins, counters
from offers.abuse import DEFAULT_ABUSE_THRESHOLDS as ABUSE
from tests.factories import offer_body, venue_body
from tests.integration.counters_oracle import (
    OLD_CANDIDATES,
    OLD_STAFF_DEVICE_OF_USER,
    OLD_VENUE_AND_HISTORY,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = 86_400.0
# Steps of the clock: exact window lengths (a day, two, the group's 30 min, the rejections'
# 24 h, the strikes' 7 days) and a microsecond either side of them, so edges are hit exactly.
STEPS = [0.0, 1e-6, 1.0, 60.0, 1800.0, 1800.0 + 1e-6, 1800.0 - 1e-6, 3600.0, DAY, DAY - 1e-6]
STEPS += [DAY + 1e-6, 2 * DAY, 7 * DAY, 7 * DAY - 1e-6, 0.5 * DAY]
DEVICES = ["d1", "d2", "d3", None]


def _at(sql: TextClause) -> TextClause:
    """The statement at a simulated clock: `now()` becomes the parameter `:now`."""
    return text(re.sub(r"\bnow\(\)", "CAST(:now AS timestamptz)", sql.text))


@pytest.fixture
def world(committed_app: Flask, committed_api: Client, committed_owner: Client) -> dict[str, Any]:
    owner = committed_owner
    a = owner.create_venue(venue_body(name="A", checkin_cooldown_minutes=0))
    b = owner.create_venue(venue_body(name="B", checkin_cooldown_minutes=0))
    rules = [
        ([a], {"kind": "top_visitor", "window_days": 1, "min_visits": 1}),
        ([a, b], {"kind": "top_visitor", "window_days": 2}),
        ([a, b], {"kind": "nth_visit", "visits": 2, "within_days": 1, "repeat": True}),
        ([a], {"kind": "first_visit"}),
        ([a], {"kind": "group", "min_people": 2, "within_minutes": 30}),
    ]
    for venues, rule in rules:
        offer = owner.create_offer(offer_body([v["id"] for v in venues], rule=rule))
        owner.activate_offer(offer["id"])
    users = []
    for i in range(4):
        handle = f"c{i}{secrets.token_hex(4)}"
        users.append(committed_api.create_user(handle, "pass-word-1")["user"]["id"])
        if i == 3:
            owner.add_staff_user(handle)
    return {"app": committed_app, "venues": [a["id"], b["id"]], "users": users}


_INSERT = text(
    """
    INSERT INTO checkins (id, user_id, venue_id, location, accuracy_m, observed_at,
                          mock_location, presence_code_sent, device_id, status, reasons,
                          reason_codes, strikes, proof, created_at)
    SELECT :id, :user_id, v.id, v.location, 10, :now, false, false, :device_id, :status,
           '[]', '{}', '{}', 'gps', :now
    FROM venues v WHERE v.id = :venue_id
    """
)

checkin_event = st.tuples(
    st.just("checkin"),
    st.integers(0, 3),
    st.integers(0, 1),
    st.sampled_from(DEVICES),
    st.sampled_from(["verified", "verified", "rejected"]),
)
clock_event = st.tuples(st.just("clock"), st.sampled_from(STEPS))
query_event = st.tuples(
    st.just("query"), st.integers(0, 3), st.integers(0, 1), st.sampled_from(DEVICES)
)
# mostly visits and time passing; now and then a query, a window made, an erasure, the
# retention job, a status flipped or a check-in deleted
event = st.one_of(
    checkin_event,
    checkin_event,
    checkin_event,
    clock_event,
    clock_event,
    query_event,
    st.tuples(st.just("windows")),
    st.tuples(st.just("erase"), st.integers(0, 3)),
    st.tuples(st.just("retention")),
    st.tuples(st.just("flip"), st.integers(0, 30)),
    st.tuples(st.just("delete"), st.integers(0, 30)),
)


def _rows(conn: Connection, sql: TextClause, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(sql, params)]


def _members(value: Any) -> list[Any]:
    return sorted(json.dumps(m, sort_keys=True) for m in (value or []))


def _compare(
    conn: Connection, w: dict[str, Any], user: str, venue: str, device: Any, now: Any
) -> None:
    params = {
        "venue_id": venue,
        "user_id": user,
        "device_id": device,
        "observed_at": now,
        "window_days": ABUSE.window_days,
        "rejection_hours": ABUSE.rejection_hours,
        "staff_device_days": ABUSE.staff_device_days,
        "now": now,
    }
    strikes = ("device_users", "user_devices", "recent_rejections", "staff_user", "staff_device")
    old = _rows(conn, _at(OLD_VENUE_AND_HISTORY), params)[0]
    new = _rows(conn, _at(checkins._VENUE_AND_HISTORY), params)[0]
    assert {k: new[k] for k in strikes} == {k: old[k] for k in strikes}
    staff_params = {
        "merchant_id": old["merchant_id"],
        "user_id": user,
        "days": ABUSE.staff_device_days,
        "now": now,
    }
    assert (
        conn.execute(_at(checkins._STAFF_DEVICE_OF_USER), staff_params).scalar()
        == conn.execute(_at(OLD_STAFF_DEVICE_OF_USER), staff_params).scalar()
    )
    cparams = {"venue_id": venue, "user_id": user, "top_window_days": 60, "now": now}
    figures = ("id", "visits", "visits_within", "user_unlocks", "top_visits", "best_other_visits")
    before = _rows(conn, _at(OLD_CANDIDATES), cparams)
    after = _rows(conn, _at(checkins._CANDIDATES), cparams)  # takes expired check-ins off too
    assert [{k: r[k] for k in figures} | {"m": _members(r["members"])} for r in after] == [
        {k: r[k] for k in figures} | {"m": _members(r["members"])} for r in before
    ]
    # and once more, now that the window's backlog is off the tallies
    again = _rows(conn, _at(checkins._CANDIDATES), cparams)
    assert [(r["top_visits"], r["best_other_visits"]) for r in again] == [
        (r["top_visits"], r["best_other_visits"]) for r in before
    ]


_RECOUNT = text(
    """
    SELECT
      (SELECT count(*) FROM (
         (SELECT user_id, venue_id, visits FROM checkin_visit_counts WHERE visits > 0
          EXCEPT SELECT user_id, venue_id, count(*) FROM checkins WHERE status = 'verified'
          GROUP BY 1, 2)
         UNION ALL
         (SELECT user_id, venue_id, count(*) FROM checkins WHERE status = 'verified'
          GROUP BY 1, 2
          EXCEPT SELECT user_id, venue_id, visits FROM checkin_visit_counts)) d) AS visits,
      (SELECT count(*) FROM (
         (SELECT device_id, user_id, last_at FROM device_user_checkins
          EXCEPT SELECT device_id, user_id, max(created_at) FROM checkins
          WHERE device_id IS NOT NULL GROUP BY 1, 2)
         UNION ALL
         (SELECT device_id, user_id, max(created_at) FROM checkins
          WHERE device_id IS NOT NULL GROUP BY 1, 2
          EXCEPT SELECT device_id, user_id, last_at FROM device_user_checkins)) d) AS pairs,
      (SELECT count(*) FROM (
         (SELECT venue_id, window_days, user_id, visits FROM top_visitor_tallies
          WHERE visits <> 0
          EXCEPT SELECT w.venue_id, w.window_days, c.user_id, count(*)
          FROM top_visitor_windows w JOIN checkins c ON c.venue_id = w.venue_id
           AND c.status = 'verified' AND c.created_at > w.through GROUP BY 1, 2, 3)
         UNION ALL
         (SELECT w.venue_id, w.window_days, c.user_id, count(*)
          FROM top_visitor_windows w JOIN checkins c ON c.venue_id = w.venue_id
           AND c.status = 'verified' AND c.created_at > w.through GROUP BY 1, 2, 3
          EXCEPT SELECT venue_id, window_days, user_id, visits FROM top_visitor_tallies))
      d) AS tallies
    """
)


def assert_counters_equal_a_recount(conn: Connection) -> None:
    assert dict(conn.execute(_RECOUNT).one()._mapping) == {"visits": 0, "pairs": 0, "tallies": 0}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.booleans(), st.lists(event, min_size=4, max_size=30))
# a window made, two visits, then the clock a microsecond past the window's end: the two are
# out of the window and still on the tallies until the check-in takes them off
@example(
    False,
    [
        ("windows",),
        ("checkin", 0, 0, "d1", "verified"),
        ("checkin", 1, 0, "d1", "verified"),
        ("checkin", 1, 0, "d2", "verified"),
        ("clock", DAY),
        ("checkin", 0, 0, "d1", "verified"),
        ("clock", 1e-6),
        ("query", 2, 0, "d1"),
    ],
)
def test_counters_give_the_old_queries_figures_on_any_history(
    world: dict[str, Any], windows_first: bool, events: list[tuple[Any, ...]]
) -> None:
    engine = world["app"].extensions["engine"]
    users, venues = world["users"], world["venues"]
    now = T0
    inserted: list[str] = []
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            # start with no window: the offers' windows are made when the history is there
            conn.execute(text("DELETE FROM top_visitor_tallies"))
            conn.execute(text("DELETE FROM top_visitor_windows"))
            for ev in ([("windows",)] if windows_first else []) + events:
                kind = ev[0]
                if kind == "clock":
                    now += timedelta(seconds=ev[1])
                elif kind == "checkin":
                    cid = str(uuid.uuid4())
                    inserted.append(cid)
                    conn.execute(
                        _INSERT,
                        {
                            "id": cid,
                            "user_id": users[ev[1]],
                            "venue_id": venues[ev[2]],
                            "device_id": ev[3],
                            "status": ev[4],
                            "now": now,
                        },
                    )
                elif kind == "query":
                    _compare(conn, world, users[ev[1]], venues[ev[2]], ev[3], now)
                elif kind == "windows":
                    for (offer_id,) in conn.execute(
                        text("SELECT id FROM offers WHERE rule->>'kind' = 'top_visitor'")
                    ):
                        params = {"offer_id": str(offer_id), "default_days": 60, "now": now}
                        conn.execute(_at(counters._LOCK_VENUES), params).all()
                        conn.execute(_at(counters._CREATE_WINDOWS), params)
                elif kind == "erase":
                    step = dict(_ERASE_STEPS)["checkins"]
                    conn.execute(_at(step), {"u": users[ev[1]], "now": now})
                elif kind == "retention":
                    conn.execute(
                        _at(_COARSEN_BATCH),
                        {"cutoff": now - timedelta(days=1), "batch": 1000, "now": now},
                    )
                elif kind in ("flip", "delete") and inserted:
                    cid = inserted[ev[1] % len(inserted)]
                    if kind == "flip":
                        conn.execute(
                            text(
                                "UPDATE checkins SET status = CASE status WHEN 'verified'"
                                " THEN 'rejected' ELSE 'verified' END WHERE id = :id"
                            ),
                            {"id": cid},
                        )
                    else:
                        conn.execute(text("DELETE FROM checkins WHERE id = :id"), {"id": cid})
            for user in users:
                for venue in venues:
                    _compare(conn, world, user, venue, "d1", now)
            assert_counters_equal_a_recount(conn)
        finally:
            tx.rollback()


def test_parallel_check_ins_keep_the_counters_exact(
    committed_app: Flask, committed_api: Client, committed_owner: Client
) -> None:
    """Check-ins by the same users at the same venue from 8 threads at once (a top_visitor
    offer there, shared devices): afterwards every counter equals a recount, and the figures
    the last check-in read equal the old queries'."""
    owner = committed_owner
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    for rule in ({"kind": "top_visitor", "min_visits": 1}, {"kind": "nth_visit", "visits": 3}):
        offer = owner.create_offer(offer_body([venue["id"]], rule=rule, per_user_cap=1000))
        owner.activate_offer(offer["id"])
    users = [
        committed_api.create_user(f"p{i}{secrets.token_hex(4)}", "pass-word-1")["user"]["id"]
        for i in range(4)
    ]
    lon, lat = venue["location"]["coordinates"]
    errors: list[BaseException] = []

    def run(worker: int) -> None:
        try:
            for i in range(6):
                user = uuid.UUID(users[(worker + i) % len(users)])
                data = checkins.CheckinInput(
                    uuid.UUID(venue["id"]),
                    lat,
                    lon,
                    10,
                    datetime.now(UTC),
                    device_id=f"dev{(worker + i) % 3}",
                )
                with committed_app.app_context():
                    checkins.check_in(db.unit_of_work(), user, data)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    engine = committed_app.extensions["engine"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM checkins")).scalar() == 48
        assert_counters_equal_a_recount(conn)
        for user in users:
            _compare(conn, {}, user, venue["id"], "dev1", datetime.now(UTC))
