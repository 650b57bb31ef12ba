"""No cache keeps an API answer: every `/v1` answer is `Cache-Control: no-store` but the public
ones (`api/security.py`), whether it carries a secret, one caller's data or an error.

The test walks the app's URL map, so a new route is covered the day it is added.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from api.security import PUBLIC
from mobile_stub.client import Client
from tests.factories import offer_body, venue_body

NEARBY = "/v1/venues/nearby?lat=60.1699&lon=24.9384"


def _api_routes(app: Flask) -> list[tuple[str, str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/"):
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<uuid:{name}>", "00000000-0000-4000-8000-000000000000")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((method, path, rule.endpoint))
    return sorted(routes)


def test_every_api_answer_is_no_store_with_or_without_credentials(
    app: Flask, client: FlaskClient, owner: Client, mobile: Client
) -> None:
    routes = _api_routes(app)
    assert len(routes) >= 30
    for token in (None, owner.token, mobile.token):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for method, path, endpoint in routes:
            url = NEARBY if path == "/v1/venues/nearby" else path
            body = {} if method in ("POST", "PATCH") else None
            answer = client.open(url, method=method, json=body, headers=headers)
            expected = None if token is None and endpoint in PUBLIC else "no-store"
            assert answer.headers.get("Cache-Control") == expected, (method, path, answer.status)
    # An unknown path under /v1 too.
    assert client.get("/v1/nothing-here").headers["Cache-Control"] == "no-store"


def test_answers_that_carry_a_secret_are_no_store(client: FlaskClient) -> None:
    def post(path: str, body: dict[str, Any], token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = client.post(path, json=body, headers=headers)
        assert answer.status_code in (200, 201), answer.get_json()
        assert answer.headers["Cache-Control"] == "no-store", path
        return answer.get_json()

    # Sign-ups and sign-in carry no Authorization: the rule must not depend on it.
    owner_key = post("/v1/merchants", {"name": "Cafe", "email": "c@example.com"})["api_key"]
    user = post("/v1/users", {"handle": "cache_me", "password": "correct horse"})
    post("/v1/users/token", {"handle": "cache_me", "password": "correct horse"})
    key = post("/v1/merchants/me/keys", {"role": "staff"}, owner_key)
    post(f"/v1/merchants/me/keys/{key['id']}/rotate", {}, owner_key)
    venue = post("/v1/venues", venue_body(checkin_cooldown_minutes=0), owner_key)
    offer = post("/v1/offers", offer_body([venue["id"]]), owner_key)
    post(f"/v1/offers/{offer['id']}/activate", {}, owner_key)
    lon, lat = venue["location"]["coordinates"]
    checkin = post(
        "/v1/checkins",
        {
            "venue_id": venue["id"],
            "lat": lat,
            "lon": lon,
            "accuracy_m": 10,
            "observed_at": datetime.now(UTC).isoformat(),
        },
        user["token"],
    )
    assert checkin["unlocks"][0]["code"]  # an unlock code: the answer carries a secret
    for path, token in (
        ("/v1/me/unlocks", user["token"]),
        (f"/v1/venues/{venue['id']}/presence-code", owner_key),
    ):
        answer = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"


def test_the_anonymous_nearby_listing_is_public_and_a_signed_in_one_is_not(
    client: FlaskClient, mobile: Client
) -> None:
    assert sorted(PUBLIC) == ["venues.Nearby"]
    assert "Cache-Control" not in client.get(NEARBY).headers
    signed_in = client.get(NEARBY, headers={"Authorization": f"Bearer {mobile.token}"})
    assert signed_in.headers["Cache-Control"] == "no-store"  # it records impressions
    # Pages outside the API keep their own rules.
    assert "Cache-Control" not in client.get("/openapi.json").headers
