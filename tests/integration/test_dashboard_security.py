"""The dashboard's session, CSRF protection and API proxy, over HTTP (in-process, real PostGIS).

The browser tests (`test_dashboard.py`) show the pages work; these show what an attacker cannot
do: read the API key out of the cookie, post without the session's CSRF token, reach API routes
the dashboard does not use, or be redirected off-site after signing in.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mobile_stub.client import Client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def sign_in(client: FlaskClient, key: str, **kwargs: Any) -> Any:
    page = client.get("/dashboard/sign-in")
    return client.post(
        "/dashboard/sign-in",
        data={"api_key": key, "csrf_token": csrf_of(page.get_data(as_text=True))},
        **kwargs,
    )


def page_csrf(client: FlaskClient, path: str = "/dashboard/till") -> str:
    return csrf_of(client.get(path).get_data(as_text=True))


def test_the_session_cookie_is_hardened_and_does_not_reveal_the_key(
    app: Flask, client: FlaskClient, owner: Client
) -> None:
    assert owner.token
    response = sign_in(client, owner.token)
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("checkin_offers_dashboard=")
    for flag in ("HttpOnly", "SameSite=Lax", "Path=/dashboard"):
        assert flag in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the next test
    value = cookie.split(";")[0].split("=", 1)[1]
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    data = serializer.loads(value)
    assert set(data) >= {"key", "csrf", "merchant"}
    assert owner.token not in value and owner.token not in str(data)
    assert owner.token.split("_", 2)[2] not in str(data)


def test_the_cookie_is_secure_over_https(client: FlaskClient, owner: Client) -> None:
    assert owner.token
    response = sign_in(client, owner.token, base_url="https://localhost")
    assert "Secure" in response.headers["Set-Cookie"]


def test_signing_in_needs_the_forms_csrf_token(client: FlaskClient, owner: Client) -> None:
    response = client.post("/dashboard/sign-in", data={"api_key": owner.token})
    assert response.status_code == 400
    assert "The form had expired" in response.get_data(as_text=True)
    assert client.get("/dashboard/offers").status_code == 302  # still signed out


def test_the_proxy_needs_the_session_and_its_csrf_token(client: FlaskClient, owner: Client) -> None:
    assert owner.token
    venue = {
        "name": "Proxy Cafe",
        "location": {"type": "Point", "coordinates": [24.94, 60.17]},
    }
    anonymous = client.get("/dashboard/api/venues")
    assert anonymous.status_code == 401
    assert anonymous.mimetype == "application/problem+json"
    # A caller's own Authorization header does not count: only the session's key does.
    forged = client.get("/dashboard/api/venues", headers={"Authorization": f"Bearer {owner.token}"})
    assert forged.status_code == 401

    sign_in(client, owner.token)
    assert client.get("/dashboard/api/venues").get_json() == {"venues": []}
    no_token = client.post("/dashboard/api/venues", json=venue)
    assert no_token.status_code == 403 and no_token.get_json()["code"] == "csrf_failed"
    wrong = client.post("/dashboard/api/venues", json=venue, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    token = page_csrf(client)
    created = client.post("/dashboard/api/venues", json=venue, headers={"X-CSRF-Token": token})
    assert created.status_code == 201, created.get_json()
    assert owner.list_venues()[0]["name"] == "Proxy Cafe"
    # The API's own validation answers come back as they are.
    invalid = client.post(
        "/dashboard/api/venues", json={**venue, "radius_m": 1}, headers={"X-CSRF-Token": token}
    )
    assert invalid.status_code == 422 and invalid.get_json()["code"] == "invalid_geometry"


def test_the_proxy_reaches_only_what_the_dashboard_uses(client: FlaskClient, owner: Client) -> None:
    assert owner.token
    sign_in(client, owner.token)
    token = page_csrf(client)
    headers = {"X-CSRF-Token": token}
    for method, path in (
        ("POST", "/dashboard/api/merchants/me/keys"),
        ("GET", "/dashboard/api/merchants/me/keys"),
        ("POST", "/dashboard/api/checkins"),
        ("GET", "/dashboard/api/me/unlocks"),
        ("GET", "/dashboard/api/venues/../merchants/me/keys"),
        ("DELETE", "/dashboard/api/offers"),
    ):
        response = client.open(path, method=method, headers=headers, json={})
        assert response.status_code == 404, (method, path)
    assert len(owner.list_keys()) == 1


def test_a_role_gets_only_its_pages_and_calls(client: FlaskClient, owner: Client) -> None:
    analyst_key = owner.create_key("analyst")["api_key"]
    sign_in(client, analyst_key)
    assert client.get("/dashboard/").headers["Location"].endswith("/dashboard/analytics")
    forbidden = client.get("/dashboard/offers")
    assert forbidden.status_code == 403
    assert "Your analyst key cannot open this page" in forbidden.get_data(as_text=True)
    assert client.get("/dashboard/api/offers").status_code == 403  # the API's own answer
    check = client.post(
        "/dashboard/api/redemptions/check",
        json={"code": "7K3Q-XM9T-2RK"},
        headers={"X-CSRF-Token": page_csrf(client, "/dashboard/analytics")},
    )
    assert check.status_code == 403  # the API's own answer


def test_signing_out_needs_the_token_and_ends_the_session(
    client: FlaskClient, owner: Client
) -> None:
    assert owner.token
    sign_in(client, owner.token)
    client.post("/dashboard/sign-out")
    assert client.get("/dashboard/offers").status_code == 200  # a forged sign-out did nothing
    client.post("/dashboard/sign-out", data={"csrf_token": page_csrf(client)})
    assert client.get("/dashboard/offers").status_code == 302
    assert client.get("/dashboard/api/offers").status_code == 401


def test_signing_out_ends_a_copied_cookie_too(app: Flask, owner: Client) -> None:
    """The session is ended on the server: a copy of the cookie made before signing out (a
    shared computer, a stolen cookie) is refused at once, not when it would have expired."""
    assert owner.token
    browser, thief = app.test_client(), app.test_client()
    sign_in(browser, owner.token)
    cookie = browser.get_cookie("checkin_offers_dashboard", path="/dashboard")
    assert cookie is not None
    thief.set_cookie(cookie.key, cookie.value, path="/dashboard")
    assert thief.get("/dashboard/offers").status_code == 200  # the copy works while signed in
    assert thief.get("/dashboard/api/venues").status_code == 200
    token = page_csrf(thief)

    browser.post("/dashboard/sign-out", data={"csrf_token": page_csrf(browser)})

    page = thief.get("/dashboard/offers")
    assert page.status_code == 302 and "/dashboard/sign-in" in page.headers["Location"]
    for method in ("GET", "POST"):
        proxied = thief.open(
            "/dashboard/api/venues", method=method, json={}, headers={"X-CSRF-Token": token}
        )
        assert proxied.status_code == 401, method
        assert proxied.get_json()["code"] == "unauthorized"
    # The dashboard's own JSON calls too; and the copy cannot sign itself back in by redirect.
    assert thief.get("/dashboard/sign-in").status_code == 200
    # A fresh sign-in is a new session: the browser works again, the copy still does not.
    sign_in(browser, owner.token)
    assert browser.get("/dashboard/offers").status_code == 200
    thief.set_cookie(cookie.key, cookie.value, path="/dashboard")
    assert thief.get("/dashboard/offers").status_code == 302


def test_each_sign_in_is_its_own_session(app: Flask, owner: Client) -> None:
    """Signing out one browser leaves the same key's other sign-ins alone."""
    assert owner.token
    laptop, phone = app.test_client(), app.test_client()
    sign_in(laptop, owner.token)
    sign_in(phone, owner.token)
    laptop.post("/dashboard/sign-out", data={"csrf_token": page_csrf(laptop)})
    assert laptop.get("/dashboard/offers").status_code == 302
    assert phone.get("/dashboard/offers").status_code == 200
    assert phone.get("/dashboard/api/venues").status_code == 200


