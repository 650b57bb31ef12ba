"""Measurement: a scripted day of activity through the API, and every figure checked exactly."""

from __future__ import annotations

import random
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from api import db
from mobile_stub.client import ApiError, Client
from offers.stats import newcombe_difference
from tests.factories import offer_body, venue_body

A = {"type": "Point", "coordinates": [24.9384, 60.1699]}  # Helsinki centre
B = {"type": "Point", "coordinates": [24.9500, 60.1800]}  # ~1.3 km away


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def sql(app: Flask, statement: str, **params: Any) -> list[Any]:
    with app.app_context():
        result = db.session().execute(text(statement), params)
        rows = list(result.all()) if result.returns_rows else []
        db.session().commit()
        return rows


def new_user(api: Client) -> Client:
    return api.with_token(api.create_user(f"u{secrets.token_hex(5)}", "pass-word-1")["token"])


def at(user: Client, venue: dict[str, Any], offset_m: float = 0.0) -> dict[str, Any]:
    lon, lat = venue["location"]["coordinates"]
    return user.check_in(venue["id"], lat + offset_m / 111_000, lon, 10, now_iso())


@pytest.fixture
def day(app: Flask, api: Client, owner: Client, other_owner: Client) -> dict[str, Any]:
    """A scripted day: two venues, two offers, five users, tills and a rival merchant."""
    venue_a = owner.create_venue(venue_body(name="A", location=A, checkin_cooldown_minutes=0))
    venue_b = owner.create_venue(venue_body(name="B", location=B, checkin_cooldown_minutes=0))
    coffee = owner.activate_offer(
        owner.create_offer(offer_body([venue_a["id"], venue_b["id"]], title="Coffee"))["id"]
    )
    second = owner.activate_offer(
        owner.create_offer(
            offer_body(
                [venue_a["id"]], title="Second visit", rule={"kind": "nth_visit", "visits": 2}
            )
        )["id"]
    )
    staff = owner.with_token(owner.create_key("staff")["api_key"])
    u1, u2, u3, u4, u5 = (new_user(api) for _ in range(5))

    # Impressions: u1, u2, u3 open the app near A (both offers listed), u4 near B (coffee).
    for user in (u1, u2, u3):
        user.nearby(60.1699, 24.9384, radius_m=200)
    u4.nearby(60.1800, 24.9500, radius_m=200)
    api.nearby(60.1699, 24.9384, radius_m=200)  # anonymous: no impression

    c1 = at(u1, venue_a)  # coffee
    c2 = at(u2, venue_a)  # coffee
    c3 = at(u3, venue_a, offset_m=2_000)  # rejected: outside_geofence
    c4 = at(u4, venue_b)  # coffee
    c5 = at(u1, venue_a)  # second visit: "Second visit" (coffee's per-user cap is spent)
    c6 = u5.check_in(venue_a["id"], 60.1699, 24.9384, 10, now_iso(), mock_location=True)
    assert [len(c["unlocks"]) for c in (c1, c2, c3, c4, c5, c6)] == [1, 1, 0, 1, 1, 0]

    code1, code2, code4 = (c["unlocks"][0]["code"] for c in (c1, c2, c4))
    staff.redeem(code1, venue_a["id"])  # fast, same venue
    staff.redeem(code2, venue_b["id"])  # fast and far: unlocked at A, redeemed at B
    for attempt in (
        lambda: staff.redeem(code1),  # already redeemed
        lambda: staff.redeem("0000-0000-000"),  # unknown
        lambda: other_owner.redeem(code4),  # a rival merchant tries our code
    ):
        with pytest.raises(ApiError):
            attempt()
    # The test runs in one transaction, where now() stands still: place the day in time.
    # Offers go live at 08:00 Helsinki time on 2026-11-20, visits happen at 09:00, and the two
    # redemptions at 09:10 and 17:45.
    for statement in (
        "UPDATE offers SET created_at = '2026-11-20T06:00:00Z'",
        "UPDATE offer_status_changes SET changed_at = '2026-11-20T06:00:00Z'",
        "UPDATE impressions SET created_at = '2026-11-20T07:00:00Z'",
        "UPDATE checkins SET created_at = '2026-11-20T07:00:00Z'",
        "UPDATE unlocks SET created_at = '2026-11-20T07:00:00Z'",
        # the redemptions carry their unlock's time (migration 0023)
        "UPDATE redemptions SET unlocked_at = '2026-11-20T07:00:00Z'",
    ):
        sql(app, statement)
    for code, when in ((code1, "2026-11-20T07:10:00Z"), (code2, "2026-11-20T15:45:00Z")):
        sql(
            app,
            "UPDATE redemptions SET redeemed_at = :when FROM unlocks u"
            " WHERE u.id = redemptions.unlock_id AND u.code = :code",
            when=when,
            code=code.replace("-", ""),
        )
    return {"a": venue_a, "b": venue_b, "coffee": coffee, "second": second, "staff": staff}


