"""The audit trail: every state-changing merchant action is recorded with who, when and what
changed, in the action's own transaction, and the owner reads it through the API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from core.audit import ACTIONS
from mobile_stub.client import ApiError, ApiKeyCreated, Client, Offer, Venue
from tests.factories import offer_body, venue_body

LON, LAT = 24.9384, 60.1699  # tests.factories.HELSINKI


def _key_id(owner: Client, role: str = "owner") -> str:
    return next(k["id"] for k in owner.list_keys() if k["role"] == role)


def _latest(owner: Client) -> dict[str, Any]:
    event: dict[str, Any] = owner.audit_trail(limit=1)["events"][0]
    return event


def _code(owner: Client, mobile: Client) -> tuple[str, str]:
    """An unlock code of an active offer of `owner`, and the offer's venue."""
    venue = owner.create_venue(venue_body())
    owner.activate_offer(owner.create_offer(offer_body([venue["id"]]))["id"])
    checkin = mobile.check_in(venue["id"], LAT, LON, 10, datetime.now(UTC).isoformat())
    return checkin["unlocks"][0]["code"], venue["id"]


# ---- one test per action ---------------------------------------------------------------------


@dataclass
class World:
    owner: Client
    mobile: Client
    venue: Venue
    offer: Offer
    staff_key: ApiKeyCreated


@pytest.fixture
def world(owner: Client, mobile: Client) -> World:
    venue = owner.create_venue(venue_body())
    offer = owner.create_offer(offer_body([venue["id"]]))
    staff_key = owner.create_key("staff", "till")
    return World(owner, mobile, venue, offer, staff_key)


def _delete_venue(w: World) -> str:
    w.owner.delete_venue(w.venue["id"])
    return w.venue["id"]


def _staff_handle(w: World) -> str:
    Client(w.owner.transport).create_user("barista_1", "pass-word-1")
    return "barista_1"


def _redeem(w: World) -> tuple[str, str]:
    code, venue_id = _code(w.owner, w.mobile)
    staff = w.owner.with_token(w.staff_key["api_key"])
    return staff.redeem(code, venue_id)["id"], w.staff_key["id"]


def _delete_tag(w: World) -> str:
    tag = w.owner.register_nfc_tag(w.venue["id"], "04A1B2C3D4E5F6", "door")
    w.owner.delete_nfc_tag(tag["id"])
    return tag["id"]


def _pair(w: World) -> tuple[str, str]:
    pairing = w.owner.create_pairing(w.venue["id"], "front")
    device = Client(w.owner.transport).pair_device(pairing["code"])["device"]
    return device["id"], device["id"]  # the device paired itself


def _revoke_device(w: World) -> tuple[str, None]:
    device_id, _ = _pair(w)
    return w.owner.revoke_device(device_id)["id"], None


def _reply(w: World) -> tuple[str, str]:
    checkin = w.mobile.check_in(w.venue["id"], LAT, LON, 10, datetime.now(UTC).isoformat())
    feedback = w.mobile.give_feedback(checkin["id"], 2, "cold coffee")
    staff = w.owner.with_token(w.staff_key["api_key"])
    return staff.reply_to_feedback(feedback["id"], "Sorry! Next one is on us.")["id"], w.staff_key[
        "id"
    ]


# A public address (an IP literal: no DNS lookup) the URL policy accepts; nothing is sent in
# these tests, which run no delivery worker.
PUBLIC_HOOK = "https://93.184.216.34/hook"


def _delete_webhook(w: World) -> str:
    hook = w.owner.create_webhook(PUBLIC_HOOK, ["checkin.verified"])
    return str(w.owner.delete_webhook(hook["id"])["id"])


def _replay(w: World) -> str:
    hook = w.owner.create_webhook(PUBLIC_HOOK, ["checkin.verified"])
    w.mobile.check_in(w.venue["id"], LAT, LON, 10, datetime.now(UTC).isoformat())
    delivery = w.owner.webhook_deliveries(hook["id"])[0]
    w.owner.replay_webhook_delivery(hook["id"], delivery["id"])
    return str(delivery["id"])


