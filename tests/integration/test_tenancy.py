"""Every merchant object is scoped to its merchant: another tenant's id answers 404 on every route.

The test walks the app's URL map, so a new route with an id in its path fails here until it is
covered.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from api import db
from core import webhooks
from mobile_stub.client import ApiError, Client
from tests.factories import offer_body, venue_body

# A harmless valid body for the routes that take one.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/v1/venues/<uuid:venue_id>"): {"name": "Hijacked"},
    ("PATCH", "/v1/offers/<uuid:offer_id>"): {"title": "Hijacked"},
    ("POST", "/v1/venues/<uuid:venue_id>/nfc-tags"): {"uid": "04998877665544"},
    ("POST", "/v1/checkins/<uuid:checkin_id>/feedback"): {"rating": 1},
    ("POST", "/v1/feedback/<uuid:feedback_id>/replies"): {"body": "Hijacked"},
}
# Routes a user token calls, besides the user's own (/v1/me/...).
USER_ROUTES = {"/v1/checkins/<uuid:checkin_id>/feedback"}


@pytest.fixture
def theirs(app: Flask, api: Client, other_owner: Client) -> dict[str, str]:
    """Objects of another merchant, by path parameter."""
    venue = other_owner.create_venue(venue_body())
    offer = other_owner.create_offer(offer_body([venue["id"]]))
    key = other_owner.create_key("staff")
    handle = api.create_user("their_barista", "correct horse")["user"]["handle"]
    staff_user = other_owner.add_staff_user(handle)
    tag = other_owner.register_nfc_tag(venue["id"], "04AABBCCDDEEFF")
    someone = api.with_token(api.create_user("someone_else", "correct horse")["token"])
    card = someone.register_card("04112233445566")
    other_owner.activate_offer(other_owner.create_offer(offer_body([venue["id"]]))["id"])
    # someone else's verified visit at their venue, which unlocked an offer and is rated:
    # another user's check-in and unlock for `mobile`, another merchant's feedback for `owner`
    lon, lat = venue["location"]["coordinates"]
    visit = someone.check_in(venue["id"], lat, lon, 10, datetime.now(UTC).isoformat())
    unlock = visit["unlocks"][0]
    feedback = someone.give_feedback(visit["id"], 5, "great")
    device = api.pair_device(other_owner.create_pairing(venue["id"], "their till")["code"])
    app.config["WEBHOOKS_ALLOW_HTTP_LOOPBACK"] = True
    webhook = other_owner.create_webhook("http://127.0.0.1:9/theirs", ["checkin.verified"])
    app.config["WEBHOOKS_ALLOW_HTTP_LOOPBACK"] = False
    with app.app_context():  # one delivery of theirs, as a check-in of theirs would write
        session = db.session()
        merchant_id = session.scalar(
            text("SELECT merchant_id FROM webhook_endpoints WHERE id = :id"), {"id": webhook["id"]}
        )
        webhooks.emit(session, merchant_id, [(webhooks.CHECKIN_VERIFIED, {"id": "x"})])
        session.commit()
    delivery = other_owner.webhook_deliveries(webhook["id"])[0]
    return {
        "venue_id": venue["id"],
        "offer_id": offer["id"],
        "key_id": key["id"],
        "staff_user_id": staff_user["id"],
        "tag_id": tag["id"],
        "card_id": card["id"],
        "device_id": device["device"]["id"],
        "checkin_id": visit["id"],
        "feedback_id": feedback["id"],
        "webhook_id": webhook["id"],
        "unlock_id": unlock["id"],
        "delivery_id": delivery["id"],
    }


def _id_routes(app: Flask) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if "<uuid:" not in rule.rule:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((method, rule.rule))
    return sorted(routes)


def test_another_tenants_ids_are_404_on_every_route(
    app: Flask,
    client: FlaskClient,
    owner: Client,
    other_owner: Client,
    mobile: Client,
    theirs: dict[str, str],
) -> None:
    routes = _id_routes(app)
    assert len(routes) >= 10
    for method, rule in routes:
        # The user's own objects (/v1/me/...) are another user's for a user token.
        token = mobile.token if rule.startswith("/v1/me/") or rule in USER_ROUTES else owner.token
        headers = {"Authorization": f"Bearer {token}"}
        path = rule
        for name, value in theirs.items():
            path = path.replace(f"<uuid:{name}>", value)
        assert "<" not in path, f"no object of another tenant for {rule}; add one to `theirs`"
        body = BODIES.get((method, rule))
        response = client.open(path, method=method, json=body, headers=headers)
        assert response.status_code == 404, (method, rule, response.get_json())
        assert response.get_json()["code"] == "not_found"
    # ... and nothing of theirs changed.
    assert other_owner.get_venue(theirs["venue_id"])["name"] != "Hijacked"
    offer = other_owner.get_offer(theirs["offer_id"])
    assert offer["title"] != "Hijacked" and offer["status"] == "draft"
    assert all(k["revoked_at"] is None for k in other_owner.list_keys())
    assert [d["id"] for d in other_owner.list_devices()] == [theirs["device_id"]]
    assert [s["id"] for s in other_owner.list_staff_users()] == [theirs["staff_user_id"]]
    assert [t["id"] for t in other_owner.list_nfc_tags(theirs["venue_id"])] == [theirs["tag_id"]]
    [rated] = other_owner.list_feedback()
    assert (rated["rating"], rated["replies"]) == (5, [])
    assert [w["id"] for w in other_owner.list_webhooks()] == [theirs["webhook_id"]]


def test_listings_show_only_the_callers_objects(
    owner: Client, other_owner: Client, theirs: dict[str, str]
) -> None:
    assert owner.list_venues() == []
    assert owner.list_offers() == []
    assert [k["role"] for k in owner.list_keys()] == ["owner"]


def test_offers_cannot_reference_another_tenants_venues(
    owner: Client, theirs: dict[str, str]
) -> None:
    mine = owner.create_venue(venue_body())["id"]
    offer = owner.create_offer(offer_body([mine]))
    for attempt in (
        lambda: owner.create_offer(offer_body([mine, theirs["venue_id"]])),
        lambda: owner.update_offer(offer["id"], {"venue_ids": [theirs["venue_id"]]}),
    ):
        with pytest.raises(ApiError) as err:
            attempt()
        assert err.value.status == 404
    assert owner.get_offer(offer["id"])["venue_ids"] == [mine]
