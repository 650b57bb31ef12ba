"""The whole story through the mobile_stub client against a real server process."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mobile_stub.client import ApiError, Client
from tests.factories import venue_body

pytestmark = pytest.mark.e2e


def test_walk_in_check_in_redeem(live_api: Client) -> None:
    # A merchant sets up a venue with a drawn geofence and an offer.
    owner = live_api.with_token(
        live_api.create_merchant("Cafe Regatta", "hi@regatta.fi")["api_key"]
    )
    fence = {
        "type": "Polygon",
        "coordinates": [
            [
                [24.9115, 60.1745],
                [24.9125, 60.1745],
                [24.9125, 60.1750],
                [24.9115, 60.1750],
                [24.9115, 60.1745],
            ]
        ],
    }
    venue = owner.create_venue(
        venue_body(
            name="Cafe Regatta",
            geofence=fence,
            location={"type": "Point", "coordinates": [24.9120, 60.1747]},
        )
    )
    offer = owner.create_offer(
        {
            "venue_ids": [venue["id"]],
            "title": "Cinnamon bun on the house",
            "rule": {"kind": "first_visit"},
            "code_ttl_minutes": 120,
        }
    )
    owner.activate_offer(offer["id"])
    staff = owner.with_token(owner.create_key("staff", "counter")["api_key"])

    # A user finds it nearby, walks in and checks in.
    user = live_api.with_token(live_api.create_user("maija", "pulla-pulla")["token"])
    [listed] = [v for v in user.nearby(60.1747, 24.9121, radius_m=300) if v["id"] == venue["id"]]
    assert listed["offers"][0]["title"] == "Cinnamon bun on the house"
    user.nearby(60.1747, 24.9121, radius_m=300)  # and looks again: still one impression today
    now = datetime.now(UTC).isoformat()
    checkin = user.check_in(venue["id"], 60.17472, 24.91205, 8, now, device_id="phone-1")
    assert checkin["status"] == "verified"
    [unlock] = checkin["unlocks"]

    # The staff key redeems it once; a second redemption fails.
    redemption = staff.redeem(unlock["code"], venue["id"])
    assert redemption["offer_id"] == offer["id"]
    with pytest.raises(ApiError) as err:
        staff.redeem(unlock["code"])
    assert err.value.code == "already_redeemed"
    assert [u["status"] for u in user.wallet()] == ["redeemed"]
    funnel = owner.offer_funnel(offer["id"])
    assert (funnel["impressions"], funnel["checkins"], funnel["redemptions"]) == (1, 1, 1)
    assert funnel["rates"]["checkin_per_impression"] == 1.0

    # A user 2 km away is rejected, and gets nothing.
    faraway = live_api.with_token(live_api.create_user("kaukana", "far-far-away")["token"])
    result = faraway.check_in(venue["id"], 60.1927, 24.9120, 8, now)
    assert result["status"] == "rejected"
    assert [r["code"] for r in result["reasons"]] == ["outside_geofence"]
    assert faraway.wallet() == []