# (action, what to do: the changed object's id and the acting key's id (None: the owner's),
#  what the event's `changes` must hold)
CASES: list[tuple[str, Callable[[World], tuple[str, str | None]], dict[str, list[Any]]]] = [
    (
        "venue.create",
        lambda w: (w.owner.create_venue(venue_body(name="Uusi"))["id"], None),
        {"name": [None, "Uusi"], "timezone": [None, "Europe/Helsinki"], "radius_m": [None, 50.0]},
    ),
    (
        "venue.update",
        lambda w: (w.owner.update_venue(w.venue["id"], {"name": "Renamed"})["id"], None),
        {"name": ["Kahvila", "Renamed"]},
    ),
    (
        "venue.delete",
        lambda w: (_delete_venue(w), None),
        {"name": ["Kahvila", None]},
    ),
    (
        "offer.create",
        lambda w: (w.owner.create_offer(offer_body([w.venue["id"]], title="New"))["id"], None),
        {
            "title": [None, "New"],
            "status": [None, "draft"],
            "rule": [None, {"kind": "every_checkin"}],
        },
    ),
    (
        "offer.update",
        lambda w: (w.owner.update_offer(w.offer["id"], {"total_cap": 7})["id"], None),
        {"total_cap": [None, 7]},
    ),
    (
        "offer.activate",
        lambda w: (w.owner.activate_offer(w.offer["id"])["id"], None),
        {"status": ["draft", "active"]},
    ),
    (
        "offer.pause",
        lambda w: (
            w.owner.activate_offer(w.offer["id"]) and w.owner.pause_offer(w.offer["id"])["id"],
            None,
        ),
        {"status": ["active", "paused"]},
    ),
    (
        "offer.end",
        lambda w: (
            w.owner.activate_offer(w.offer["id"]) and w.owner.end_offer(w.offer["id"])["id"],
            None,
        ),
        {"status": ["active", "ended"]},
    ),
    (
        "key.create",
        lambda w: (w.owner.create_key("analyst", "reports")["id"], None),
        {"role": [None, "analyst"], "label": [None, "reports"]},
    ),
    (
        "key.revoke",
        lambda w: (w.owner.revoke_key(w.staff_key["id"])["id"], None),
        {"revoked_at": [None, "<set>"]},
    ),
    ("key.rotate", lambda w: (w.owner.rotate_key(w.staff_key["id"])["id"], None), {}),
    ("redemption.create", _redeem, {"offer_id": [None, "<set>"], "unlock_id": [None, "<set>"]}),
    (
        "staff_user.create",
        lambda w: (w.owner.add_staff_user(_staff_handle(w))["id"], None),
        {"handle": [None, "barista_1"]},
    ),
    (
        "device_pairing.create",
        lambda w: (w.owner.create_pairing(w.venue["id"], "front")["id"], None),
        {"label": [None, "front"], "venue_id": [None, "<set>"], "expires_at": [None, "<set>"]},
    ),
    (
        "device.pair",
        _pair,
        {"role": [None, "staff"], "label": [None, "front"], "venue_id": [None, "<set>"]},
    ),
    ("device.revoke", _revoke_device, {"revoked_at": [None, "<set>"]}),
    (
        "staff_user.delete",
        lambda w: (
            w.owner.remove_staff_user(w.owner.add_staff_user(_staff_handle(w))["id"])["id"],
            None,
        ),
        {"handle": ["barista_1", None]},
    ),
    (
        "nfc_tag.create",
        lambda w: (w.owner.register_nfc_tag(w.venue["id"], "04A1B2C3D4E5F6", "door")["id"], None),
        {"uid": [None, "04A1B2C3D4E5F6"], "label": [None, "door"], "venue_id": [None, "<set>"]},
    ),
    (
        "feedback_reply.create",
        _reply,
        {"feedback_id": [None, "<set>"], "body": [None, "Sorry! Next one is on us."]},
    ),
    (
        "nfc_tag.delete",
        lambda w: (_delete_tag(w), None),
        {"uid": ["04A1B2C3D4E5F6", None]},
    ),
    (
        "webhook.create",
        lambda w: (w.owner.create_webhook(PUBLIC_HOOK, ["unlock.created"])["id"], None),
        {"url": [None, PUBLIC_HOOK], "events": [None, ["unlock.created"]]},
    ),
    ("webhook.delete", lambda w: (_delete_webhook(w), None), {"url": [PUBLIC_HOOK, None]}),
    ("webhook_delivery.replay", lambda w: (_replay(w), None), {}),
]


def test_every_action_has_a_case() -> None:
    assert sorted(c[0] for c in CASES) == sorted(set(ACTIONS) - {"merchant.create"})