def test_funnel_counts_every_step_exactly(owner: Client, day: dict[str, Any]) -> None:
    analyst = owner.with_token(owner.create_key("analyst")["api_key"])
    coffee = analyst.call("GET", f"/v1/analytics/offers/{day['coffee']['id']}/funnel").body
    assert {
        k: coffee[k]
        for k in (
            "impressions",
            "checkins",
            "verified_checkins",
            "unlocks",
            "held_out",
            "redemptions",
        )
    } == {
        "impressions": 4,  # u1, u2, u3 at A and u4 at B
        "checkins": 6,  # every check-in at A or B while it was active
        "verified_checkins": 4,  # u3 outside, u5 mock
        "unlocks": 3,
        "held_out": 0,
        "redemptions": 2,
    }
    assert {
        k: coffee[k]
        for k in ("impressions_with_checkin", "verified_with_unlock", "unlocks_redeemed")
    } == {
        "impressions_with_checkin": 4,  # u1, u2, u3 (rejected, but a check-in) and u4
        "verified_with_unlock": 3,  # c1, c2, c4 (c5 found coffee's per-user cap spent)
        "unlocks_redeemed": 2,
    }
    assert coffee["rates"] == {
        "checkin_per_impression": 1.0,
        "verified_per_checkin": round(4 / 6, 4),
        "unlock_per_verified": 0.75,
        "redemption_per_unlock": round(2 / 3, 4),
    }
    assert coffee["attribution_hours"] == 24
    assert coffee["visitors"] == {"new": 3, "returning": 0}
    # 600 s and 31,500 s from unlock to redemption
    assert coffee["time_to_redeem_s"] == {"median": 16_050.0, "p90": 28_410.0}
    second = analyst.call("GET", f"/v1/analytics/offers/{day['second']['id']}/funnel").body
    assert (
        second["impressions"],
        second["checkins"],
        second["unlocks"],
        second["redemptions"],
    ) == (3, 5, 1, 0)
    # A period before anything happened counts nothing.
    empty = analyst.call(
        "GET",
        f"/v1/analytics/offers/{day['coffee']['id']}/funnel",
        params={"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"},
    ).body
    assert empty["checkins"] == empty["impressions"] == empty["redemptions"] == 0
    assert empty["rates"]["verified_per_checkin"] is None


# Nearby records impressions on its own autocommit connection in production: the tests of
# impressions go through it, on committed data (the `committed_*` fixtures).


def test_an_impression_is_one_user_shown_one_offer_on_one_day(
    committed_app: Flask, committed_api: Client, committed_owner: Client
) -> None:
    app, api, owner = committed_app, committed_api, committed_owner
    # One offer at two venues side by side, and a second offer at one of them.
    a = owner.create_venue(venue_body(name="A", location=A, checkin_cooldown_minutes=0))
    a2 = owner.create_venue(venue_body(name="A2", location=A, checkin_cooldown_minutes=0))
    both = owner.activate_offer(owner.create_offer(offer_body([a["id"], a2["id"]]))["id"])
    one = owner.activate_offer(owner.create_offer(offer_body([a["id"]], title="One"))["id"])
    user, other = new_user(api), new_user(api)
    for _ in range(3):  # the app opened three times, both venues listed each time
        listed = user.nearby(60.1699, 24.9384, radius_m=200)
        assert {v["name"] for v in listed} == {"A", "A2"}
    other.nearby(60.1699, 24.9384, radius_m=200)

    def impressions(offer: dict[str, Any]) -> int:
        return int(owner.offer_funnel(offer["id"])["impressions"])

    assert (impressions(both), impressions(one)) == (2, 2)  # user and other, once each
    days = sql(app, "SELECT DISTINCT day, now() AT TIME ZONE 'Europe/Helsinki' FROM impressions")
    assert [d for d, _ in days] == [days[0][1].date()]  # the venue's local day
    # The next day counts again.
    sql(app, "UPDATE offers SET created_at = created_at - interval '2 days'")
    sql(app, "UPDATE impressions SET day = day - 1, created_at = created_at - interval '1 day'")
    user.nearby(60.1699, 24.9384, radius_m=200)
    assert (impressions(both), impressions(one)) == (3, 3)


