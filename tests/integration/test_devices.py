"""Till devices: paired with a one-time code, scoped to one venue on every route, listed with
their last use, revoked at once."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from api import db
from mobile_stub.client import ApiError, Client
from offers.devices import PAIRING_TTL
from tests.factories import offer_body, venue_body

LON, LAT = 24.9384, 60.1699


def sql(app: Flask, statement: str, **params: Any) -> list[Any]:
    with app.app_context():
        result = db.session().execute(text(statement), params)
        rows = list(result.all()) if result.returns_rows else []
        db.session().commit()
        return rows


@pytest.fixture
def venues(owner: Client) -> tuple[dict[str, Any], dict[str, Any]]:
    here = owner.create_venue(venue_body(name="Here", checkin_cooldown_minutes=0))
    there = owner.create_venue(
        venue_body(name="There", location={"type": "Point", "coordinates": [24.95, 60.18]})
    )
    return dict(here), dict(there)


def paired(api: Client, owner: Client, venue_id: str, label: str = "Front counter") -> Client:
    pairing = owner.create_pairing(venue_id, label)
    return api.with_token(api.pair_device(pairing["code"])["api_key"])


def code_at(owner: Client, api: Client, venue: dict[str, Any]) -> str:
    """A code of a new offer at `venue`, unlocked by a new user's check-in there."""
    offer = owner.create_offer(offer_body([venue["id"]], title=f"Bun at {venue['name']}"))
    owner.activate_offer(offer["id"])
    user = api.with_token(api.create_user(f"u{secrets.token_hex(5)}", "pass-word-1")["token"])
    lon, lat = venue["location"]["coordinates"]
    checkin = user.check_in(venue["id"], lat, lon, 10, datetime.now(UTC).isoformat())
    return str(checkin["unlocks"][0]["code"])


# ---- pairing ---------------------------------------------------------------------------------


def test_a_pairing_code_pairs_one_device_once_for_ten_minutes(
    api: Client, owner: Client, venues: Any
) -> None:
    here, _ = venues
    before = datetime.now(UTC)
    pairing = owner.create_pairing(here["id"], "Front counter")
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", pairing["code"])
    expires = datetime.fromisoformat(pairing["expires_at"])
    assert abs(expires - before - PAIRING_TTL) < timedelta(seconds=30)
    assert (pairing["venue_name"], pairing["label"]) == ("Here", "Front counter")

    # Typed loosely on the device: lower case, no dash, O for 0 and I for 1.
    typed = pairing["code"].replace("-", "").lower().replace("0", "o").replace("1", "i")
    answer = api.pair_device(typed)
    assert answer["api_key"].startswith("cok_")
    device = api.with_token(answer["api_key"])
    me = device.this_device()
    assert me["last_used_at"] is not None  # this very request
    assert {**me, "last_used_at": None} == answer["device"]
    assert (me["venue_id"], me["venue_name"], me["label"]) == (here["id"], "Here", "Front counter")

    with pytest.raises(ApiError) as again:
        api.pair_device(pairing["code"])
    assert (again.value.status, again.value.code) == (422, "pairing_code_invalid")
    # The device is a staff key bound to the venue, among the merchant's keys too.
    [key] = [k for k in owner.list_keys() if k["id"] == me["id"]]
    assert (key["role"], key["venue_id"]) == ("staff", here["id"])


def test_wrong_expired_and_malformed_codes_are_one_refusal(
    app: Flask, api: Client, owner: Client, venues: Any
) -> None:
    here, _ = venues
    pairing = owner.create_pairing(here["id"])
    sql(app, "UPDATE device_pairings SET expires_at = now() - interval '1 second'")
    for code in (pairing["code"], "ZZZZ-ZZZZ", "not a code", "7K3Q-XM9T-2RK"):
        with pytest.raises(ApiError) as refused:
            api.pair_device(code)
        assert (refused.value.status, refused.value.code) == (422, "pairing_code_invalid"), code
    assert owner.list_devices() == []


