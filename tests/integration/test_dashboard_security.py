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
        ("POST", "/dashboard/api/checkins"),
        ("GET", "/dashboard/api/me/unlocks"),
        ("GET", "/dashboard/api/venues/../merchants/me/keys"),
        ("DELETE", "/dashboard/api/offers"),
    ):
        response = client.open(path, method=method, headers=headers, json={})
        assert response.status_code == 404, (method, path)
    # Keys are listed (never their secrets), but a session alone cannot change them.
    listed = client.get("/dashboard/api/merchants/me/keys")
    assert listed.status_code == 200 and "api_key" not in listed.get_data(as_text=True)
    [key] = owner.list_keys()
    for method, path in (
        ("POST", "/dashboard/api/merchants/me/keys"),
        ("POST", f"/dashboard/api/merchants/me/keys/{key['id']}/rotate"),
        ("DELETE", f"/dashboard/api/merchants/me/keys/{key['id']}"),
    ):
        response = client.open(path, method=method, headers=headers, json={"role": "owner"})
        assert response.status_code == 403, (method, path)
        assert response.get_json()["code"] == "confirm_key_required"
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


def test_changing_keys_through_the_dashboard_needs_an_owner_key_typed_again(
    client: FlaskClient, owner: Client, other_owner: Client
) -> None:
    """Creating, rotating and revoking keys from a session needs X-Confirm-Key: a live owner
    key of the same merchant. Another merchant's owner key, a staff key, a device's, a revoked
    one or a wrong one are refused and change nothing; the header never reaches the API."""
    assert owner.token and other_owner.token
    staff_key = owner.create_key("staff")["api_key"]
    spare_owner = owner.create_key("owner", "spare")
    owner.revoke_key(spare_owner["id"])
    sign_in(client, owner.token)
    token = page_csrf(client)

    def create(confirm: str | None) -> Any:
        headers = {"X-CSRF-Token": token}
        if confirm is not None:
            headers["X-Confirm-Key"] = confirm
        return client.post(
            "/dashboard/api/merchants/me/keys",
            json={"role": "analyst", "label": "from the dashboard"},
            headers=headers,
        )

    for confirm in (
        None,
        "",
        "cok_not-a-key",
        other_owner.token,
        staff_key,
        spare_owner["api_key"],
    ):
        refused = create(confirm)
        assert refused.status_code == 403, confirm
        assert refused.get_json()["code"] == "confirm_key_required"
    assert len(owner.list_keys()) == 3  # owner, staff, the revoked spare

    made = create(f"  {owner.token} ")
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["role"] == "analyst" and made.get_json()["api_key"].startswith("cok_")
    assert made.headers["Cache-Control"] == "no-store"
    confirm = {"X-CSRF-Token": token, "X-Confirm-Key": owner.token}
    rotated = client.post(
        f"/dashboard/api/merchants/me/keys/{made.get_json()['id']}/rotate", headers=confirm
    )
    assert (
        rotated.status_code == 200 and rotated.get_json()["api_key"] != made.get_json()["api_key"]
    )
    revoked = client.delete(
        f"/dashboard/api/merchants/me/keys/{made.get_json()['id']}", headers=confirm
    )
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"]
    # The API's own refusals come back as they are: the last owner key stays.
    [me] = [k for k in owner.list_keys() if k["role"] == "owner" and not k["revoked_at"]]
    last = client.delete(f"/dashboard/api/merchants/me/keys/{me['id']}", headers=confirm)
    assert last.status_code == 409 and last.get_json()["code"] == "last_owner_key"
    # Each change is in the audit trail, made by the session's key.
    actions = [e["action"] for e in owner.audit_trail()["events"]][:3]
    assert actions == ["key.revoke", "key.rotate", "key.create"]


def test_staff_accounts_and_the_audit_log_through_the_dashboard(
    client: FlaskClient, owner: Client
) -> None:
    assert owner.token
    sign_in(client, owner.token)
    headers = {"X-CSRF-Token": page_csrf(client)}
    added = client.post(
        "/dashboard/api/merchants/me/staff-users", json={"handle": "anna_k"}, headers=headers
    )
    assert added.status_code == 201, added.get_json()
    listed = client.get("/dashboard/api/merchants/me/staff-users").get_json()["staff_users"]
    assert [s["handle"] for s in listed] == ["anna_k"]
    gone = client.delete(
        f"/dashboard/api/merchants/me/staff-users/{listed[0]['id']}", headers=headers
    )
    assert gone.status_code == 200
    events = client.get("/dashboard/api/merchants/me/audit?limit=2").get_json()["events"]
    assert [e["action"] for e in events] == ["staff_user.delete", "staff_user.create"]
    assert client.get("/dashboard/settings").status_code == 200


