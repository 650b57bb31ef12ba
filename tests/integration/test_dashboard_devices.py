"""A till device in the dashboard, over HTTP in-process: pairing at /dashboard/pair, the device's
own cookie, its scope through the proxy, revoking and unpairing."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.dashboard import session as dash_session
from mobile_stub.client import Client
from tests.factories import venue_body


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture
def venues(owner: Client) -> tuple[dict[str, Any], dict[str, Any]]:
    here = owner.create_venue(venue_body(name="Here"))
    there = owner.create_venue(
        venue_body(name="There", location={"type": "Point", "coordinates": [24.95, 60.18]})
    )
    return dict(here), dict(there)


def pair(client: FlaskClient, code: str, **kwargs: Any) -> Any:
    page = client.get(f"/dashboard/pair?code={code}", **kwargs)
    return client.post(
        "/dashboard/pair",
        data={"code": code, "csrf_token": csrf_of(page.get_data(as_text=True))},
        **kwargs,
    )


def device_cookie(response: Any) -> str:
    [header] = [
        h
        for h in response.headers.getlist("Set-Cookie")
        if h.startswith(dash_session.DEVICE_COOKIE + "=")
    ]
    return str(header)


def test_pairing_sets_a_hardened_long_lived_cookie_that_hides_the_key(
    app: Flask, client: FlaskClient, owner: Client, venues: Any
) -> None:
    here, _ = venues
    code = owner.create_pairing(here["id"], "Front")["code"]
    preview = client.get(f"/dashboard/pair?code={code}")
    assert preview.status_code == 200
    assert f'value="{code}"' in preview.get_data(as_text=True)
    assert owner.list_devices() == []  # a GET (a link preview) pairs nothing

    paired = pair(client, code)
    assert paired.status_code == 302
    assert paired.headers["Location"].endswith("/dashboard/till")
    cookie = device_cookie(paired)
    for flag in ("HttpOnly", "SameSite=Lax", "Path=/dashboard"):
        assert flag in cookie
    max_age = int(re.search(r"Max-Age=(\d+)", cookie).group(1))  # type: ignore[union-attr]
    assert max_age == 400 * 86400
    assert "Secure" not in cookie  # plain HTTP here
    [device] = owner.list_devices()
    assert device["label"] == "Front"
    [key] = [k for k in owner.list_keys() if k["id"] == device["id"]]
    value = SimpleCookie(cookie)[dash_session.DEVICE_COOKIE].value
    assert "cok_" not in value

    till = client.get("/dashboard/till").get_data(as_text=True)
    assert 'Redeem a code <span class="till-venue">at Here</span>' in till
    assert 'id="venue"' not in till  # no venue to choose: the device's own
    assert "Sign out" not in till and "Unpair this device" in till
    assert key["venue_id"] == here["id"]


def test_the_cookie_is_secure_over_https(client: FlaskClient, owner: Client, venues: Any) -> None:
    code = owner.create_pairing(venues[0]["id"])["code"]
    paired = pair(client, code, base_url="https://localhost")
    assert "Secure" in device_cookie(paired)


def test_pairing_needs_the_forms_token_and_a_good_code(
    client: FlaskClient, owner: Client, venues: Any
) -> None:
    code = owner.create_pairing(venues[0]["id"])["code"]
    forged = client.post("/dashboard/pair", data={"code": code})
    assert forged.status_code == 400
    assert owner.list_devices() == []
    wrong = pair(client, "ZZZZ-ZZZZ")
    assert wrong.status_code == 422
    assert "That code is wrong, used or expired" in wrong.get_data(as_text=True)
    malformed = pair(client, "hello")
    assert "That is not a pairing code" in malformed.get_data(as_text=True)
    assert pair(client, code).status_code == 302


def test_a_device_reaches_only_its_venue_through_the_proxy(
    client: FlaskClient, owner: Client, venues: Any
) -> None:
    here, there = venues
    pair(client, owner.create_pairing(here["id"])["code"])
    token = csrf_of(client.get("/dashboard/till").get_data(as_text=True))
    headers = {"X-CSRF-Token": token}
    own = client.get(f"/dashboard/api/venues/{here['id']}/presence-code")
    assert own.status_code == 200
    elsewhere = client.get(f"/dashboard/api/venues/{there['id']}/presence-code")
    assert (elsewhere.status_code, elsewhere.get_json()["code"]) == (403, "venue_not_paired")
    for method, path in (
        ("GET", "/venues"),
        ("GET", "/offers"),
        ("GET", "/devices"),
        ("GET", "/feedback"),
    ):
        refused = client.open(f"/dashboard/api{path}", method=method, headers=headers)
        assert refused.status_code == 403, path
        assert refused.get_json()["code"] == "device_not_allowed"
    checked = client.post(
        "/dashboard/api/redemptions/check", json={"code": "7K3Q-XM9T-2RK"}, headers=headers
    )
    assert checked.get_json()["outcome"] == "unknown"
    # Its pages: the till and its venue's presence code only.
    assert client.get("/dashboard/offers").status_code == 403
    assert client.get("/dashboard/settings/devices").status_code == 403
    # the feedback inbox is staff's, but not a till device's: not in its menu, refused
    assert client.get("/dashboard/feedback").status_code == 403
    assert "/dashboard/feedback" not in client.get("/dashboard/till").get_data(as_text=True)
    assert client.get(f"/dashboard/presence/{there['id']}").status_code == 404
    assert client.get(f"/dashboard/presence/{here['id']}").status_code == 200
    listing = client.get("/dashboard/presence").get_data(as_text=True)
    assert "Here" in listing and "There" not in listing


def test_a_revoked_device_is_sent_to_pair_again(
    client: FlaskClient, owner: Client, venues: Any
) -> None:
    pair(client, owner.create_pairing(venues[0]["id"])["code"])
    [device] = owner.list_devices()
    owner.revoke_device(device["id"])
    response = client.get("/dashboard/till")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/dashboard/pair?ended=1")
    ended = client.get("/dashboard/pair?ended=1")
    assert "pairing has ended" in ended.get_data(as_text=True)
    assert "Max-Age=0" in device_cookie(ended) or "Expires=Thu, 01 Jan 1970" in device_cookie(ended)
    assert client.get("/dashboard/till").headers["Location"].startswith("/dashboard/sign-in")


def test_unpairing_revokes_the_devices_key(client: FlaskClient, owner: Client, venues: Any) -> None:
    pair(client, owner.create_pairing(venues[0]["id"])["code"])
    token = csrf_of(client.get("/dashboard/till").get_data(as_text=True))
    ignored = client.post("/dashboard/device/unpair", data={})  # no token: nothing happens
    assert ignored.status_code == 302
    assert owner.list_devices() != []
    response = client.post("/dashboard/device/unpair", data={"csrf_token": token})
    assert response.headers["Location"].endswith("/dashboard/pair?unpaired=1")
    assert owner.list_devices() == []
    [revoked] = owner.list_devices(include_revoked=True)
    assert revoked["revoked_at"] is not None
    events = owner.audit_trail()["events"]
    assert events[0]["action"] == "device.revoke"
    assert events[0]["actor_key_id"] == revoked["id"]  # the device revoked itself


def test_pairing_again_revokes_the_previous_device_and_an_owner_still_signs_in(
    client: FlaskClient, owner: Client, venues: Any
) -> None:
    here, there = venues
    pair(client, owner.create_pairing(here["id"], "first")["code"])
    pair(client, owner.create_pairing(there["id"], "second")["code"])
    assert [d["label"] for d in owner.list_devices()] == ["second"]
    till = client.get("/dashboard/till").get_data(as_text=True)
    assert "at There" in till

    # An owner can sign in on a paired device; signing out leaves the till paired.
    page = client.get("/dashboard/sign-in")
    assert page.status_code == 200
    client.post(
        "/dashboard/sign-in",
        data={"api_key": owner.token, "csrf_token": csrf_of(page.get_data(as_text=True))},
    )
    assert client.get("/dashboard/offers").status_code == 200
    token = csrf_of(client.get("/dashboard/offers").get_data(as_text=True))
    client.post("/dashboard/sign-out", data={"csrf_token": token})
    assert "at There" in client.get("/dashboard/till").get_data(as_text=True)
