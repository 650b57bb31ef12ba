"""Guess limits (presence codes, passwords) under real parallel HTTP requests against a real gunicorn (2 workers, 8 threads
each): wrong presence codes sent all at once, from many accounts and one device, still stop at
the limits, because the counts live in PostgreSQL and the device's and venue's locks make
parallel guesses see each other."""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from core import throttle
from geo import presence
from mobile_stub.client import ApiError, Client
from tests.e2e.test_concurrency import client, in_parallel, setup_venue, sign_up

pytestmark = pytest.mark.e2e


def outcome(result: Any) -> str:
    return result.code if isinstance(result, ApiError) else str(result["status"])


def guess(user: Client, venue: dict[str, Any], code: str, device: str | None) -> Any:
    lon, lat = venue["location"]["coordinates"]
    return user.check_in(
        venue["id"],
        lat,
        lon,
        10,
        datetime.now(UTC).isoformat(),
        presence_code=code,
        device_id=device,
    )


def wrong_code(owner: Client, venue: dict[str, Any]) -> str:
    good = owner.presence_code(venue["id"])["code"]
    return f"{(int(good) + 500_000) % 1_000_000:06d}"


def test_parallel_guesses_from_many_accounts_stop_at_the_venue_limit(
    live_server: str, live_api: Client
) -> None:
    owner, venue, _ = setup_venue(live_api, min_proof="presence_code")
    code = wrong_code(owner, venue)
    users = [client(live_server, t) for t in sign_up(live_api, 8)]
    # 8 accounts x 6 guesses = 48 at once: each account may send 5, the venue 30 in all.
    calls = [lambda u=u: guess(u, venue, code, None) for u in users for _ in range(6)]
    results = in_parallel(calls)
    assert Counter(outcome(r) for r in results) == {
        "rejected": presence.MAX_WRONG_PER_VENUE,
        "too_many_attempts": len(calls) - presence.MAX_WRONG_PER_VENUE,
    }


def test_parallel_guesses_from_one_device_stop_at_the_device_limit(
    live_server: str, live_api: Client
) -> None:
    owner, venue, _ = setup_venue(live_api, min_proof="presence_code")
    code = wrong_code(owner, venue)
    users = [client(live_server, t) for t in sign_up(live_api, 4)]
    # Four accounts on one phone, 3 guesses each at once: the device may send 5.
    results = in_parallel(
        [lambda u=u: guess(u, venue, code, "rooted-phone") for u in users for _ in range(3)]
    )
    assert Counter(outcome(r) for r in results) == {
        "rejected": presence.MAX_WRONG_PER_DEVICE,
        "too_many_attempts": 12 - presence.MAX_WRONG_PER_DEVICE,
    }


def test_parallel_wrong_passwords_stop_at_the_sign_in_limit(
    live_server: str, live_api: Client
) -> None:
    handle = f"s{secrets.token_hex(6)}"
    live_api.create_user(handle, "the-right-one")
    # 12 wrong passwords at once from one address: each attempt is recorded as a failure under
    # the handle's lock before its Argon2 check, so exactly the per-address limit is answered.
    results = in_parallel([lambda: live_api.login(handle, "a-wrong-one") for _ in range(12)])
    assert Counter(outcome(r) for r in results) == {
        "unauthorized": throttle.MAX_FAILURES_PER_SOURCE,
        "too_many_attempts": 12 - throttle.MAX_FAILURES_PER_SOURCE,
    }