def test_the_funnels_rates_are_shares_of_the_step_before(
    committed_app: Flask, committed_api: Client, committed_owner: Client
) -> None:
    app, api, owner = committed_app, committed_api, committed_owner
    venue = owner.create_venue(venue_body(name="A", location=A, checkin_cooldown_minutes=0))
    offer = owner.activate_offer(owner.create_offer(offer_body([venue["id"]]))["id"])
    came, came_late, stayed_home, walked_in = (new_user(api) for _ in range(4))
    for user in (came, came_late, stayed_home):
        user.nearby(60.1699, 24.9384, radius_m=200)
    # Shown the offer three hours ago; `came` checks in now, twice (the second is rejected).
    sql(app, "UPDATE impressions SET created_at = now() - interval '3 hours'")
    sql(app, "UPDATE offers SET created_at = now() - interval '2 days'")
    sql(app, "UPDATE offer_status_changes SET changed_at = now() - interval '2 days'")
    assert at(came, venue)["unlocks"]
    at(came, venue, offset_m=3_000)
    code = at(walked_in, venue)["unlocks"][0]["code"]  # never opened the app
    owner.redeem(code, venue["id"])
    at(came_late, venue)
    # ... `came_late` checked in 30 hours after seeing it: outside the 24 h attribution.
    sql(
        app,
        "UPDATE impressions SET created_at = now() - interval '30 hours'"
        " WHERE user_id = (SELECT user_id FROM checkins WHERE id = :c)",
        c=at(came_late, venue)["id"],
    )
    funnel = owner.offer_funnel(offer["id"])
    assert {
        k: funnel[k]
        for k in (
            "impressions",
            "impressions_with_checkin",
            "checkins",
            "verified_checkins",
            "verified_with_unlock",
            "unlocks",
            "unlocks_redeemed",
            "redemptions",
        )
    } == {
        "impressions": 3,
        "impressions_with_checkin": 1,  # came
        "checkins": 5,  # came twice, walked_in, came_late twice
        "verified_checkins": 4,
        "verified_with_unlock": 3,  # came, walked_in, came_late's first (its second: cap)
        "unlocks": 3,
        "unlocks_redeemed": 1,
        "redemptions": 1,
    }
    assert funnel["rates"] == {
        "checkin_per_impression": round(1 / 3, 4),
        "verified_per_checkin": 0.8,
        "unlock_per_verified": 0.75,
        "redemption_per_unlock": round(1 / 3, 4),
    }
    assert all(0 <= r <= 1 for r in funnel["rates"].values())


def test_checkins_count_only_while_the_offer_was_active(
    app: Flask, api: Client, owner: Client, day: dict[str, Any]
) -> None:
    # The test runs in one transaction, where now() stands still; place the history in time.
    coffee = day["coffee"]["id"]
    owner.pause_offer(coffee)
    paused_visit = at(new_user(api), day["a"])
    owner.activate_offer(coffee)
    sql(app, "UPDATE checkins SET created_at = now() WHERE id <> :id", id=paused_visit["id"])
    sql(
        app,
        "UPDATE offer_status_changes SET changed_at = now() + make_interval(mins => r.n::int)"
        " FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM offer_status_changes"
        "       WHERE offer_id = :o) r WHERE r.seq = offer_status_changes.seq",
        o=coffee,
    )  # draft +1 min, active +2, paused +3, active again +4
    sql(
        app,
        "UPDATE checkins SET created_at = created_at + interval '210 seconds' WHERE id = :id",
        id=paused_visit["id"],
    )
    funnel = owner.call("GET", f"/v1/analytics/offers/{coffee}/funnel").body
    assert funnel["checkins"] == 0  # everything else happened before it was active (+2 min)
    sql(
        app,
        "UPDATE checkins SET created_at = created_at + interval '5 minutes' WHERE id <> :id",
        id=paused_visit["id"],
    )
    funnel = owner.call("GET", f"/v1/analytics/offers/{coffee}/funnel").body
    assert funnel["checkins"] == 6  # the visit while paused does not count


def test_redemptions_by_day_hour_venue_offer_and_csv(owner: Client, day: dict[str, Any]) -> None:
    def report(**params: Any) -> Any:
        return owner.call("GET", "/v1/analytics/redemptions", params=params).body

    assert report(group_by="day")["rows"] == [{"day": "2026-11-20", "redemptions": 2}]
    assert report(group_by="hour")["rows"] == [
        {"hour": "2026-11-20T09:00", "redemptions": 1},
        {"hour": "2026-11-20T17:00", "redemptions": 1},
    ]
    by_venue = {r["venue_name"]: r["redemptions"] for r in report(group_by="venue")["rows"]}
    assert by_venue == {"A": 1, "B": 1}
    assert report(group_by="offer")["rows"] == [
        {"offer_id": day["coffee"]["id"], "offer_title": "Coffee", "redemptions": 2}
    ]
    assert report(group_by="day", to="2026-11-20T12:00:00Z")["rows"] == [
        {"day": "2026-11-20", "redemptions": 1}
    ]
    csv_text = owner.call(
        "GET", "/v1/analytics/redemptions", params={"group_by": "hour", "format": "csv"}
    ).text
    assert csv_text == "hour,redemptions\n2026-11-20T09:00,1\n2026-11-20T17:00,1\n"
    via_accept = owner.call(
        "GET",
        "/v1/analytics/redemptions",
        params={"group_by": "venue"},
        headers={"Accept": "text/csv"},
    )
    assert via_accept.headers["Content-Type"].startswith("text/csv")
    assert via_accept.text.splitlines()[0] == "venue_id,venue_name,redemptions"


