"""Offers: validation of every field and rule kind, and the lifecycle."""

from __future__ import annotations

from typing import Any

import pytest

from mobile_stub.client import ApiError, Client
from tests.factories import offer_body, venue_body


@pytest.fixture
def venue_id(owner: Client) -> str:
    venue_id: str = owner.create_venue(venue_body())["id"]
    return venue_id


VALID_RULES = [
    {"kind": "every_checkin"},
    {"kind": "first_visit"},
    {"kind": "nth_visit", "visits": 5},
    {"kind": "nth_visit", "visits": 3, "within_days": 30, "repeat": True},
    {"kind": "top_visitor"},
    {"kind": "top_visitor", "window_days": 30},
    {"kind": "group", "min_people": 3, "within_minutes": 15},
]


@pytest.mark.parametrize("rule", VALID_RULES)
def test_every_rule_kind_is_accepted_and_echoed(
    owner: Client, venue_id: str, rule: dict[str, Any]
) -> None:
    offer = owner.create_offer(offer_body([venue_id], rule=rule))
    assert offer["rule"] == rule
    assert offer["status"] == "draft"
    assert owner.get_offer(offer["id"]) == offer


def test_defaults_and_full_body(owner: Client, venue_id: str) -> None:
    offer = owner.create_offer(offer_body([venue_id]))
    assert offer["per_user_cap"] == 1
    assert offer["code_ttl_minutes"] == 1440
    assert offer["requires_presence_code"] is False
    assert offer["holdout_pct"] == 0
    assert offer["total_cap"] is None and offer["windows"] == []
    assert offer["venue_ids"] == [venue_id]
    full = owner.create_offer(
        offer_body(
            [venue_id],
            description="One per visit",
            terms="Not with other offers",
            starts_at="2026-12-01T08:00:00+02:00",
            ends_at="2026-12-31T22:00:00+02:00",
            windows=[{"days": ["fri", "sat"], "start": "22:00", "end": "02:00"}],
            total_cap=100,
            per_user_cap=2,
            code_ttl_minutes=60,
            requires_presence_code=True,
            holdout_pct=10,
        )
    )
    assert full["starts_at"] == "2026-12-01T06:00:00+00:00"  # answered in UTC
    assert full["windows"] == [{"days": ["fri", "sat"], "start": "22:00", "end": "02:00"}]
    assert full["total_cap"] == 100 and full["holdout_pct"] == 10


INVALID: list[tuple[str, dict[str, Any]]] = [
    ("unknown kind", {"rule": {"kind": "lottery"}}),
    ("nth without visits", {"rule": {"kind": "nth_visit"}}),
    ("nth visits zero", {"rule": {"kind": "nth_visit", "visits": 0}}),
    ("param of another kind", {"rule": {"kind": "first_visit", "visits": 2}}),
    ("group too small", {"rule": {"kind": "group", "min_people": 1, "within_minutes": 5}}),
    ("group without minutes", {"rule": {"kind": "group", "min_people": 3}}),
    ("unknown rule field", {"rule": {"kind": "every_checkin", "bonus": 1}}),
    (
        "ends before starts",
        {"starts_at": "2026-12-02T00:00:00Z", "ends_at": "2026-12-01T00:00:00Z"},
    ),
    ("naive timestamp", {"starts_at": "2026-12-01T00:00:00"}),
    ("bad day", {"windows": [{"days": ["funday"], "start": "10:00", "end": "11:00"}]}),
    ("no days", {"windows": [{"days": [], "start": "10:00", "end": "11:00"}]}),
    ("bad time", {"windows": [{"days": ["mon"], "start": "25:00", "end": "11:00"}]}),
    ("empty window", {"windows": [{"days": ["mon"], "start": "10:00", "end": "10:00"}]}),
    ("repeated day", {"windows": [{"days": ["mon", "mon"], "start": "10:00", "end": "11:00"}]}),
    ("zero cap", {"total_cap": 0}),
    ("fractional cap", {"total_cap": 2.5}),
    ("per user zero", {"per_user_cap": 0}),
    ("ttl zero", {"code_ttl_minutes": 0}),
    ("holdout above 50", {"holdout_pct": 60}),
    ("holdout negative", {"holdout_pct": -1}),
    ("presence as string", {"requires_presence_code": "yes"}),
    ("no venues", {"venue_ids": []}),
    ("venue not a uuid", {"venue_ids": ["nope"]}),
    ("empty title", {"title": ""}),
    ("unknown field", {"discount": "50%"}),
    ("status is not settable", {"status": "active"}),
]


