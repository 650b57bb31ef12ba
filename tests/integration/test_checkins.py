"""Check-ins: the server's verdict, what a visit unlocks, codes, the wallet and redemption."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from api import db
from mobile_stub.client import ApiError, Client
from offers import codes
from offers.engine import in_holdout
from tests.factories import offer_body, venue_body

LAT, LON = 60.1699, 24.9384


def now_iso(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).isoformat()


@pytest.fixture
def venue(owner: Client) -> dict[str, Any]:
    venue: dict[str, Any] = owner.create_venue(venue_body(radius_m=50, checkin_cooldown_minutes=0))
    return venue


def live_offer(owner: Client, venue_ids: list[str], **fields: Any) -> dict[str, Any]:
    offer = owner.create_offer(offer_body(venue_ids, **fields))
    return owner.activate_offer(offer["id"])


def new_user(api: Client) -> Client:
    return api.with_token(api.create_user(f"u{secrets.token_hex(5)}", "pass-word-1")["token"])


def visit(user: Client, venue: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    lon, lat = venue["location"]["coordinates"]
    return user.check_in(venue["id"], lat, lon, 10, now_iso(), **kwargs)


def rows(app: Flask, sql: str, **params: Any) -> list[Any]:
    with app.app_context():
        return list(db.session().execute(text(sql), params).all())


def test_a_visit_unlocks_a_unique_code_shown_in_the_wallet(
    owner: Client, mobile: Client, venue: dict[str, Any]
) -> None:
    offer = live_offer(owner, [venue["id"]], code_ttl_minutes=30)
    checkin = visit(mobile, venue)
    assert checkin["status"] == "verified" and checkin["reasons"] == []
    [unlock] = checkin["unlocks"]
    assert unlock["offer_id"] == offer["id"] and unlock["title"] == "Free coffee"
    assert codes.normalize(unlock["code"]) is not None
    assert unlock["qr_payload"].endswith(codes.normalize(unlock["code"]) or "?")
    expires = datetime.fromisoformat(unlock["expires_at"])
    assert timedelta(minutes=25) < expires - datetime.now(UTC) <= timedelta(minutes=30)
    [entry] = mobile.wallet()
    assert entry["status"] == "active" and entry["code"] == unlock["code"]
    assert mobile.wallet("redeemed") == []


def test_a_user_two_km_away_is_rejected_and_the_rejection_is_recorded(
    app: Flask, owner: Client, mobile: Client, venue: dict[str, Any]
) -> None:
    live_offer(owner, [venue["id"]])
    far = mobile.check_in(venue["id"], LAT + 0.018, LON, 10, now_iso())  # ~2 km north
    assert far["status"] == "rejected" and far["unlocks"] == []
    assert [r["code"] for r in far["reasons"]] == ["outside_geofence"]
    [row] = rows(app, "SELECT status, reason_codes FROM checkins WHERE id = :id", id=far["id"])
    assert row.status == "rejected" and row.reason_codes == ["outside_geofence"]
    assert mobile.wallet() == []


def test_every_reason_is_listed(owner: Client, mobile: Client, venue: dict[str, Any]) -> None:
    result = mobile.check_in(
        venue["id"],
        LAT + 0.018,
        LON,
        500,
        now_iso(-timedelta(minutes=10)),
        mock_location=True,
        presence_code="000000x",
    )
    assert {r["code"] for r in result["reasons"]} >= {
        "outside_geofence",
        "low_accuracy",
        "stale_fix",
        "mock_location",
        "presence_code_invalid",
    }
    assert all(r["detail"] for r in result["reasons"])


def test_cooldown_rejects_a_second_visit_too_soon(owner: Client, mobile: Client) -> None:
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=60))
    assert visit(mobile, venue)["status"] == "verified"
    again = visit(mobile, venue)
    assert [r["code"] for r in again["reasons"]] == ["too_soon"]


def test_nth_visit_and_first_visit(owner: Client, mobile: Client, venue: dict[str, Any]) -> None:
    first = live_offer(owner, [venue["id"]], title="Welcome", rule={"kind": "first_visit"})
    third = live_offer(
        owner,
        [venue["id"]],
        title="Third",
        per_user_cap=5,
        rule={"kind": "nth_visit", "visits": 3, "repeat": True},
    )
    titles = [[u["title"] for u in visit(mobile, venue)["unlocks"]] for _ in range(6)]
    assert titles == [["Welcome"], [], ["Third"], [], [], ["Third"]]
    assert {first["id"], third["id"]} == {u["offer_id"] for u in mobile.wallet()}


def test_paused_and_scheduled_offers_do_not_unlock(
    owner: Client, mobile: Client, venue: dict[str, Any]
) -> None:
    paused = live_offer(owner, [venue["id"]], title="Paused")
    owner.pause_offer(paused["id"])
    live_offer(owner, [venue["id"]], title="Later", starts_at=now_iso(timedelta(hours=1)))
    live_offer(
        owner,
        [venue["id"]],
        title="Over",
        # the test transaction's now() is when the test began: leave a margin
        ends_at=now_iso(-timedelta(minutes=10)),
        starts_at=now_iso(-timedelta(hours=1)),
    )
    assert visit(mobile, venue)["unlocks"] == []


def test_total_cap_and_per_user_cap(api: Client, owner: Client, venue: dict[str, Any]) -> None:
    offer = live_offer(owner, [venue["id"]], total_cap=2, per_user_cap=1)
    alice, bob, carol = new_user(api), new_user(api), new_user(api)
    assert len(visit(alice, venue)["unlocks"]) == 1
    assert visit(alice, venue)["unlocks"] == []  # per-user cap
    assert len(visit(bob, venue)["unlocks"]) == 1
    assert visit(carol, venue)["unlocks"] == []  # total cap
    assert owner.get_offer(offer["id"])["unlocked_count"] == 2


def test_presence_code_required_and_checked(
    owner: Client, mobile: Client, venue: dict[str, Any]
) -> None:
    live_offer(owner, [venue["id"]], requires_presence_code=True, per_user_cap=3)
    assert visit(mobile, venue)["unlocks"] == []  # verified, but the offer needs the code
    code = owner.presence_code(venue["id"])["code"]
    assert len(visit(mobile, venue, presence_code=code)["unlocks"]) == 1
    wrong = "000000" if code != "000000" else "111111"
    rejected = visit(mobile, venue, presence_code=wrong)
    assert [r["code"] for r in rejected["reasons"]] == ["presence_code_invalid"]


def test_holdout_is_deterministic_recorded_and_uses_no_cap(
    app: Flask, api: Client, owner: Client, venue: dict[str, Any]
) -> None:
    offer = live_offer(owner, [venue["id"]], holdout_pct=50, total_cap=100)
    outcomes = {}
    for _ in range(12):
        user = new_user(api)
        result = visit(user, venue)
        user_id = rows(app, "SELECT user_id FROM checkins WHERE id = :id", id=result["id"])[0][0]
        held = in_holdout(user_id, uuid.UUID(offer["id"]), 50)
        outcomes[user_id] = held
        if held:
            assert result["unlocks"] == [] and result["held_out"] == [offer["id"]]
        else:
            assert len(result["unlocks"]) == 1 and result["held_out"] == []
    assert set(outcomes.values()) == {True, False}  # 12 users: both groups occur
    held_rows = rows(app, "SELECT user_id FROM holdouts WHERE offer_id = :o", o=offer["id"])
    assert {r[0] for r in held_rows} == {u for u, held in outcomes.items() if held}
    assert owner.get_offer(offer["id"])["unlocked_count"] == sum(
        1 for held in outcomes.values() if not held
    )


def test_a_group_unlocks_for_every_member(
    api: Client, owner: Client, venue: dict[str, Any]
) -> None:
    live_offer(owner, [venue["id"]], rule={"kind": "group", "min_people": 3, "within_minutes": 10})
    friends = [new_user(api) for _ in range(3)]
    assert visit(friends[0], venue)["unlocks"] == []
    assert visit(friends[1], venue)["unlocks"] == []
    assert len(visit(friends[2], venue)["unlocks"]) == 1
    assert [len(f.wallet()) for f in friends] == [1, 1, 1]
    late = new_user(api)
    assert len(visit(late, venue)["unlocks"]) == 1  # joins the complete group
    assert [len(f.wallet()) for f in friends] == [1, 1, 1]  # nobody gets it twice


def test_top_visitor(api: Client, owner: Client, venue: dict[str, Any]) -> None:
    live_offer(
        owner,
        [venue["id"]],
        rule={"kind": "top_visitor", "window_days": 30, "min_visits": 1},
        per_user_cap=10,
    )
    regular, rival = new_user(api), new_user(api)
    assert len(visit(regular, venue)["unlocks"]) == 1  # the only visitor is the top one
    assert visit(rival, venue)["unlocks"] == []  # tied: no winner
    assert len(visit(regular, venue)["unlocks"]) == 1


def test_a_first_time_visitor_is_not_the_top_visitor_by_default(
    api: Client, owner: Client, venue: dict[str, Any]
) -> None:
    offer = live_offer(owner, [venue["id"]], rule={"kind": "top_visitor"}, per_user_cap=10)
    assert offer["rule"] == {"kind": "top_visitor"}  # stored as sent: min_visits defaults to 2
    newcomer, regular = new_user(api), new_user(api)
    assert visit(newcomer, venue)["unlocks"] == []  # alone, but once is not a regular
    assert visit(regular, venue)["unlocks"] == []
    assert len(visit(regular, venue)["unlocks"]) == 1  # twice, and more than anyone
    assert visit(newcomer, venue)["unlocks"] == []  # twice too, but tied
    [listed] = newcomer.nearby(LAT, LON, radius_m=100)
    assert listed["offers"][0]["unlock"] == (
        "Be the most frequent visitor over 60 days, with at least 2 visits"
    )


def test_top_visitor_min_visits_is_checked(owner: Client, venue: dict[str, Any]) -> None:
    three = owner.create_offer(
        offer_body([venue["id"]], rule={"kind": "top_visitor", "window_days": 7, "min_visits": 3})
    )
    assert three["rule"] == {"kind": "top_visitor", "window_days": 7, "min_visits": 3}
    for rule in (
        {"kind": "top_visitor", "min_visits": 0},
        {"kind": "top_visitor", "min_visits": 1001},
        {"kind": "top_visitor", "min_visits": "2"},
        {"kind": "every_checkin", "min_visits": 2},
        {"kind": "nth_visit", "visits": 3, "min_visits": 2},
    ):
        with pytest.raises(ApiError) as err:
            owner.create_offer(offer_body([venue["id"]], rule=rule))
        assert (err.value.status, err.value.code) == (422, "validation_error"), rule
        assert "min_visits" in str(err.value.errors), rule


def test_unknown_venue_is_404_and_records_nothing(app: Flask, mobile: Client) -> None:
    with pytest.raises(ApiError) as err:
        mobile.check_in(str(uuid.uuid4()), LAT, LON, 10, now_iso())
    assert err.value.status == 404
    assert rows(app, "SELECT count(*) FROM checkins")[0][0] == 0


@pytest.mark.parametrize(
    "change",
    [
        {"lat": 91},
        {"lon": -181},
        {"accuracy_m": 0},
        {"accuracy_m": "ten"},
        {"observed_at": "yesterday"},
        {"observed_at": "2026-01-01T00:00:00"},
        {"mock_location": "no"},
        {"venue_id": "x"},
        {"speed": 3},
    ],
)
def test_bad_checkins_are_422(
    app: Flask, mobile: Client, venue: dict[str, Any], change: dict[str, Any]
) -> None:
    body = {
        "venue_id": venue["id"],
        "lat": LAT,
        "lon": LON,
        "accuracy_m": 10,
        "observed_at": now_iso(),
        **change,
    }
    with pytest.raises(ApiError) as err:
        mobile.call("POST", "/v1/checkins", body)
    assert err.value.status == 422
    assert rows(app, "SELECT count(*) FROM checkins")[0][0] == 0


def test_checkins_need_a_user_token(owner: Client, venue: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as err:
        visit(owner, venue)
    assert err.value.status == 401


def test_idempotent_retry_replays_and_changes_nothing(
    app: Flask, owner: Client, mobile: Client, venue: dict[str, Any]
) -> None:
    live_offer(owner, [venue["id"]], per_user_cap=5)
    lon, lat = venue["location"]["coordinates"]
    observed = now_iso()
    first = mobile.check_in(venue["id"], lat, lon, 10, observed, idempotency_key="k1")
    again = mobile.check_in(venue["id"], lat, lon, 10, observed, idempotency_key="k1")
    assert again == first
    assert rows(app, "SELECT count(*) FROM checkins")[0][0] == 1
    assert len(mobile.wallet()) == 1
    with pytest.raises(ApiError) as err:
        mobile.check_in(venue["id"], lat, lon, 11, observed, idempotency_key="k1")
    assert (err.value.status, err.value.code) == (422, "idempotency_key_reused")
    other = mobile.check_in(venue["id"], lat, lon, 10, observed, idempotency_key="k2")
    assert other["id"] != first["id"]


# ---- redemption ----------------------------------------------------------------------------


@pytest.fixture
def staff(owner: Client) -> Client:
    return owner.with_token(owner.create_key("staff", "till")["api_key"])


def unlock_code(owner: Client, mobile: Client, venue: dict[str, Any], **fields: Any) -> str:
    live_offer(owner, [venue["id"]], **fields)
    code: str = visit(mobile, venue)["unlocks"][0]["code"]
    return code


def test_staff_redeem_exactly_once(
    app: Flask, owner: Client, staff: Client, mobile: Client, venue: dict[str, Any]
) -> None:
    code = unlock_code(owner, mobile, venue)
    typed = code.lower().replace("-", " ")
    redemption = staff.redeem(typed, venue["id"])
    assert redemption["title"] == "Free coffee"
    with pytest.raises(ApiError) as err:
        staff.redeem(code)
    assert (err.value.status, err.value.code) == (409, "already_redeemed")
    [entry] = mobile.wallet()
    assert entry["status"] == "redeemed" and entry["redeemed_at"]
    outcomes = [
        r[0] for r in rows(app, "SELECT outcome FROM redemption_attempts ORDER BY created_at")
    ]
    assert outcomes == ["redeemed", "already_redeemed"]


def test_redemption_refusals_in_the_contracts_order(
    app: Flask,
    api: Client,
    owner: Client,
    other_owner: Client,
    staff: Client,
    mobile: Client,
    venue: dict[str, Any],
) -> None:
    code = unlock_code(owner, mobile, venue)
    elsewhere = owner.create_venue(venue_body(name="Elsewhere"))["id"]
    cases = [
        (lambda: staff.redeem("0000-0000-000"), 404, "not_found"),
        (lambda: staff.redeem("not a code at all"), 404, "not_found"),
        (lambda: other_owner.redeem(code), 404, "not_found"),
        (lambda: other_owner.redeem(code, elsewhere), 404, "not_found"),
        (lambda: staff.redeem(code, elsewhere), 422, "wrong_venue"),
    ]
    for attempt, status, problem in cases:
        with pytest.raises(ApiError) as err:
            attempt()
        assert (err.value.status, err.value.code) == (status, problem)
    with app.app_context():
        db.session().execute(text("UPDATE unlocks SET expires_at = now() - interval '1 second'"))
        db.session().commit()
    with pytest.raises(ApiError) as err:
        staff.redeem(code)
    assert (err.value.status, err.value.code) == (410, "expired")
    analyst = owner.with_token(owner.create_key("analyst")["api_key"])
    with pytest.raises(ApiError) as err:
        analyst.redeem(code)
    assert err.value.status == 403
    outcomes = sorted(r[0] for r in rows(app, "SELECT outcome FROM redemption_attempts"))
    assert outcomes == sorted(
        ["unknown", "unknown", "other_merchant", "other_merchant", "wrong_venue", "expired"]
    )
    assert mobile.wallet()[0]["status"] == "expired"


def test_codes_outlive_their_offer_until_they_expire_but_not_their_venue(
    app: Flask, api: Client, owner: Client, staff: Client, venue: dict[str, Any]
) -> None:
    second = owner.create_venue(venue_body(name="Second", radius_m=50, checkin_cooldown_minutes=0))
    offer = live_offer(owner, [venue["id"], second["id"]], per_user_cap=10)
    users = [new_user(api) for _ in range(5)]
    codes = [visit(u, venue)["unlocks"][0]["code"] for u in users]

    # Paused, then ended: nothing more unlocks, but the codes already given are honoured.
    owner.pause_offer(offer["id"])
    assert staff.redeem(codes[0], venue["id"])["offer_id"] == offer["id"]
    owner.activate_offer(offer["id"])
    owner.end_offer(offer["id"])
    assert visit(new_user(api), venue)["unlocks"] == []
    assert users[1].wallet()[0]["status"] == "active"
    assert staff.redeem(codes[1], venue["id"])["offer_id"] == offer["id"]

    # The venue where they were earned is deleted: a till that names it is refused, another of
    # the offer's venues, or a till that names none, still redeems.
    owner.delete_venue(venue["id"])
    with pytest.raises(ApiError) as err:
        staff.redeem(codes[2], venue["id"])
    assert (err.value.status, err.value.code) == (422, "wrong_venue")
    assert staff.redeem(codes[2], second["id"])["venue_id"] == second["id"]
    assert staff.redeem(codes[3])["offer_id"] == offer["id"]

    # Expiry still ends every promise.
    with app.app_context():
        db.session().execute(text("UPDATE unlocks SET expires_at = now() - interval '1 second'"))
        db.session().commit()
    with pytest.raises(ApiError) as err:
        staff.redeem(codes[4], second["id"])
    assert (err.value.status, err.value.code) == (410, "expired")


def test_redemption_idempotency(
    app: Flask, owner: Client, staff: Client, mobile: Client, venue: dict[str, Any]
) -> None:
    code = unlock_code(owner, mobile, venue)
    first = staff.redeem(code, idempotency_key="till-1-42")
    assert staff.redeem(code, idempotency_key="till-1-42") == first
    assert rows(app, "SELECT count(*) FROM redemptions")[0][0] == 1


def test_back_dated_fixes_alternating_two_venues_ten_km_apart_do_not_verify(
    owner: Client, mobile: Client
) -> None:
    # The cheat outside testing found: each fix at B dated back so that it was 130 s (277 km/h)
    # from the latest accepted fix at A, the only one it was compared with. Now each fix is
    # judged against both neighbours in time and one dated over 2 minutes before the latest
    # accepted fix is refused: only the first venue of the pair ever verifies.
    here = owner.create_venue(venue_body(radius_m=50, checkin_cooldown_minutes=0))
    east = owner.create_venue(
        venue_body(
            radius_m=50,
            checkin_cooldown_minutes=0,
            location={"type": "Point", "coordinates": [LON + 0.1805, LAT]},  # 10.0 km east
        )
    )
    statuses = []
    for _ in range(4):
        a = mobile.check_in(here["id"], LAT, LON, 10, now_iso(timedelta(seconds=25)))
        b = mobile.check_in(east["id"], LAT, LON + 0.1805, 10, now_iso(-timedelta(seconds=105)))
        statuses.append((a["status"], b["status"]))
        assert [r["code"] for r in b["reasons"]] == ["backdated_fix"], b["reasons"]
    assert statuses == [("verified", "rejected")] * 4
    # Dated inside the window but between two accepted fixes it could not have reached: the
    # neighbour after it in time refuses it.
    late = mobile.check_in(east["id"], LAT, LON + 0.1805, 10, now_iso(-timedelta(seconds=60)))
    assert [r["code"] for r in late["reasons"]] == ["impossible_travel"]
    assert "next accepted fix" in late["reasons"][0]["detail"]