def test_another_merchants_live_code_is_unknown_in_the_callers_leak_report(
    api: Client, owner: Client, other_owner: Client
) -> None:
    venue = owner.create_venue(venue_body())
    owner.activate_offer(owner.create_offer(offer_body([venue["id"]]))["id"])
    live = at(new_user(api), venue)["unlocks"][0]["code"]
    rivals = other_owner.create_venue(venue_body(name="Rival"))
    rival_offer = other_owner.create_offer(offer_body([rivals["id"]]))

    # The rival types our live code, then a code never issued: the same answer each time ...
    refusals = []
    for code in (live, "0000-0000-000"):
        with pytest.raises(ApiError) as refused:
            other_owner.redeem(code, rivals["id"])
        error = refused.value
        refusals.append((error.status, error.code, error.title, error.detail))
    assert refusals[0] == refusals[1] == (404, "not_found", refusals[0][2], "no such code")
    # ... and the same count in its leak report, whole or for one of its offers.
    theirs = other_owner.leak_report()
    assert theirs["refused_attempts"] == {
        "already_redeemed": 0,
        "expired": 0,
        "unknown": 2,
        "wrong_venue": 0,
    }
    assert theirs["codes_tried_by_other_merchants"] == 0
    one_offer = other_owner.leak_report(offer_id=rival_offer["id"])["refused_attempts"]
    assert one_offer["unknown"] == 0
    # Our report, the code's merchant's, says one of our codes was tried elsewhere.
    ours = owner.leak_report()
    assert ours["codes_tried_by_other_merchants"] == 1
    assert sum(ours["refused_attempts"].values()) == 0


def test_csv_cells_never_start_a_formula(api: Client, owner: Client) -> None:
    # A colleague's owner key names a venue and an offer to run in an analyst's spreadsheet.
    venue = owner.create_venue(venue_body(name='=HYPERLINK("http://evil.example","Report")'))
    offer = owner.activate_offer(
        owner.create_offer(offer_body([venue["id"]], title="@SUM(1+1)*cmd|' /C calc'!A0"))["id"]
    )
    code = at(new_user(api), venue)["unlocks"][0]["code"]
    owner.redeem(code, venue["id"])
    by_venue = owner.redemption_report_csv("venue")
    assert by_venue.splitlines()[1] == (
        f'{venue["id"]},"\'=HYPERLINK(""http://evil.example"",""Report"")",1'
    )
    by_offer = owner.redemption_report_csv("offer")
    assert by_offer.splitlines()[1] == f"{offer['id']},'@SUM(1+1)*cmd|' /C calc'!A0,1"


def test_leak_report(owner: Client, day: dict[str, Any]) -> None:
    leaks = owner.call("GET", "/v1/analytics/leaks").body
    assert leaks["redemptions"] == 2
    assert leaks["backed_by_verified_checkin"] == 2 and leaks["backed_share"] == 1.0
    assert leaks["refused_attempts"] == {
        "already_redeemed": 1,
        "expired": 0,
        "unknown": 1,
        "wrong_venue": 0,
    }
    assert leaks["codes_tried_by_other_merchants"] == 1
    assert leaks["suspicious"]["far"] == 1
    assert leaks["suspicious"]["fast"] == 0
    fast = owner.call("GET", "/v1/analytics/leaks", params={"fast_seconds": 601}).body
    assert fast["suspicious"]["fast"] == 1
    assert leaks["rejected_checkins"] == {"mock_location": 1, "outside_geofence": 1}
    only_second = owner.call(
        "GET", "/v1/analytics/leaks", params={"offer_id": day["second"]["id"]}
    ).body
    assert only_second["redemptions"] == 0


