"""Feedback from verified visits: who may speak, every refusal code, the merchant's inbox and
replies, and the responsiveness report's figures against a hand count."""

from __future__ import annotations

import csv
import io
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from api import db
from mobile_stub.client import ApiError, Client
from tests.factories import offer_body, venue_body

A = {"type": "Point", "coordinates": [24.9384, 60.1699]}
B = {"type": "Point", "coordinates": [24.9500, 60.1800]}


def sql(app: Flask, statement: str, **params: Any) -> list[Any]:
    with app.app_context():
        result = db.session().execute(text(statement), params)
        rows = list(result.all()) if result.returns_rows else []
        db.session().commit()
        return rows


def new_user(api: Client, handle: str | None = None) -> Client:
    handle = handle or f"u{secrets.token_hex(5)}"
    return api.with_token(api.create_user(handle, "pass-word-1")["token"])


def visit(user: Client, venue: dict[str, Any], offset_m: float = 0.0) -> dict[str, Any]:
    lon, lat = venue["location"]["coordinates"]
    return dict(
        user.check_in(venue["id"], lat + offset_m / 111_000, lon, 10, datetime.now(UTC).isoformat())
    )


def refused(call: Any) -> tuple[int, str]:
    with pytest.raises(ApiError) as err:
        call()
    return err.value.status, err.value.code


@pytest.fixture
def place(owner: Client) -> dict[str, Any]:
    venue_a = owner.create_venue(venue_body(name="A", location=A, checkin_cooldown_minutes=0))
    venue_b = owner.create_venue(venue_body(name="B", location=B, checkin_cooldown_minutes=0))
    coffee = owner.activate_offer(
        owner.create_offer(offer_body([venue_a["id"], venue_b["id"]], title="Coffee"))["id"]
    )
    return {"a": venue_a, "b": venue_b, "coffee": coffee}


# ---- who may speak ---------------------------------------------------------------------------


def test_a_verified_visitor_rates_the_visit_once(api: Client, place: dict[str, Any]) -> None:
    user = new_user(api)
    checkin = visit(user, place["a"])
    given = user.give_feedback(checkin["id"], 4, "Lovely cinnamon buns.\nSlow queue though.")
    assert given["checkin_id"] == checkin["id"]
    assert given["venue_id"] == place["a"]["id"]
    assert given["rating"] == 4
    assert given["comment"] == "Lovely cinnamon buns.\nSlow queue though."
    assert given["created_at"].endswith("+00:00")
    assert set(given) == {"id", "checkin_id", "venue_id", "rating", "comment", "created_at"}
    assert refused(lambda: user.give_feedback(checkin["id"], 5)) == (409, "already_given")
    mine = user.my_feedback()
    assert [f["id"] for f in mine] == [given["id"]]
    assert mine[0]["rating"] == 4 and mine[0]["replies"] == []


def test_every_refusal_has_its_code_and_changes_nothing(
    app: Flask, api: Client, owner: Client, place: dict[str, Any]
) -> None:
    user, stranger = new_user(api), new_user(api)
    # rejected: far outside the geofence
    rejected = visit(user, place["a"], offset_m=5_000)
    assert rejected["status"] == "rejected"
    assert refused(lambda: user.give_feedback(rejected["id"], 3)) == (422, "not_eligible")
    # older than 7 days
    old = visit(user, place["b"])
    sql(
        app,
        "UPDATE checkins SET created_at = now() - interval '7 days 1 minute' WHERE id = :id",
        id=old["id"],
    )
    assert refused(lambda: user.give_feedback(old["id"], 3)) == (422, "not_eligible")
    # another user's check-in, and one that does not exist: 404, never 403
    theirs = visit(stranger, place["a"])
    assert refused(lambda: user.give_feedback(theirs["id"], 1)) == (404, "not_found")
    unknown = "00000000-0000-4000-8000-000000000000"
    assert refused(lambda: user.give_feedback(unknown, 1)) == (404, "not_found")
    # a merchant key is not a user
    assert refused(lambda: owner.give_feedback(theirs["id"], 5)) == (401, "unauthorized")
    assert sql(app, "SELECT count(*) FROM feedback")[0][0] == 0