def test_webhooks_through_the_dashboard_need_the_owners_session_and_its_csrf_token(
    app: Flask, client: FlaskClient, owner: Client
) -> None:
    """The Webhooks page's calls: an owner's session registers (the secret in that one answer),
    lists, reads deliveries, replays and deletes, with the CSRF token and without an owner key
    typed again (that rule is for API keys); without the token nothing changes, and a staff
    session gets the API's own 403."""
    assert owner.token
    app.config["WEBHOOKS_ALLOW_HTTP_LOOPBACK"] = True
    sign_in(client, owner.token)
    assert client.get("/dashboard/settings/webhooks").status_code == 200
    headers = {"X-CSRF-Token": page_csrf(client, "/dashboard/settings/webhooks")}
    body = {"url": "http://127.0.0.1:9/hook", "events": ["checkin.verified"]}
    refused = client.post("/dashboard/api/merchants/me/webhooks", json=body)
    assert refused.status_code == 403 and refused.get_json()["code"] == "csrf_failed"
    made = client.post("/dashboard/api/merchants/me/webhooks", json=body, headers=headers)
    assert made.status_code == 201, made.get_json()
    hook = made.get_json()
    assert hook["secret"].startswith("whsec_")
    listed = client.get("/dashboard/api/merchants/me/webhooks")
    assert [h["id"] for h in listed.get_json()["webhooks"]] == [hook["id"]]
    assert "whsec_" not in listed.get_data(as_text=True)
    deliveries = client.get(f"/dashboard/api/merchants/me/webhooks/{hook['id']}/deliveries?limit=5")
    assert deliveries.status_code == 200 and deliveries.get_json() == {"deliveries": []}
    missing = client.post(
        f"/dashboard/api/merchants/me/webhooks/{hook['id']}/deliveries/{hook['id']}/replay",
        headers=headers,
    )
    assert missing.status_code == 404 and missing.get_json()["code"] == "not_found"

    staff = owner.create_key("staff")["api_key"]
    other = app.test_client()
    sign_in(other, staff)
    staff_headers = {"X-CSRF-Token": page_csrf(other)}
    assert other.get("/dashboard/settings/webhooks").status_code == 403
    for method, path in (
        ("GET", "/dashboard/api/merchants/me/webhooks"),
        ("POST", "/dashboard/api/merchants/me/webhooks"),
        ("DELETE", f"/dashboard/api/merchants/me/webhooks/{hook['id']}"),
    ):
        answer = other.open(path, method=method, json=body, headers=staff_headers)
        assert answer.status_code == 403, (method, path, answer.get_json())
    gone = client.delete(f"/dashboard/api/merchants/me/webhooks/{hook['id']}", headers=headers)
    assert gone.status_code == 200
    assert owner.list_webhooks() == []
    actions = [e["action"] for e in owner.audit_trail()["events"]]
    assert [a for a in actions if a.startswith("webhook")] == ["webhook.delete", "webhook.create"]


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


def test_signing_in_again_in_the_same_browser_ends_the_previous_sign_in(
    app: Flask, owner: Client
) -> None:
    """A browser holds one sign-in: a new one (another key, say) ends the one before, copies of
    its cookie included."""
    assert owner.token
    analyst_key = owner.create_key("analyst")["api_key"]
    browser, thief = app.test_client(), app.test_client()
    sign_in(browser, owner.token)
    cookie = browser.get_cookie("checkin_offers_dashboard", path="/dashboard")
    assert cookie is not None
    browser.post(  # the sign-in page sends a signed-in browser on: the form posted anyway
        "/dashboard/sign-in", data={"api_key": analyst_key, "csrf_token": page_csrf(browser)}
    )
    assert browser.get("/dashboard/analytics").status_code == 200
    assert browser.get("/dashboard/offers").status_code == 403  # the analyst now
    thief.set_cookie(cookie.key, cookie.value, path="/dashboard")
    assert thief.get("/dashboard/offers").status_code == 302
    assert thief.get("/dashboard/api/venues").status_code == 401


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