def test_offer_health_flags_unredeemed_and_mistrusted_offers(
    app: Flask, api: Client, owner: Client
) -> None:
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    offer = owner.activate_offer(owner.create_offer(offer_body([venue["id"]]))["id"])
    health = owner.call("GET", f"/v1/analytics/offers/{offer['id']}/health").body
    assert health["healthy"] and health["flags"] == []
    users = [new_user(api) for _ in range(20)]
    for user in users:
        assert at(user, venue)["unlocks"]
    for user in users[:12]:
        at(user, venue, offset_m=3_000)  # 12 rejected of 32, but every one of them got in
    health = owner.call("GET", f"/v1/analytics/offers/{offer['id']}/health").body
    assert [f["code"] for f in health["flags"]] == ["unlocks_not_redeemed"]
    turned_away = [new_user(api) for _ in range(21)]
    for user in turned_away:
        at(user, venue, offset_m=3_000)  # 21 of 41 people never got in
    listed = owner.call("GET", "/v1/analytics/offers/health").body["offers"]
    [mine] = [o for o in listed if o["offer_id"] == offer["id"]]
    assert [f["code"] for f in mine["flags"]] == ["unlocks_not_redeemed", "high_rejection_rate"]
    assert (mine["checkins"], mine["rejected_checkins"]) == (53, 33)
    assert mine["rejection_rate"] == round(33 / 53, 4)
    assert (mine["checkin_users"], mine["turned_away_users"]) == (41, 21)
    assert mine["turned_away_rate"] == round(21 / 41, 4)


def test_one_stranger_cannot_raise_the_rejection_flag(api: Client, owner: Client) -> None:
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    offer = owner.activate_offer(owner.create_offer(offer_body([venue["id"]]))["id"])

    def flags() -> list[str]:
        health = owner.call("GET", f"/v1/analytics/offers/{offer['id']}/health").body
        return [f["code"] for f in health["flags"]]

    regulars = [new_user(api) for _ in range(10)]
    for user in regulars:
        at(user, venue)
    stranger = new_user(api)
    for _ in range(10):  # ten rejected check-ins: half of the 20 check-ins at the venue
        at(stranger, venue, offset_m=3_000)
    assert flags() == []  # 11 people: too few to judge
    for user in (new_user(api) for _ in range(9)):
        at(user, venue)
    for _ in range(30):  # 40 of 59 check-ins rejected, but one person of 20
        at(stranger, venue, offset_m=3_000)
    assert flags() == []


def test_roles_for_analytics(owner: Client, other_owner: Client, day: dict[str, Any]) -> None:
    analyst = owner.with_token(owner.create_key("analyst")["api_key"])
    assert analyst.call("GET", "/v1/analytics/leaks").status == 200
    with pytest.raises(ApiError) as err:
        analyst.list_venues()
    assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        day["staff"].call("GET", "/v1/analytics/redemptions")
    assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        other_owner.call("GET", f"/v1/analytics/offers/{day['coffee']['id']}/funnel")
    assert err.value.status == 404


# ---- lift on simulated data of known effect --------------------------------------------------


def simulate(app: Flask, owner: Client, n: int, p_treat: float, p_ctrl: float) -> dict[str, Any]:
    """n users per group, first eligible visit 60 days ago, returns drawn with known rates."""
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    offer = owner.activate_offer(
        owner.create_offer(offer_body([venue["id"]], holdout_pct=50))["id"]
    )
    rng = random.Random(42)
    t0 = datetime.now(UTC) - timedelta(days=60)
    users, checkins, unlocks, holdouts = [], [], [], []
    returned = {False: 0, True: 0}
    for i in range(2 * n):
        held_out = i % 2 == 1
        user_id, first = uuid.uuid4(), uuid.uuid4()
        users.append({"id": user_id, "handle": f"sim{i}_{secrets.token_hex(3)}"})
        checkins.append({"id": first, "user_id": user_id, "at": t0 + timedelta(minutes=i)})
        if held_out:
            holdouts.append({"checkin_id": first, "user_id": user_id})
        else:
            unlocks.append(
                {
                    "id": uuid.uuid4(),
                    "checkin_id": first,
                    "user_id": user_id,
                    "code": secrets.token_hex(5).upper(),
                }
            )
        if rng.random() < (p_ctrl if held_out else p_treat):
            returned[held_out] += 1
            checkins.append(
                {
                    "id": uuid.uuid4(),
                    "user_id": user_id,
                    "at": t0 + timedelta(days=rng.randint(1, 29)),
                }
            )
        elif rng.random() < 0.5:  # a return after the window does not count
            checkins.append(
                {
                    "id": uuid.uuid4(),
                    "user_id": user_id,
                    "at": t0 + timedelta(days=rng.randint(31, 55)),
                }
            )
    _insert_history(app, venue["id"], offer["id"], users, checkins, unlocks, holdouts)
    return {"offer": offer, "returned": returned}