def test_six_days_old_is_still_in_time(app: Flask, api: Client, place: dict[str, Any]) -> None:
    user = new_user(api)
    checkin = visit(user, place["a"])
    sql(
        app,
        "UPDATE checkins SET created_at = now() - interval '6 days 23 hours' WHERE id = :id",
        id=checkin["id"],
    )
    assert user.give_feedback(checkin["id"], 5)["rating"] == 5


def test_the_merchants_own_staff_cannot_rate_their_venue(
    api: Client, owner: Client, place: dict[str, Any]
) -> None:
    barista = new_user(api, "barista_ann")
    owner.add_staff_user("barista_ann")
    checkin = visit(barista, place["a"])
    assert checkin["status"] == "verified"
    assert refused(lambda: barista.give_feedback(checkin["id"], 5)) == (422, "not_eligible")


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "rating"),
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": "5"}, "rating"),
        ({"rating": 4.5}, "rating"),
        ({"rating": True}, "rating"),
        ({"rating": 5, "comment": "nice\u0000"}, "comment"),
        ({"rating": 5, "comment": "nice \u202eevil"}, "comment"),
        ({"rating": 5, "comment": "x" * 2001}, "comment"),
        ({"rating": 5, "stars": 5}, "stars"),
    ],
)
def test_bad_feedback_is_422_and_stores_nothing(
    app: Flask, client: FlaskClient, api: Client, place: dict[str, Any], body: Any, field: str
) -> None:
    user = new_user(api)
    checkin = visit(user, place["a"])
    response = client.post(
        f"/v1/checkins/{checkin['id']}/feedback",
        json=body,
        headers={"Authorization": f"Bearer {user.token}"},
    )
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]
    assert sql(app, "SELECT count(*) FROM feedback")[0][0] == 0


def test_comments_are_plain_text_kept_as_written(api: Client, place: dict[str, Any]) -> None:
    user = new_user(api)
    comment = "<script>alert(1)</script> & <b>bold</b>"
    given = user.give_feedback(visit(user, place["a"])["id"], 2, comment)
    assert given["comment"] == comment
    blank = new_user(api)
    assert blank.give_feedback(visit(blank, place["a"])["id"], 3, "   ")["comment"] is None


# ---- the inbox and replies -------------------------------------------------------------------


def test_inbox_order_filters_and_replies(
    app: Flask, api: Client, owner: Client, place: dict[str, Any]
) -> None:
    given = {}
    for name, venue, rating, age_h in [
        ("old", "a", 2, 50),
        ("mid", "b", 5, 20),
        ("new", "a", 5, 1),
        ("done", "a", 4, 30),
    ]:
        user = new_user(api)
        given[name] = (user, user.give_feedback(visit(user, place[venue])["id"], rating))
        sql(
            app,
            "UPDATE feedback SET created_at = now() - make_interval(hours => :h) WHERE id = :id",
            h=age_h,
            id=given[name][1]["id"],
        )
    staff = owner.with_token(owner.create_key("staff")["api_key"])
    first = staff.reply_to_feedback(given["done"][1]["id"], "Thank you, see you soon!")
    assert set(first) >= {"id", "feedback_id", "body", "created_at"}
    assert first["feedback_id"] == given["done"][1]["id"]
    owner.reply_to_feedback(given["done"][1]["id"], "And the buns are back on Friday.")

    inbox = staff.list_feedback()
    assert [f["id"] for f in inbox] == [given[n][1]["id"] for n in ("old", "mid", "new", "done")]
    assert [f["status"] for f in inbox] == ["unanswered"] * 3 + ["answered"]
    assert inbox[0]["waiting_s"] == 50 * 3600 and inbox[3]["waiting_s"] is None
    assert inbox[0]["venue_name"] == "A"
    assert inbox[0]["visit"]["proof"] == "gps"
    assert inbox[0]["visit"]["unlocks"] == [
        {"offer_id": place["coffee"]["id"], "title": "Coffee", "status": "active"}
    ]
    assert [r["body"] for r in inbox[3]["replies"]] == [
        "Thank you, see you soon!",
        "And the buns are back on Friday.",
    ]
    assert [r["author_role"] for r in inbox[3]["replies"]] == ["staff", "owner"]

    def ids(**query: Any) -> list[str]:
        return [f["id"] for f in owner.list_feedback(**query)]

    assert ids(status="unanswered") == [given[n][1]["id"] for n in ("old", "mid", "new")]
    assert ids(status="answered") == [given["done"][1]["id"]]
    assert ids(venue_id=place["b"]["id"]) == [given["mid"][1]["id"]]
    assert ids(rating=5) == [given["mid"][1]["id"], given["new"][1]["id"]]
    assert ids(rating=5, venue_id=place["a"]["id"]) == [given["new"][1]["id"]]
    assert ids(limit=2, offset=1) == [given["mid"][1]["id"], given["new"][1]["id"]]

    # the customer reads the replies, without who wrote them
    [mine] = given["done"][0].my_feedback()
    assert [r["body"] for r in mine["replies"]] == [
        "Thank you, see you soon!",
        "And the buns are back on Friday.",
    ]
    assert "author_role" not in mine["replies"][0]

    # every reply is audited with the key that wrote it
    events = [e for e in owner.audit_trail()["events"] if e["action"] == "feedback_reply.create"]
    assert len(events) == 2
    staff_event = next(e for e in events if e["object_id"] == first["id"])
    assert staff_event["actor_role"] == "staff"
    assert staff_event["actor_key_id"] is not None
    assert staff_event["changes"]["body"] == [None, "Thank you, see you soon!"]