@pytest.mark.parametrize(("case", "change"), INVALID, ids=[c for c, _ in INVALID])
def test_invalid_offers_are_422_and_create_nothing(
    owner: Client, venue_id: str, case: str, change: dict[str, Any]
) -> None:
    with pytest.raises(ApiError) as err:
        owner.create_offer(offer_body([venue_id], **change))
    assert (err.value.status, err.value.code) == (422, "validation_error"), case
    assert err.value.errors
    assert owner.list_offers() == []


def test_unknown_venue_is_404(owner: Client, other_owner: Client) -> None:
    theirs = other_owner.create_venue(venue_body())["id"]
    with pytest.raises(ApiError) as err:
        owner.create_offer(offer_body([theirs]))
    assert (err.value.status, err.value.code) == (404, "not_found")
    assert owner.list_offers() == []


def test_lifecycle_and_illegal_moves(owner: Client, venue_id: str) -> None:
    offer = owner.create_offer(offer_body([venue_id]))
    oid = offer["id"]
    for illegal in (owner.pause_offer, owner.end_offer):
        with pytest.raises(ApiError) as err:
            illegal(oid)
        assert (err.value.status, err.value.code) == (409, "illegal_transition")
    assert owner.activate_offer(oid)["status"] == "active"
    with pytest.raises(ApiError):
        owner.activate_offer(oid)
    assert owner.pause_offer(oid)["status"] == "paused"
    assert owner.activate_offer(oid)["status"] == "active"
    assert owner.pause_offer(oid)["status"] == "paused"
    assert owner.end_offer(oid)["status"] == "ended"
    for move in (owner.activate_offer, owner.pause_offer, owner.end_offer):
        with pytest.raises(ApiError) as err:
            move(oid)
        assert err.value.status == 409
    with pytest.raises(ApiError) as err:
        owner.update_offer(oid, {"title": "Back from the dead"})
    assert err.value.status == 409
    assert owner.get_offer(oid)["status"] == "ended"
    assert [o["id"] for o in owner.list_offers("ended")] == [oid]
    assert owner.list_offers("active") == []


def test_patch_changes_only_what_is_sent_and_validates(owner: Client, venue_id: str) -> None:
    second = owner.create_venue(venue_body(name="Second"))["id"]
    offer = owner.create_offer(offer_body([venue_id], total_cap=10))
    patched = owner.update_offer(
        offer["id"], {"title": "Two coffees", "venue_ids": [venue_id, second], "total_cap": None}
    )
    assert patched["title"] == "Two coffees"
    assert sorted(patched["venue_ids"]) == sorted([venue_id, second])
    assert patched["total_cap"] is None
    assert patched["rule"] == offer["rule"]
    with pytest.raises(ApiError) as err:
        owner.update_offer(offer["id"], {"rule": {"kind": "nth_visit"}})
    assert err.value.status == 422
    with pytest.raises(ApiError) as err:
        owner.update_offer(
            offer["id"], {"ends_at": "2000-01-01T00:00:00Z", "starts_at": "2001-01-01T00:00:00Z"}
        )
    assert err.value.status == 422
    assert owner.get_offer(offer["id"])["title"] == "Two coffees"


def test_lifecycle_roles(owner: Client, venue_id: str) -> None:
    offer = owner.create_offer(offer_body([venue_id]))
    staff = owner.with_token(owner.create_key("staff")["api_key"])
    with pytest.raises(ApiError) as err:
        staff.activate_offer(offer["id"])
    assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        staff.list_offers()
    assert err.value.status == 403