def _insert_history(
    app: Flask,
    venue_id: str,
    offer_id: str,
    users: list[dict[str, Any]],
    checkins: list[dict[str, Any]],
    unlocks: list[dict[str, Any]],
    holdouts: list[dict[str, Any]],
) -> None:
    """Users, their verified check-ins at the venue, and the unlocks and holdouts of the offer."""
    venue, offer = {"id": venue_id}, {"id": offer_id}
    with app.app_context():
        session = db.session()
        session.execute(
            text("INSERT INTO users (id, handle, password_hash) VALUES (:id, :handle, 'x')"),
            users,
        )
        session.execute(
            text(
                "INSERT INTO checkins (id, user_id, venue_id, location, accuracy_m, observed_at,"
                " mock_location, presence_code_sent, status, created_at)"
                " VALUES (:id, :user_id, :venue, ST_GeogFromText('POINT(24.9384 60.1699)'), 10,"
                " :at, false, false, 'verified', :at)"
            ),
            [{**c, "venue": venue["id"]} for c in checkins],
        )
        session.execute(
            text(
                "INSERT INTO unlocks (id, offer_id, user_id, checkin_id, venue_id, merchant_id,"
                " code, created_at, expires_at, proof) SELECT :id, :offer, :user_id, :checkin_id,"
                " :venue, o.merchant_id, :code, c.created_at, c.created_at + interval '1 day',"
                " c.proof"
                " FROM offers o, checkins c WHERE o.id = :offer AND c.id = :checkin_id"
            ),
            [{**u, "offer": offer["id"], "venue": venue["id"]} for u in unlocks],
        )
        session.execute(
            text(
                "INSERT INTO holdouts (checkin_id, offer_id, user_id, created_at)"
                " SELECT :checkin_id, :offer, :user_id, c.created_at FROM checkins c"
                " WHERE c.id = :checkin_id"
            ),
            [{**h, "offer": offer["id"]} for h in holdouts],
        )
        session.commit()


def test_lift_recovers_a_known_effect(app: Flask, owner: Client) -> None:
    n = 400
    sim = simulate(app, owner, n, p_treat=0.55, p_ctrl=0.30)
    lift = owner.call("GET", f"/v1/analytics/offers/{sim['offer']['id']}/lift").body
    treated, control = sim["returned"][False], sim["returned"][True]
    assert lift["treatment"] == {
        "users": n,
        "pending": 0,
        "measured": n,
        "returned": treated,
        "return_rate": round(treated / n, 4),
    }
    assert lift["control"] == {
        "users": n,
        "pending": 0,
        "measured": n,
        "returned": control,
        "return_rate": round(control / n, 4),
    }
    assert lift["lift"] == round(treated / n - control / n, 4)
    low, high = lift["ci95"]
    assert low < 0.25 < high  # the true effect is inside the interval
    assert low > 0  # and the interval excludes "no effect"
    expected = newcombe_difference(treated, n, control, n)
    assert [low, high] == [round(expected[0], 4), round(expected[1], 4)]
    short = owner.call(
        "GET", f"/v1/analytics/offers/{sim['offer']['id']}/lift", params={"window_days": 90}
    ).body
    # A 90-day window has not ended for anyone: all assigned, all pending, nothing measured.
    assert short["treatment"] == {
        "users": n,
        "pending": n,
        "measured": 0,
        "returned": 0,
        "return_rate": None,
    }
    assert short["lift"] is None and short["ci95"] is None


def test_lift_counts_pending_users_as_assigned_but_measures_only_ended_windows(
    app: Flask, owner: Client
) -> None:
    """Per group: users whose 30-day window ended (60 days ago) and users still inside it (5
    days ago), some of whom already came back. `users` counts both; the rates, the lift and its
    interval only the first."""
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    offer = owner.activate_offer(
        owner.create_offer(offer_body([venue["id"]], holdout_pct=50))["id"]
    )
    now = datetime.now(UTC)
    # (held out, first eligible visit days ago, days after it of a return visit or None)
    people = (
        [(False, 60, 3)] * 6
        + [(False, 60, None)] * 3
        + [(False, 60, 40)]  # came back after the window: not a return
        + [(False, 5, 2)] * 3  # pending, already back: not counted yet
        + [(False, 5, None)]
        + [(True, 60, 10)] * 3
        + [(True, 60, None)] * 7
        + [(True, 5, None)] * 2
    )
    users, checkins, unlocks, holdouts = [], [], [], []
    for i, (held_out, ago, back) in enumerate(people):
        user_id, first = uuid.uuid4(), uuid.uuid4()
        t0 = now - timedelta(days=ago, minutes=i)
        users.append({"id": user_id, "handle": f"p{i}_{secrets.token_hex(3)}"})
        checkins.append({"id": first, "user_id": user_id, "at": t0})
        if back is not None:
            checkins.append({"id": uuid.uuid4(), "user_id": user_id, "at": t0 + timedelta(back)})
        if held_out:
            holdouts.append({"checkin_id": first, "user_id": user_id})
        else:
            code = secrets.token_hex(5).upper()
            unlocks.append(
                {"id": uuid.uuid4(), "checkin_id": first, "user_id": user_id, "code": code}
            )
    _insert_history(app, venue["id"], offer["id"], users, checkins, unlocks, holdouts)

    lift = owner.offer_lift(offer["id"])
    assert lift["treatment"] == {
        "users": 14,
        "pending": 4,
        "measured": 10,
        "returned": 6,
        "return_rate": 0.6,
    }
    assert lift["control"] == {
        "users": 12,
        "pending": 2,
        "measured": 10,
        "returned": 3,
        "return_rate": 0.3,
    }
    assert lift["lift"] == 0.3
    low, high = newcombe_difference(6, 10, 3, 10)
    assert lift["ci95"] == [round(low, 4), round(high, 4)]