def test_reply_refusals(
    app: Flask, api: Client, owner: Client, other_owner: Client, place: dict[str, Any]
) -> None:
    user = new_user(api)
    given = user.give_feedback(visit(user, place["a"])["id"], 3)
    analyst = owner.with_token(owner.create_key("analyst")["api_key"])
    assert refused(lambda: analyst.reply_to_feedback(given["id"], "hi")) == (403, "forbidden")
    assert refused(lambda: analyst.list_feedback()) == (403, "forbidden")
    assert refused(lambda: other_owner.reply_to_feedback(given["id"], "hi")) == (404, "not_found")
    assert other_owner.list_feedback() == []
    assert refused(lambda: user.reply_to_feedback(given["id"], "hi")) == (401, "unauthorized")
    assert refused(lambda: owner.reply_to_feedback(given["id"], "")) == (422, "validation_error")
    assert refused(lambda: owner.reply_to_feedback(given["id"], "  \n ")) == (
        422,
        "validation_error",
    )
    assert refused(lambda: owner.reply_to_feedback(given["id"], "bad \u0007 bell")) == (
        422,
        "validation_error",
    )
    assert sql(app, "SELECT count(*), count(first_reply_at) FROM feedback")[0] == (1, 0)
    assert sql(app, "SELECT count(*) FROM feedback_replies")[0][0] == 0
    assert refused(lambda: owner.list_feedback(status="maybe")) == (422, "validation_error")
    assert refused(lambda: owner.list_feedback(rating=9)) == (422, "validation_error")


# ---- the responsiveness report ---------------------------------------------------------------

# (name, venue, rating, given hours ago, first reply hours after, later replies)
SCRIPT = [
    ("f1", "a", 5, 240, 1, 0),
    ("f2", "a", 4, 120, 30, 0),
    ("f3", "a", 2, 72, None, 0),
    ("f4", "b", 1, 2, None, 0),
    ("f5", "b", 5, 48, 10 / 60, 1),
    ("f6", "b", 3, 960, 2, 0),  # 40 days ago: outside the period asked for
]


@pytest.fixture
def history(app: Flask, api: Client, owner: Client, place: dict[str, Any]) -> dict[str, str]:
    ids = {}
    for name, venue, rating, ago_h, reply_h, more in SCRIPT:
        user = new_user(api)
        fid = user.give_feedback(visit(user, place[venue])["id"], rating)["id"]
        ids[name] = fid
        if reply_h is not None:
            for n in range(1 + more):
                owner.reply_to_feedback(fid, f"reply {n}")
        sql(
            app,
            "UPDATE feedback SET created_at = now() - make_interval(hours => :ago),"
            " first_reply_at = CASE WHEN first_reply_at IS NULL THEN NULL"
            "   ELSE now() - make_interval(hours => :ago) + make_interval(secs => :reply_s) END"
            " WHERE id = :id",
            ago=ago_h,
            reply_s=(reply_h or 0) * 3600,
            id=fid,
        )
    return ids


