"""Taps, tap tokens and card reads under real parallel HTTP requests against a real gunicorn
process: of many requests with the same read (the same counter), exactly one wins, whatever the
concurrency; a tap token is spent by exactly one check-in."""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from mobile_stub.client import ApiError, Client
from mobile_stub.ntag import SoftTag, random_uid
from tests.e2e.test_concurrency import client, in_parallel
from tests.factories import offer_body, venue_body

pytestmark = pytest.mark.e2e


def outcome(result: Any) -> str:
    return result.code if isinstance(result, ApiError) else "ok"


def setup(live_api: Client) -> tuple[Client, dict[str, Any], SoftTag]:
    owner = live_api.with_token(live_api.create_merchant("Tag Cafe", "tag@example.com")["api_key"])
    venue = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    uid = random_uid()
    return owner, venue, SoftTag.programmed(owner.register_nfc_tag(venue["id"], uid), uid)


def users(live_api: Client, live_server: str, n: int) -> list[Client]:
    return [
        client(
            live_server, live_api.create_user(f"t{secrets.token_hex(6)}", "pass-word-1")["token"]
        )
        for _ in range(n)
    ]


def test_twenty_parallel_taps_of_one_read_exactly_one_wins(
    live_server: str, live_api: Client
) -> None:
    _, _, tag = setup(live_api)
    for _round in range(3):  # a few rounds: one lucky interleaving proves nothing
        url = tag.read()
        taps = users(live_api, live_server, 20)
        results = in_parallel([lambda u=u, url=url: u.tap(url) for u in taps])
        assert Counter(outcome(r) for r in results) == {"ok": 1, "tap_replayed": 19}


def test_a_tap_token_is_spent_by_exactly_one_of_parallel_checkins(
    live_server: str, live_api: Client
) -> None:
    owner, venue, tag = setup(live_api)
    owner.activate_offer(
        owner.create_offer(offer_body([venue["id"]], min_proof="nfc_tap", per_user_cap=100))["id"]
    )
    (user,) = users(live_api, live_server, 1)
    token = user.tap(tag.read())["tap_token"]
    lon, lat = venue["location"]["coordinates"]
    phones = [client(live_server, user.token or "") for _ in range(10)]
    results = in_parallel(
        [
            lambda p=p: p.check_in(
                venue["id"], lat, lon, 10, datetime.now(UTC).isoformat(), tap_token=token
            )
            for p in phones
        ]
    )
    proofs = Counter(r["proof"] for r in results if not isinstance(r, ApiError))
    assert proofs == {"nfc_tap": 1, "gps": 9}
    unlocked = [r for r in results if not isinstance(r, ApiError) and r["unlocks"]]
    assert len(unlocked) == 1


def test_parallel_staff_reads_of_one_card_read_check_in_once(
    live_server: str, live_api: Client
) -> None:
    owner, venue, _ = setup(live_api)
    (guest,) = users(live_api, live_server, 1)
    uid = random_uid()
    card = SoftTag.programmed(guest.register_card(uid), uid)
    url = card.read()
    tills = [client(live_server, owner.create_key("staff")["api_key"]) for _ in range(8)]
    results = in_parallel([lambda t=t: t.staff_check_in(venue["id"], card_url=url) for t in tills])
    assert Counter(outcome(r) for r in results) == {"ok": 1, "tap_replayed": 7}