@pytest.mark.parametrize(("action", "do", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_action_is_recorded_with_who_when_and_what_changed(
    world: World,
    action: str,
    do: Callable[[World], tuple[str, str | None]],
    expected: dict[str, list[Any]],
) -> None:
    started = datetime.now(UTC)
    object_id, actor = do(world)
    event = _latest(world.owner)
    assert event["action"] == action
    assert event["object_type"] == action.split(".")[0]
    assert event["object_id"] == object_id
    assert event["actor_key_id"] == (actor or _key_id(world.owner))
    assert event["actor_role"] == ("staff" if actor else "owner")
    assert event["request_id"]
    created = datetime.fromisoformat(event["created_at"])
    assert created.tzinfo is not None and abs((created - started).total_seconds()) < 60
    for field, (old, new) in expected.items():
        assert event["changes"][field][0] == old, field
        if new == "<set>":
            assert event["changes"][field][1] is not None, field
        else:
            assert event["changes"][field][1] == new, field
    if action.endswith(".update") or action in ("offer.activate", "offer.pause", "offer.end"):
        assert event["changes"].keys() == expected.keys()  # only what changed


def test_sign_up_records_the_merchant_and_its_owner_key(api: Client) -> None:
    created = api.create_merchant("Cafe Aalto", "hello@aalto.example")
    owner = api.with_token(created["api_key"])
    key_event, merchant_event = owner.audit_trail()["events"]
    assert merchant_event["action"] == "merchant.create"
    assert merchant_event["object_id"] == created["merchant"]["id"]
    assert merchant_event["changes"] == {
        "name": [None, "Cafe Aalto"],
        "email": [None, "hello@aalto.example"],
    }
    assert key_event["action"] == "key.create"
    assert key_event["object_id"] == _key_id(owner)
    assert key_event["changes"]["role"] == [None, "owner"]
    for event in (key_event, merchant_event):
        assert (event["actor_key_id"], event["actor_role"]) == (None, None)
    assert key_event["request_id"] == merchant_event["request_id"]


def test_the_request_id_ties_an_event_to_its_log_line(owner: Client) -> None:
    response = owner.call("POST", "/v1/venues", venue_body(), headers={"X-Request-ID": "req-42"})
    assert response.headers["X-Request-ID"] == "req-42"
    assert _latest(owner)["request_id"] == "req-42"


def test_refused_changes_record_nothing(world: World, other_owner: Client) -> None:
    before = world.owner.audit_trail()["events"]
    theirs = other_owner.create_venue(venue_body())
    attempts: list[Callable[[], Any]] = [
        lambda: world.owner.end_offer(world.offer["id"]),  # a draft cannot end: 409
        lambda: world.owner.update_venue(theirs["id"], {"name": "x"}),  # another tenant's: 404
        lambda: world.owner.update_offer(world.offer["id"], {"holdout_pct": 90}),  # 422
        lambda: world.owner.rotate_key(str(uuid.uuid4())),  # 404
        lambda: world.owner.redeem("7K3Q-XM9T-2RK"),  # unknown code: 404
    ]
    for attempt in attempts:
        with pytest.raises(ApiError):
            attempt()
    world.owner.revoke_key(world.staff_key["id"])
    world.owner.revoke_key(world.staff_key["id"])  # again: no change, no event
    after = world.owner.audit_trail()["events"]
    assert [e["action"] for e in after[: len(after) - len(before)]] == ["key.revoke"]


def test_a_replayed_redemption_is_recorded_once(owner: Client, mobile: Client) -> None:
    code, venue_id = _code(owner, mobile)
    first = owner.redeem(code, venue_id, idempotency_key="till-1")
    assert owner.redeem(code, venue_id, idempotency_key="till-1") == first
    redemptions = [e for e in owner.audit_trail()["events"] if e["action"] == "redemption.create"]
    assert [e["object_id"] for e in redemptions] == [first["id"]]


def test_the_trail_never_holds_a_secret(world: World) -> None:
    rotated = world.owner.rotate_key(world.staff_key["id"])
    code, venue_id = _code(world.owner, world.mobile)
    world.owner.redeem(code, venue_id)
    presence = world.owner.presence_code(world.venue["id"])["code"]
    trail = json.dumps(world.owner.audit_trail(limit=200))
    secrets = [world.staff_key["api_key"], rotated["api_key"], world.owner.token or "", code]
    for secret in secrets:
        assert secret not in trail
        assert secret.split("_", 2)[-1] not in trail  # nor the secret part of a key
    assert code.replace("-", "") not in trail and presence not in trail


def test_pages_go_back_in_time_without_gaps_or_repeats(owner: Client) -> None:
    venues = [owner.create_venue(venue_body(name=f"V{i}"))["id"] for i in range(5)]
    seen: list[str] = []
    page = owner.audit_trail(limit=2)
    while True:
        seen += [e["object_id"] for e in page["events"]]
        if page["next_before"] is None:
            break
        page = owner.audit_trail(limit=2, before=page["next_before"])
    assert seen[:5] == venues[::-1]
    assert len(seen) == len(set(seen)) == 7  # and the merchant and its owner key, oldest

    one = owner.audit_trail(object_id=venues[2])["events"]
    assert [(e["action"], e["object_id"]) for e in one] == [("venue.create", venues[2])]
    with pytest.raises(ApiError) as err:
        owner.audit_trail(before=str(uuid.uuid4()))
    assert err.value.status == 404


def test_only_the_owner_reads_the_trail_and_only_its_own(
    owner: Client, other_owner: Client
) -> None:
    for role in ("staff", "analyst"):
        with pytest.raises(ApiError) as err:
            owner.with_token(owner.create_key(role)["api_key"]).audit_trail()
        assert err.value.status == 403
    owner.create_venue(venue_body())
    mine = owner.audit_trail()["events"]
    theirs = other_owner.audit_trail()["events"]
    assert not {e["id"] for e in mine} & {e["id"] for e in theirs}
    assert {e["action"] for e in theirs} == {"merchant.create", "key.create"}
    with pytest.raises(ApiError) as err:
        other_owner.audit_trail(before=mine[0]["id"])  # another tenant's event: 404
    assert err.value.status == 404