def test_responsiveness_against_a_hand_count(
    owner: Client, place: dict[str, Any], history: dict[str, str]
) -> None:
    since = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    report = owner.responsiveness(from_=since)
    # f1..f5 in the period; answered f1 (1 h), f2 (30 h), f5 (10 min); f3 overdue, f4 pending
    assert {k: report[k] for k in ("feedback", "answered", "unanswered", "pending", "overdue")} == {
        "feedback": 5,
        "answered": 3,
        "unanswered": 2,
        "pending": 1,
        "overdue": 1,
    }
    assert report["target_hours"] == 24
    assert report["answered_within_target"] == 2
    assert report["response_rate"] == 0.75  # 3 / (3 + 1)
    assert report["within_target_rate"] == 0.5  # 2 / (3 + 1)
    # 600, 3600, 108000 s: median 3600, p90 = 3600 + 0.8 * (108000 - 3600)
    assert report["first_response_s"] == {"median": 3600, "p90": 87120, "mean": 37400}
    assert report["rating"] == {
        "mean": 3.4,
        "count_by_star": {"1": 1, "2": 1, "3": 0, "4": 1, "5": 2},
    }
    a, b = report["by_venue"]
    assert (a["venue_name"], b["venue_name"]) == ("A", "B")
    assert (a["feedback"], a["answered"], a["pending"], a["overdue"]) == (3, 2, 0, 1)
    assert a["answered_within_target"] == 1
    assert a["response_rate"] == 0.6667
    assert a["first_response_s"] == {"median": 55800, "p90": 97560, "mean": 55800}
    assert a["rating"] == {"mean": 3.67, "count_by_star": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1}}
    assert (b["feedback"], b["answered"], b["pending"], b["overdue"]) == (2, 1, 1, 0)
    assert b["response_rate"] == 1.0 and b["answered_within_target"] == 1
    assert b["first_response_s"]["median"] == 600
    assert b["rating"]["mean"] == 3.0
    # every visit unlocked the coffee
    assert report["by_offer"] == [
        {
            "offer_id": place["coffee"]["id"],
            "title": "Coffee",
            "feedback": 5,
            "rating": {"mean": 3.4, "count_by_star": {"1": 1, "2": 1, "3": 0, "4": 1, "5": 2}},
        }
    ]
    # Facebook, last 7 days: f2, f3, f4, f5; answered f2, f5: 50%, mean (108000 + 600) / 2
    facebook = report["benchmarks"]["facebook_very_responsive"]
    assert (facebook["feedback"], facebook["answered"]) == (4, 2)
    assert facebook["response_rate"] == 0.5
    assert facebook["mean_first_response_s"] == 54300
    assert facebook["meets"] is False
    # Yelp, last 30 days: f1, f2, f5 answered: median 3600
    yelp = report["benchmarks"]["yelp_response_time"]
    assert (yelp["answered"], yelp["median_first_response_s"]) == (3, 3600)


def test_the_target_is_a_query_parameter(owner: Client, history: dict[str, str]) -> None:
    since = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    report = owner.responsiveness(from_=since, target_hours=48)
    # f2 (30 h) is now in time; f3 (72 h old) still overdue; f4 pending
    assert report["answered_within_target"] == 3
    assert (report["pending"], report["overdue"]) == (1, 1)
    assert report["within_target_rate"] == 0.75
    tight = owner.responsiveness(from_=since, target_hours=0.25)
    # 15 minutes: only f5 (10 min) in time; f4 (2 h old) is overdue now
    assert tight["answered_within_target"] == 1
    assert (tight["pending"], tight["overdue"]) == (0, 2)
    assert tight["response_rate"] == 0.6  # 3 / (3 + 2)
    for bad in (0, -1, 721, "x"):
        assert refused(lambda bad=bad: owner.responsiveness(target_hours=bad)) == (
            422,
            "validation_error",
        )


def test_the_period_and_the_venue_filter(
    owner: Client, place: dict[str, Any], history: dict[str, str]
) -> None:
    everything = owner.responsiveness()
    assert everything["feedback"] == 6
    assert everything["to"] is None
    window = owner.responsiveness(
        from_=(datetime.now(UTC) - timedelta(hours=100)).isoformat(),
        to=(datetime.now(UTC) - timedelta(hours=10)).isoformat(),
    )
    assert window["feedback"] == 2  # f3 (72 h) and f5 (48 h)
    only_b = owner.responsiveness(venue_id=place["b"]["id"])
    assert only_b["feedback"] == 3
    assert [v["venue_name"] for v in only_b["by_venue"]] == ["B"]
    now = datetime.now(UTC).isoformat()
    assert refused(lambda: owner.responsiveness(from_=now, to=now)) == (422, "validation_error")