def test_lift_of_an_offer_without_data(owner: Client) -> None:
    venue = owner.create_venue(venue_body())
    offer = owner.create_offer(offer_body([venue["id"]]))
    lift = owner.call("GET", f"/v1/analytics/offers/{offer['id']}/lift").body
    assert lift["lift"] is None and lift["ci95"] is None
    assert lift["treatment"]["users"] == 0


# ---- analysts' SQL access ------------------------------------------------------------------


def test_analyst_role_reads_the_views_and_nothing_else(
    engine: Engine, app: Flask, owner: Client, day: dict[str, Any]
) -> None:
    with app.app_context():
        session = db.session()
        session.execute(text("SET LOCAL ROLE checkin_offers_analyst"))
        rows = session.execute(
            text("SELECT status, reason_codes, venue_name FROM analytics.checkins")
        ).all()
        assert len(rows) == 6
        assert session.execute(text("SELECT count(*) FROM analytics.unlocks")).scalar() == 4
        attempts = (
            session.execute(
                text("SELECT outcome FROM analytics.redemption_attempts ORDER BY outcome")
            )
            .scalars()
            .all()
        )
        assert attempts == ["already_redeemed", "other_merchant", "redeemed", "redeemed", "unknown"]
        for forbidden in (
            "SELECT secret_hash FROM api_keys",
            "SELECT password_hash FROM users",
            "SELECT code FROM unlocks",
            "SELECT presence_secret FROM venues",
            "UPDATE checkins SET status = 'verified'",
            "INSERT INTO impressions (user_id, venue_id, offer_id)"
            " SELECT user_id, venue_id, offer_id FROM analytics.impressions",
            "CREATE TABLE analytics.mine (x int)",
        ):
            savepoint = session.begin_nested()
            with pytest.raises(ProgrammingError, match="permission denied"):
                session.execute(text(forbidden))
            savepoint.rollback()
        for write in (
            "DELETE FROM analytics.checkins",
            "UPDATE analytics.unlocks SET user_id = NULL",
        ):
            savepoint = session.begin_nested()
            with pytest.raises(DBAPIError):  # not updatable, and no privilege
                session.execute(text(write))
            savepoint.rollback()
        columns = session.execute(
            text(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = 'analytics'"
            )
        ).all()
        assert not {c for _, c in columns} & {
            "code",
            "secret_hash",
            "password_hash",
            "presence_secret",
        }


# ---- the owner's summary ---------------------------------------------------------------------