@pytest.mark.parametrize(
    ("target", "lands"),
    [
        ("/dashboard/analytics", "/dashboard/analytics"),
        ("https://evil.example/dashboard/", "/dashboard/"),
        ("//evil.example/dashboard/", "/dashboard/"),
        ("/\\evil.example", "/dashboard/"),
        ("/v1/offers", "/dashboard/"),
    ],
)
def test_signing_in_never_redirects_off_the_dashboard(
    client: FlaskClient, owner: Client, target: str, lands: str
) -> None:
    assert owner.token
    page = client.get("/dashboard/sign-in")
    response = client.post(
        "/dashboard/sign-in",
        query_string={"next": target},
        data={"api_key": owner.token, "csrf_token": csrf_of(page.get_data(as_text=True))},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == lands


def test_pages_send_a_strict_content_security_policy(client: FlaskClient) -> None:
    response = client.get("/dashboard/sign-in")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "connect-src 'self'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    with client.get("/dashboard/static/vendor/leaflet/leaflet.js") as asset:
        assert asset.status_code == 200 and "Leaflet" in asset.get_data(as_text=True)[:400]


def test_pages_show_only_the_signed_in_merchants_objects(
    client: FlaskClient, owner: Client, other_owner: Client
) -> None:
    assert owner.token
    venue = other_owner.create_venue(
        {"name": "Theirs", "location": {"type": "Point", "coordinates": [24.94, 60.17]}}
    )
    offer = other_owner.create_offer(
        {"venue_ids": [venue["id"]], "title": "Theirs", "rule": {"kind": "every_checkin"}}
    )
    sign_in(client, owner.token)
    for path in (
        f"/dashboard/presence/{venue['id']}",
        f"/dashboard/offers/{offer['id']}/edit",
        "/dashboard/presence/not-a-uuid-but-thirty-six-characters",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "<h1>Not found</h1>" in response.get_data(as_text=True)
    for path in (
        f"/dashboard/api/venues/{venue['id']}/presence-code",
        f"/dashboard/api/offers/{offer['id']}",
    ):
        assert client.get(path).status_code == 404
    headers = {"X-CSRF-Token": page_csrf(client)}
    moved = client.post(f"/dashboard/api/offers/{offer['id']}/activate", headers=headers)
    assert moved.status_code == 404
    assert other_owner.get_offer(offer["id"])["status"] == "draft"