def test_a_code_for_a_venue_deleted_since_pairs_nothing(
    api: Client, owner: Client, venues: Any
) -> None:
    here, _ = venues
    pairing = owner.create_pairing(here["id"])
    owner.delete_venue(here["id"])
    with pytest.raises(ApiError) as refused:
        api.pair_device(pairing["code"])
    assert refused.value.code == "pairing_code_invalid"


def test_pairing_needs_an_owner_and_a_venue_of_theirs(
    api: Client, owner: Client, other_owner: Client, venues: Any
) -> None:
    here, _ = venues
    staff = owner.with_token(owner.create_key("staff")["api_key"])
    with pytest.raises(ApiError) as forbidden:
        staff.create_pairing(here["id"])
    assert forbidden.value.status == 403
    with pytest.raises(ApiError) as theirs:
        other_owner.create_pairing(here["id"])
    assert theirs.value.status == 404


def test_answers_with_a_secret_are_not_cached(
    client: FlaskClient, owner: Client, venues: Any
) -> None:
    here, _ = venues
    created = client.post(
        "/v1/devices/pairings",
        json={"venue_id": here["id"]},
        headers={"Authorization": f"Bearer {owner.token}"},
    )
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    exchanged = client.post("/v1/devices/pair", json={"code": created.get_json()["code"]})
    assert exchanged.status_code == 201
    assert exchanged.headers["Cache-Control"] == "no-store"


# ---- the venue scope -------------------------------------------------------------------------


def test_a_device_redeems_and_checks_at_its_venue_only(
    api: Client, owner: Client, venues: Any
) -> None:
    here, there = venues
    device = paired(api, owner, here["id"])
    code = code_at(owner, api, here)
    # No venue named: the device's own.
    assert device.check_code(code)["outcome"] == "valid"
    with pytest.raises(ApiError) as elsewhere:
        device.check_code(code, there["id"])
    assert (elsewhere.value.status, elsewhere.value.code) == (403, "venue_not_paired")
    with pytest.raises(ApiError) as elsewhere:
        device.redeem(code, there["id"])
    assert elsewhere.value.code == "venue_not_paired"
    redemption = device.redeem(code)
    assert redemption["venue_id"] == here["id"]

    # A code of an offer at another venue is refused as at any till of this venue.
    other = code_at(owner, api, there)
    with pytest.raises(ApiError) as wrong:
        device.redeem(other)
    assert wrong.value.code == "wrong_venue"

    assert device.presence_code(here["id"])["code"]
    with pytest.raises(ApiError) as elsewhere:
        device.presence_code(there["id"])
    assert elsewhere.value.code == "venue_not_paired"
    assert device.till_day(here["id"])["redemptions_total"] == 1
    with pytest.raises(ApiError) as elsewhere:
        device.till_day(there["id"])
    assert elsewhere.value.code == "venue_not_paired"


def test_a_device_checks_guests_in_at_its_venue_only(
    api: Client, owner: Client, venues: Any
) -> None:
    here, there = venues
    device = paired(api, owner, here["id"])
    with pytest.raises(ApiError) as elsewhere:
        device.staff_check_in(there["id"], member_code="00000000")
    assert (elsewhere.value.status, elsewhere.value.code) == (403, "venue_not_paired")
    with pytest.raises(ApiError) as here_wrong:  # its own venue: the check-in's own rules
        device.staff_check_in(here["id"], member_code="00000000")
    assert here_wrong.value.code == "member_code_invalid"


# What a till device may call: everything else answers 403 `device_not_allowed`.
DEVICE_ROUTES = {
    ("POST", "/v1/redemptions"),
    ("POST", "/v1/redemptions/check"),
    ("GET", "/v1/venues/<uuid:venue_id>/presence-code"),
    ("GET", "/v1/venues/<uuid:venue_id>/till-day"),
    ("GET", "/v1/devices/me"),
    ("DELETE", "/v1/devices/me"),
    ("POST", "/v1/staff-checkins"),
}


