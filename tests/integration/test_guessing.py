"""Guessing secrets: presence codes are limited per user, per device and per venue in a sliding
window, and the leak report shows the guessing (issue 23: 150 wrong codes in 2.4 s were all
answered, then the right one unlocked). `tests/e2e/test_guessing_concurrency.py` holds the limits under
real parallel requests."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import pytest

from geo import presence
from mobile_stub.client import ApiError, Client
from tests.factories import offer_body, venue_body


def new_user(api: Client) -> Client:
    return api.with_token(api.create_user(f"g{secrets.token_hex(5)}", "pass-word-1")["token"])


def wrong(code: str) -> str:
    return f"{(int(code) + 500_000) % 1_000_000:06d}"


@pytest.fixture
def venue(owner: Client) -> dict[str, Any]:
    venue: dict[str, Any] = owner.create_venue(venue_body(checkin_cooldown_minutes=0))
    offer = owner.create_offer(
        offer_body([venue["id"]], min_proof="presence_code", per_user_cap=99)
    )
    owner.activate_offer(offer["id"])
    return venue


def check_in(
    user: Client, venue: dict[str, Any], code: str | None, at: str | None = None, **kw: Any
) -> Any:
    lon, lat = venue["location"]["coordinates"]
    at = at or datetime.now(UTC).isoformat()
    try:
        return user.check_in(venue["id"], lat, lon, 10, at, presence_code=code, **kw)
    except ApiError as error:
        return error


def test_wrong_codes_are_limited_per_user_and_the_limit_hides_the_answer(
    owner: Client, api: Client, mobile: Client, venue: dict[str, Any]
) -> None:
    good = owner.presence_code(venue["id"])["code"]
    for _ in range(presence.MAX_WRONG_PER_USER):
        answer = check_in(mobile, venue, wrong(good))
        assert [r["code"] for r in answer["reasons"]] == ["presence_code_invalid"]
    # Over the limit even the right code is refused before it is checked: no oracle.
    refused = check_in(mobile, venue, good)
    assert isinstance(refused, ApiError)
    assert (refused.status, refused.code) == (429, "too_many_attempts")
    assert "5 wrong presence codes from your account within 15 min" in refused.detail
    retry = int(refused.response.headers["Retry-After"])
    assert 890 <= retry <= 901
    # Without a code the user is judged as usual; another user's right code still works.
    assert check_in(mobile, venue, None)["status"] == "verified"
    other = check_in(new_user(api), venue, good)
    assert other["status"] == "verified" and other["proof"] == "presence_code"
    assert other["unlocks"]


def test_wrong_codes_are_limited_per_device_across_accounts(
    owner: Client, api: Client, venue: dict[str, Any]
) -> None:
    good = owner.presence_code(venue["id"])["code"]
    first, second = new_user(api), new_user(api)
    for user in (first, first, first, second, second):
        assert check_in(user, venue, wrong(good), device_id="phone-1")["status"] == "rejected"
    refused = check_in(second, venue, good, device_id="phone-1")
    assert isinstance(refused, ApiError) and refused.code == "too_many_attempts"
    assert "from this device" in refused.detail
    # The second account has 2 wrong codes of its own: from another device it may go on.
    assert check_in(second, venue, good, device_id="phone-2")["proof"] == "presence_code"


def test_wrong_codes_are_limited_per_venue_whatever_the_accounts(
    owner: Client, api: Client, venue: dict[str, Any]
) -> None:
    elsewhere = owner.create_venue(venue_body(name="Elsewhere", checkin_cooldown_minutes=0))
    good = owner.presence_code(venue["id"])["code"]
    guessers = [
        new_user(api) for _ in range(presence.MAX_WRONG_PER_VENUE // presence.MAX_WRONG_PER_USER)
    ]
    for user in guessers:
        for _ in range(presence.MAX_WRONG_PER_USER):
            assert check_in(user, venue, wrong(good))["status"] == "rejected"
    honest = new_user(api)
    refused = check_in(honest, venue, good)
    assert isinstance(refused, ApiError) and refused.code == "too_many_attempts"
    assert "30 wrong presence codes at this venue" in refused.detail
    # Another venue's codes are not affected, and the honest guest can still check in by GPS.
    there = check_in(honest, elsewhere, owner.presence_code(elsewhere["id"])["code"])
    assert there["proof"] == "presence_code"
    assert check_in(honest, venue, None)["status"] == "verified"

    report = owner.leak_report()["presence_codes"]
    assert report == {
        "wrong": presence.MAX_WRONG_PER_VENUE,
        "users_with_wrong_codes": len(guessers),
        "refused_over_limit": {"user": 0, "device": 0, "venue": 1},
        "window_minutes": 15,
        "limits": {"user": 5, "device": 5, "venue": 30},
    }


def test_a_refusal_under_an_idempotency_key_is_replayed_and_recorded(
    owner: Client, mobile: Client, venue: dict[str, Any]
) -> None:
    good = owner.presence_code(venue["id"])["code"]
    for _ in range(presence.MAX_WRONG_PER_USER):
        check_in(mobile, venue, wrong(good))
    at = datetime.now(UTC).isoformat()
    first = check_in(mobile, venue, good, at, idempotency_key="k-1")
    again = check_in(mobile, venue, good, at, idempotency_key="k-1")
    assert isinstance(first, ApiError) and isinstance(again, ApiError)
    assert (first.status, again.status) == (429, 429)
    assert int(first.response.headers["Retry-After"]) > 800
    assert again.response.headers.get("Idempotent-Replayed") == "true"
    assert owner.leak_report()["presence_codes"]["refused_over_limit"]["user"] == 1
