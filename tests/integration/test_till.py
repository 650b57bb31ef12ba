"""The till's check of a code (`POST /v1/redemptions/check`), recorded like a redemption, and
the till's list of the day at a venue (`GET /v1/venues/{id}/till-day`)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import Engine, event, text

from api import db
from mobile_stub.client import ApiError, Client
from offers import codes
from tests.factories import offer_body, venue_body


def sql(app: Flask, statement: str, **params: Any) -> list[Any]:
    with app.app_context():
        result = db.session().execute(text(statement), params)
        rows = list(result.all()) if result.returns_rows else []
        db.session().commit()
        return rows


def new_user(api: Client) -> Client:
    return api.with_token(api.create_user(f"u{secrets.token_hex(5)}", "pass-word-1")["token"])


@pytest.fixture
def shop(api: Client, owner: Client) -> dict[str, Any]:
    here = owner.create_venue(venue_body(name="Here", checkin_cooldown_minutes=0))
    there = owner.create_venue(
        venue_body(name="There", location={"type": "Point", "coordinates": [24.95, 60.18]})
    )
    offer = owner.create_offer(offer_body([here["id"]], title="Free bun"))
    owner.activate_offer(offer["id"])
    return {"here": here, "there": there, "offer": offer}


def unlock(api: Client, venue: dict[str, Any]) -> str:
    lon, lat = venue["location"]["coordinates"]
    checkin = new_user(api).check_in(venue["id"], lat, lon, 10, datetime.now(UTC).isoformat())
    return str(checkin["unlocks"][0]["code"])


def attempts(app: Flask) -> list[str]:
    return [
        r.outcome for r in sql(app, "SELECT outcome FROM redemption_attempts ORDER BY created_at")
    ]


def test_each_outcome_of_a_check_and_every_check_is_recorded(
    app: Flask, api: Client, owner: Client, other_owner: Client, shop: dict[str, Any]
) -> None:
    here, there = shop["here"], shop["there"]
    till = owner.with_token(owner.create_key("staff", "Front till")["api_key"])
    code = unlock(api, here)

    valid = till.check_code(code.replace("-", "").lower(), here["id"])
    assert valid["outcome"] == "valid"
    assert valid["code"] == code
    assert (valid["title"], valid["offer_id"]) == ("Free bun", shop["offer"]["id"])
    assert valid["venues"] == [{"id": here["id"], "name": "Here"}]
    assert valid["unlocked_at"] and valid["expires_at"] and valid["redemption"] is None
    # Checking redeems nothing.
    assert till.check_code(code, here["id"])["outcome"] == "valid"

    wrong = till.check_code(code, there["id"])
    assert wrong["outcome"] == "wrong_venue"
    assert wrong["venues"] == [{"id": here["id"], "name": "Here"}]

    redeemed = till.redeem(code, here["id"])
    already = till.check_code(code, here["id"])
    assert already["outcome"] == "already_redeemed"
    assert already["redemption"] == {
        "redeemed_at": redeemed["redeemed_at"],
        "venue_id": here["id"],
        "venue_name": "Here",
        "till": "Front till",
    }
    # The refusal of a redemption says where too.
    with pytest.raises(ApiError) as refused:
        till.redeem(code, here["id"])
    assert refused.value.code == "already_redeemed"
    assert refused.value.detail.endswith(" at Here")

    expiring = unlock(api, here)
    sql(
        app,
        "UPDATE unlocks SET expires_at = now() - interval '1 minute' WHERE code = :c",
        c=codes.normalize(expiring),
    )
    assert till.check_code(expiring, here["id"])["outcome"] == "expired"

    unknown = till.check_code(codes.format_code(codes.new_code()))
    assert (unknown["outcome"], unknown["code"], unknown["venues"]) == ("unknown", None, [])
    malformed = till.check_code("7K3Q-XM9T-2RX")
    assert (malformed["outcome"], malformed["code"]) == ("unknown", None)
    assert malformed["detail"].startswith("not a code")
    # Another merchant's code is unknown to this till, and nothing of it is told.
    theirs = other_owner.with_token(other_owner.create_key("staff")["api_key"])
    told = theirs.check_code(code)
    assert told == unknown  # the code itself is not even echoed

    assert attempts(app) == [
        "checked",
        "checked",
        "wrong_venue",
        "redeemed",
        "already_redeemed",
        "already_redeemed",
        "expired",
        "unknown",
        "unknown",
        "other_merchant",
    ]
    # Refusals at a till that only checked reach the leak report.
    leaks = owner.leak_report()["refused_attempts"]
    assert leaks == {  # (another merchant's code tried here would count as unknown)
        "unknown": 2,
        "wrong_venue": 1,
        "already_redeemed": 2,
        "expired": 1,
    }
    # The rival's own report counts its try of our code as unknown; ours sees it was tried.
    assert other_owner.leak_report()["refused_attempts"]["unknown"] == 1
    assert owner.leak_report()["codes_tried_by_other_merchants"] == 1


def test_the_wallet_and_the_till_agree_on_a_codes_status(
    app: Flask, api: Client, owner: Client, shop: dict[str, Any]
) -> None:
    """One rule decides active, redeemed or expired (offers/redemptions.UNLOCK_STATUS_SQL)."""
    here = shop["here"]
    owner.update_offer(shop["offer"]["id"], {"per_user_cap": 3})
    user = new_user(api)
    lon, lat = here["location"]["coordinates"]
    found = []
    for _ in range(3):
        checkin = user.check_in(here["id"], lat, lon, 10, datetime.now(UTC).isoformat())
        found.append(checkin["unlocks"][0]["code"])
    active, redeemed, expired = found
    owner.redeem(redeemed, here["id"])
    sql(
        app,
        "UPDATE unlocks SET expires_at = now() WHERE code = :c",  # expires exactly now
        c=codes.normalize(expired),
    )
    wallet = {entry["code"]: entry["status"] for entry in user.wallet()}
    assert wallet == {active: "active", redeemed: "redeemed", expired: "expired"}
    outcomes = {code: owner.check_code(code, here["id"])["outcome"] for code in found}
    assert outcomes == {active: "valid", redeemed: "already_redeemed", expired: "expired"}
    with pytest.raises(ApiError) as gone:
        owner.redeem(expired, here["id"])
    assert gone.value.code == "expired"


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_a_check_takes_a_lookup_and_an_insert(
    api: Client, owner: Client, shop: dict[str, Any], statements: list[str]
) -> None:
    code = unlock(api, shop["here"])
    owner.check_code(code, shop["here"]["id"])  # the key's rate-limit row exists from now on
    statements.clear()
    owner.check_code(code, shop["here"]["id"])
    sent = [
        s
        for s in statements
        if not s.startswith(("SAVEPOINT", "RELEASE")) and "rate_limit_counters" not in s
    ]
    assert len(sent) <= 3, sent  # the key, the lookup, the attempt


# ---- the till's day --------------------------------------------------------------------------


def test_the_tills_day_lists_todays_redemptions_and_checkins_at_the_venue(
    app: Flask, api: Client, owner: Client, shop: dict[str, Any]
) -> None:
    here, there = shop["here"], shop["there"]
    till = owner.with_token(owner.create_key("staff", "Front till")["api_key"])
    first, second = unlock(api, here), unlock(api, here)
    till.redeem(first, here["id"])
    till.redeem(second, here["id"])
    # (The test's one transaction keeps now() still: the first is made a millisecond older.)
    sql(
        app,
        "UPDATE redemptions SET redeemed_at = redeemed_at - interval '1 millisecond'"
        " WHERE unlock_id = (SELECT id FROM unlocks WHERE code = :c)",
        c=codes.normalize(first),
    )
    lon, lat = there["location"]["coordinates"]
    rejected = new_user(api).check_in(
        there["id"], lat + 0.01, lon, 10, datetime.now(UTC).isoformat()
    )
    assert rejected["status"] == "rejected"

    day = till.till_day(here["id"])
    today = datetime.now(ZoneInfo("Europe/Helsinki")).date()
    assert (day["venue_name"], day["timezone"], day["date"]) == (
        "Here",
        "Europe/Helsinki",
        today.isoformat(),
    )
    assert [r["code"] for r in day["redemptions"]] == [second, first]  # newest first
    assert day["redemptions"][0]["title"] == "Free bun"
    assert day["redemptions"][0]["till"] == "Front till"
    assert day["redemptions_total"] == 2
    assert day["checkins_total"] == 2
    assert all(c["status"] == "verified" and c["unlocked"] == ["Free bun"] for c in day["checkins"])
    assert set(day["checkins"][0]) == {"id", "created_at", "status", "reasons", "unlocked"}

    elsewhere = till.till_day(there["id"])
    assert elsewhere["redemptions"] == []
    assert [(c["status"], c["reasons"]) for c in elsewhere["checkins"]] == [
        ("rejected", ["outside_geofence"])
    ]

    # Yesterday at the venue is another day.
    sql(app, "UPDATE redemptions SET redeemed_at = redeemed_at - interval '1 day'")
    assert till.till_day(here["id"])["redemptions"] == []
    yesterday = (today - timedelta(days=1)).isoformat()
    assert till.till_day(here["id"], yesterday)["redemptions_total"] == 2


@pytest.mark.parametrize("day", ["0001-01-01", "1999-12-31", "9999-12-31"])
def test_a_tills_day_outside_the_calendar_it_serves_is_a_clear_422(
    owner: Client, shop: dict[str, Any], day: str
) -> None:
    # Year 1 at a venue's midnight was no time Python can hold: the fuzzer's 500.
    with pytest.raises(ApiError) as error:
        owner.till_day(shop["here"]["id"], day)
    assert error.value.status == 422
    assert error.value.code == "validation_error"


def test_the_tills_day_follows_the_venues_local_midnight(
    app: Flask, api: Client, owner: Client, shop: dict[str, Any]
) -> None:
    here = shop["here"]
    owner.redeem(unlock(api, here), here["id"])
    # 21:30 UTC on 1 July is 00:30 on 2 July in Helsinki (UTC+3 in summer).
    sql(app, "UPDATE redemptions SET redeemed_at = '2026-07-01T21:30:00Z'")
    assert owner.till_day(here["id"], "2026-07-01")["redemptions"] == []
    [found] = owner.till_day(here["id"], "2026-07-02")["redemptions"]
    assert found["redeemed_at"] == "2026-07-01T21:30:00+00:00"


def test_the_tills_day_of_another_merchants_venue_is_not_found(
    owner: Client, other_owner: Client, shop: dict[str, Any]
) -> None:
    with pytest.raises(ApiError) as err:
        other_owner.till_day(shop["here"]["id"])
    assert err.value.status == 404
    with pytest.raises(ApiError) as bad:
        owner.till_day(shop["here"]["id"], "yesterday")
    assert bad.value.status == 422
    assert isinstance(date.fromisoformat(owner.till_day(shop["here"]["id"])["date"]), date)