def test_a_device_is_refused_on_every_other_route(
    app: Flask, client: FlaskClient, api: Client, owner: Client, venues: Any
) -> None:
    """Walks the URL map: a new route is closed to till devices unless it says otherwise."""
    here, _ = venues
    device = paired(api, owner, here["id"])
    headers = {"Authorization": f"Bearer {device.token}"}
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/"):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if (method, rule.rule) in DEVICE_ROUTES:
                continue
            path = re.sub(r"<uuid:[a-z_]+>", here["id"], rule.rule)
            response = client.open(path, method=method, json={}, headers=headers)
            body = response.get_json() or {}
            # Routes without a merchant key (sign-up, users, nearby, pairing) do not know it.
            if response.status_code == 403:
                assert body["code"] == "device_not_allowed", (method, rule.rule, body)
                checked += 1
            elif response.status_code != 401:  # 401: a user's route, not a merchant's
                assert _public(method, rule.rule), (method, rule.rule, response.status_code, body)
    assert checked >= 20
    assert device.this_device()["venue_id"] == here["id"]  # still works


def _public(method: str, rule: str) -> bool:
    """Routes that need no credentials at all."""
    return (method, rule) in {
        ("POST", "/v1/merchants"),
        ("POST", "/v1/users"),
        ("POST", "/v1/users/token"),
        ("POST", "/v1/devices/pair"),
        ("GET", "/v1/venues/nearby"),
    }


# ---- the list, last use and revoking ------------------------------------------------------


def test_the_list_shows_each_device_with_its_venue_and_last_use(
    app: Flask, api: Client, owner: Client, venues: Any
) -> None:
    here, there = venues
    front = paired(api, owner, here["id"], "Front")
    paired(api, owner, there["id"], "Terrace")
    listed = {d["label"]: d for d in owner.list_devices()}
    assert listed.keys() == {"Front", "Terrace"}
    assert listed["Front"]["venue_name"] == "Here"
    assert listed["Terrace"]["last_used_at"] is None

    front.this_device()
    [first] = [d for d in owner.list_devices() if d["label"] == "Front"]
    assert first["last_used_at"] is not None
    # Written at most once a minute: the next request leaves it.
    front.this_device()
    [again] = [d for d in owner.list_devices() if d["label"] == "Front"]
    assert again["last_used_at"] == first["last_used_at"]
    # Over a minute old, it is written again (the test's transaction keeps now() still).
    sql(app, "UPDATE api_keys SET last_used_at = last_used_at - interval '2 minutes'")
    front.this_device()
    [later] = [d for d in owner.list_devices() if d["label"] == "Front"]
    assert later["last_used_at"] == first["last_used_at"]


def test_a_revoked_device_fails_on_its_next_request(
    api: Client, owner: Client, venues: Any
) -> None:
    here, _ = venues
    device = paired(api, owner, here["id"])
    device_id = device.this_device()["id"]
    revoked = owner.revoke_device(device_id)
    assert revoked["revoked_at"] is not None
    with pytest.raises(ApiError) as refused:
        device.this_device()
    assert refused.value.status == 401
    assert owner.revoke_device(device_id)["revoked_at"] == revoked["revoked_at"]  # no change
    assert owner.list_devices() == []
    assert [d["id"] for d in owner.list_devices(include_revoked=True)] == [device_id]


def test_a_device_can_unpair_itself_and_an_ordinary_key_is_no_device(
    api: Client, owner: Client, venues: Any
) -> None:
    here, _ = venues
    device = paired(api, owner, here["id"])
    assert device.unpair()["revoked_at"] is not None
    with pytest.raises(ApiError) as gone:
        device.this_device()
    assert gone.value.status == 401
    staff = owner.with_token(owner.create_key("staff")["api_key"])
    with pytest.raises(ApiError) as not_a_device:
        staff.this_device()
    assert not_a_device.value.status == 404
    # Only devices are revoked through /devices: an ordinary key is no device.
    with pytest.raises(ApiError) as not_found:
        owner.revoke_device(next(k["id"] for k in owner.list_keys() if k["role"] == "owner"))
    assert not_found.value.status == 404


def test_a_device_at_a_deleted_venue_stops_working(api: Client, owner: Client, venues: Any) -> None:
    here, _ = venues
    device = paired(api, owner, here["id"])
    owner.delete_venue(here["id"])
    with pytest.raises(ApiError) as refused:
        device.this_device()
    assert refused.value.status == 401
