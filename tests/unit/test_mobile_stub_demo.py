"""The demo's choices (`mobile_stub.demo`), pure: which venues the personas use, what the loader
sends for venues and offers. Loading itself is tested against a server in tests/e2e/test_demo.py."""

from __future__ import annotations

import pytest

from mobile_stub.city import City, load_city
from mobile_stub.demo import (
    CIRCLE_RADIUS_M,
    MAX_VENUES_PER_OFFER,
    offer_bodies,
    pick_roles,
    pick_venues,
    venue_body,
)
from mobile_stub.geodesy import distance_m


@pytest.fixture(scope="module")
def city() -> City:
    return load_city()


def test_the_personas_venues_are_distinct_and_fit_their_stories(city: City) -> None:
    roles = pick_roles(city)
    assert len({p.osm for p in roles.values()}) == len(roles)
    assert roles["regular_cafe"].category == "cafe"
    # Riikka walks on to a place a few minutes away.
    assert 180 <= distance_m(roles["regular_cafe"].position, roles["second_stop"].position) <= 320
    assert roles["newcomer_restaurant"].category == "restaurant"
    assert roles["group_pub"].category in ("pub", "bar")
    assert roles["sharer_shop"].is_shop and roles["replay_shop"].is_shop
    # A jump no one makes in a few seconds.
    assert distance_m(roles["teleport_from"].position, roles["teleport_to"].position) > 500
    assert pick_roles(city) == roles  # the same every time


@pytest.mark.parametrize("count", [5, 20, 120])
def test_the_demo_loads_the_personas_venues_and_those_with_footprints_first(
    city: City, count: int
) -> None:
    roles, places = pick_venues(city, count)
    assert len(places) == max(count, len(roles))
    assert {p.osm for p in roles.values()} <= {p.osm for p in places}
    if count >= 40:
        assert all(p in places for p in city.places if p.footprint is not None)


def test_a_venue_is_fenced_by_its_footprint_or_a_circle(city: City) -> None:
    with_footprint = next(p for p in city.places if p.footprint is not None)
    without = next(p for p in city.places if p.footprint is None)
    body = venue_body(city, with_footprint, 5)
    assert body["geofence"] == with_footprint.footprint and "radius_m" not in body
    body = venue_body(city, without, 0)
    assert body["radius_m"] == CIRCLE_RADIUS_M and "geofence" not in body
    assert body["location"]["coordinates"] == [without.position.lon, without.position.lat]
    assert body["timezone"] == "Europe/Helsinki"
    assert body["checkin_cooldown_minutes"] == 0


def test_the_offers_cover_every_rule_kind_a_presence_code_a_holdout_and_a_cap(city: City) -> None:
    roles, places = pick_venues(city, 120)
    ids = {p.osm: f"id-{i}" for i, p in enumerate(places)}
    offers = offer_bodies(roles, places, ids)
    kinds = {o["rule"]["kind"] for o in offers.values()}
    assert kinds == {"every_checkin", "first_visit", "nth_visit", "top_visitor", "group"}
    assert any(o.get("requires_presence_code") for o in offers.values())
    assert any(o.get("holdout_pct") for o in offers.values())
    assert any(o.get("total_cap") for o in offers.values())
    for offer in offers.values():
        assert 1 <= len(offer["venue_ids"]) <= MAX_VENUES_PER_OFFER
    # Each persona finds the offer its story is about at its venue.
    at = {name: set(o["venue_ids"]) for name, o in offers.items()}
    assert ids[roles["regular_cafe"].osm] in at["nth_visit"] & at["top_visitor"]
    assert ids[roles["second_stop"].osm] in at["holdout"]
    assert ids[roles["newcomer_restaurant"].osm] in at["first_visit"] & at["presence"]
    assert ids[roles["group_pub"].osm] in at["group"]
    assert ids[roles["sharer_shop"].osm] in at["capped"]