def test_summary_counts_the_period_beside_the_one_before(
    owner: Client, other_owner: Client, day: dict[str, Any]
) -> None:
    analyst = owner.with_token(owner.create_key("analyst")["api_key"])
    the_day = {"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"}
    s = analyst.call("GET", "/v1/analytics/summary", params=the_day).body
    assert (s["from"], s["to"]) == ("2026-11-20T00:00:00+00:00", "2026-11-21T00:00:00+00:00")
    assert (s["previous_from"], s["previous_to"]) == (
        "2026-11-19T00:00:00+00:00",
        "2026-11-20T00:00:00+00:00",
    )
    cur = s["current"]
    assert {k: cur[k] for k in ("visitors", "verified_checkins", "unlocks", "redemptions")} == {
        "visitors": 3,  # u1, u2, u4 (u3 outside the fence, u5 a mock location)
        "verified_checkins": 4,  # c1, c2, c4, c5
        "unlocks": 4,  # coffee for u1, u2, u4; second visit for u1
        "redemptions": 2,
    }
    assert cur["unlocks_redeemed"] == 2 and cur["redemption_rate"] == 0.5
    assert cur["lift"] is None and cur["ci95"] is None  # no offer has a holdout
    assert s["previous"]["visitors"] == 0
    assert s["changes"]["visitors"] == {"change": 3, "change_rate": None}  # from nothing

    # Per offer, to compare them side by side.
    offers = {o["title"]: o for o in s["offers"]}
    assert (offers["Coffee"]["current"]["unlocks"], offers["Coffee"]["current"]["redemptions"]) == (
        3,
        2,
    )
    assert offers["Coffee"]["current"]["redemption_rate"] == round(2 / 3, 4)
    assert offers["Second visit"]["current"]["redemptions"] == 0
    assert offers["Coffee"]["current"]["verified_checkins"] is None
    assert cur["cost"] is None and cur["cost_per_verified_visit"] is None  # no value stated

    # What a redemption costs: coffee's two cost 2.50 each, over four verified visits.
    patched = owner.call(
        "PATCH", f"/v1/offers/{day['coffee']['id']}", {"value_per_redemption": 2.504}
    ).body
    assert patched["value_per_redemption"] == 2.5  # kept to the cent
    with pytest.raises(ApiError) as err:
        owner.call("PATCH", f"/v1/offers/{day['coffee']['id']}", {"value_per_redemption": -1})
    assert err.value.status == 422 and "value_per_redemption" in err.value.errors
    costed = analyst.call("GET", "/v1/analytics/summary", params=the_day).body
    assert costed["current"]["cost"] == 5.0
    assert costed["current"]["cost_per_verified_visit"] == 1.25
    assert costed["current"]["cost_per_redemption"] == 2.5
    by_title = {o["title"]: o for o in costed["offers"]}
    assert by_title["Coffee"]["current"]["cost"] == 5.0
    assert by_title["Second visit"]["current"]["cost"] is None

    # The day after: nothing happened, and the change says what was lost.
    after = analyst.call(
        "GET",
        "/v1/analytics/summary",
        params={"from": "2026-11-21T00:00:00Z", "to": "2026-11-22T00:00:00Z"},
    ).body
    assert after["current"]["redemptions"] == 0 and after["previous"]["redemptions"] == 2
    assert after["changes"]["redemptions"] == {"change": -2, "change_rate": -1.0}
    assert after["changes"]["redemption_rate"] == {"change": None, "change_rate": None}

    # One venue: B saw u4's check-in and unlock, and code2 redeemed there (earned at A).
    at_b = analyst.call(
        "GET", "/v1/analytics/summary", params={**the_day, "venue_id": day["b"]["id"]}
    ).body
    assert {
        k: at_b["current"][k]
        for k in ("visitors", "verified_checkins", "unlocks", "unlocks_redeemed", "redemptions")
    } == {
        "visitors": 1,
        "verified_checkins": 1,
        "unlocks": 1,
        "unlocks_redeemed": 0,
        "redemptions": 1,
    }

    # Another merchant's venue is not found; a backwards or too long period is refused.
    with pytest.raises(ApiError) as err:
        other_owner.call("GET", "/v1/analytics/summary", params={"venue_id": day["a"]["id"]})
    assert err.value.status == 404
    for params, field in (
        ({"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, "to"),
        ({"from": "2024-01-01T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, "from"),
    ):
        with pytest.raises(ApiError) as err:
            analyst.call("GET", "/v1/analytics/summary", params=params)
        assert err.value.status == 422 and field in err.value.errors, err.value.errors
    with pytest.raises(ApiError) as err:
        day["staff"].call("GET", "/v1/analytics/summary")
    assert err.value.status == 403


def test_summary_lift_pools_offers_first_eligible_in_the_period(app: Flask, owner: Client) -> None:
    n = 150
    sim = simulate(app, owner, n, p_treat=0.55, p_ctrl=0.30)
    lift = owner.call("GET", f"/v1/analytics/offers/{sim['offer']['id']}/lift").body
    now = datetime.now(UTC)
    period = {
        "from": (now - timedelta(days=90)).isoformat(),
        "to": (now - timedelta(days=45)).isoformat(),
    }
    s = owner.call("GET", "/v1/analytics/summary", params=period).body
    assert s["current"]["treatment"] == lift["treatment"]
    assert s["current"]["control"] == lift["control"]
    assert (s["current"]["lift"], s["current"]["ci95"]) == (lift["lift"], lift["ci95"])
    [offer] = s["offers"]
    assert offer["current"]["lift"] == lift["lift"]
    # The period before saw nobody's first visit: no lift, and no change to speak of.
    assert s["previous"]["lift"] is None
    assert s["changes"]["lift"] == {"change": None, "change_rate": None}