def test_responsiveness_csv_has_the_same_numbers(owner: Client, history: dict[str, str]) -> None:
    since = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    rows = list(csv.DictReader(io.StringIO(owner.responsiveness_csv(from_=since))))
    assert [r["scope"] for r in rows] == ["merchant", "venue", "venue"]
    merchant = rows[0]
    assert merchant["feedback"] == "5" and merchant["answered"] == "3"
    assert merchant["response_rate"] == "0.75"
    assert merchant["first_response_median_s"] == "3600.0"
    assert [merchant[f"rating_{s}"] for s in "12345"] == ["1", "1", "0", "1", "2"]
    assert rows[1]["venue_name"] == "A" and rows[1]["overdue"] == "1"


def test_responsiveness_roles_and_an_empty_merchant(owner: Client, other_owner: Client) -> None:
    staff = owner.with_token(owner.create_key("staff")["api_key"])
    assert refused(lambda: staff.responsiveness()) == (403, "forbidden")
    analyst = other_owner.with_token(other_owner.create_key("analyst")["api_key"])
    empty = analyst.responsiveness()
    assert empty["feedback"] == 0 and empty["response_rate"] is None
    assert empty["first_response_s"] == {"median": None, "p90": None, "mean": None}
    assert empty["rating"] == {
        "mean": None,
        "count_by_star": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0},
    }
    assert empty["benchmarks"]["facebook_very_responsive"]["meets"] is False


# ---- feedback and offers -----------------------------------------------------------------------


def test_a_low_rating_flag_joins_offer_health(
    api: Client, owner: Client, place: dict[str, Any]
) -> None:
    dull = owner.activate_offer(
        owner.create_offer(offer_body([place["b"]["id"]], title="Dull"))["id"]
    )
    for rating in (1, 2, 2, 3):
        user = new_user(api)
        user.give_feedback(visit(user, place["b"])["id"], rating)
    health = owner.offer_health(dull["id"])
    assert (health["feedback"], health["rating_mean"]) == (4, 2.0)
    assert health["healthy"]  # four is too few to judge
    user = new_user(api)
    user.give_feedback(visit(user, place["b"])["id"], 3)
    health = owner.offer_health(dull["id"])
    assert (health["feedback"], health["rating_mean"]) == (5, 2.2)
    assert [f["code"] for f in health["flags"]] == ["low_rating"]
    # a visit at A unlocked only the coffee: the dull offer's rating is not touched
    happy = new_user(api)
    happy.give_feedback(visit(happy, place["a"])["id"], 5)
    assert owner.offer_health(dull["id"])["feedback"] == 5
    coffee = owner.offer_health(place["coffee"]["id"])
    # the coffee was unlocked on all six visits: 16 stars / 6, above the threshold
    assert (coffee["feedback"], coffee["rating_mean"], coffee["healthy"]) == (6, 2.67, True)


# ---- analysts' SQL access ----------------------------------------------------------------------


def test_the_analyst_role_reads_the_feedback_views_and_not_the_tables(
    app: Flask, api: Client, owner: Client, place: dict[str, Any]
) -> None:
    user = new_user(api)
    given = user.give_feedback(visit(user, place["a"])["id"], 3, "ok")
    owner.reply_to_feedback(given["id"], "thanks")
    owner.reply_to_feedback(given["id"], "and welcome back")
    with app.app_context():
        session = db.session()
        session.execute(text("SET LOCAL ROLE checkin_offers_analyst"))
        row = session.execute(
            text(
                "SELECT rating, comment, replies, proof, venue_name, first_response_s >= 0"
                " FROM analytics.feedback"
            )
        ).one()
        assert tuple(row) == (3, "ok", 2, "gps", "A", True)
        roles = session.execute(
            text("SELECT author_role FROM analytics.feedback_replies ORDER BY created_at")
        ).scalars()
        assert list(roles) == ["owner", "owner"]
        for forbidden in ("SELECT * FROM feedback", "SELECT * FROM feedback_replies"):
            savepoint = session.begin_nested()
            with pytest.raises(ProgrammingError, match="permission denied"):
                session.execute(text(forbidden))
            savepoint.rollback()
