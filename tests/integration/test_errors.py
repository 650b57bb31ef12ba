"""Every error is problem+json with a stable code, and bad input changes nothing."""

from __future__ import annotations

from flask.testing import FlaskClient

from mobile_stub.client import Client

PROBLEM = "application/problem+json"


def _problem(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status and body["code"] == code
    assert body["type"] and body["title"] and body["detail"]
    return body  # type: ignore[no-any-return]


def test_unknown_route_is_problem_json(client: FlaskClient) -> None:
    _problem(client.get("/v1/nothing-here"), 404, "not_found")


def test_unknown_id_and_non_uuid_id_are_404(client: FlaskClient, owner: Client) -> None:
    headers = {"Authorization": f"Bearer {owner.token}"}
    _problem(
        client.get("/v1/venues/00000000-0000-0000-0000-000000000000", headers=headers),
        404,
        "not_found",
    )
    _problem(client.get("/v1/venues/not-a-uuid", headers=headers), 404, "not_found")


def test_wrong_method_is_405(client: FlaskClient) -> None:
    _problem(client.put("/v1/merchants"), 405, "method_not_allowed")


def test_malformed_json_is_400_and_creates_nothing(client: FlaskClient) -> None:
    response = client.post("/v1/users", data=b'{"handle": "x"', content_type="application/json")
    _problem(response, 400, "bad_request")
    login = client.post("/v1/users/token", json={"handle": "x", "password": "whatever1"})
    assert login.status_code == 401


def test_json_that_is_not_an_object_is_422(client: FlaskClient) -> None:
    _problem(client.post("/v1/merchants", json=[1, 2, 3]), 422, "validation_error")


def test_body_over_one_mebibyte_is_413(client: FlaskClient) -> None:
    body = b'{"name": "' + b"x" * (1024 * 1024) + b'", "email": "a@b.co"}'
    _problem(
        client.post("/v1/merchants", data=body, content_type="application/json"),
        413,
        "payload_too_large",
    )


def test_unknown_fields_are_422_with_field_errors(client: FlaskClient) -> None:
    body = _problem(
        client.post("/v1/merchants", json={"name": "A", "email": "a@b.co", "plan": "gold"}),
        422,
        "validation_error",
    )
    assert body["errors"] == {"plan": ["Unknown field."]}


def test_wrong_types_are_422(client: FlaskClient) -> None:
    body = _problem(
        client.post("/v1/merchants", json={"name": 5, "email": "nope"}), 422, "validation_error"
    )
    assert set(body["errors"]) == {"name", "email"}


def test_health(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "ok"}


def test_openapi_and_docs_are_served(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/v1/venues/nearby" in spec["paths"]
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    not_found = spec["paths"]["/v1/venues/{venue_id}"]["get"]["responses"]["404"]
    assert list(not_found["content"]) == [PROBLEM] and not_found["x-codes"] == ["not_found"]
    page = client.get("/docs")
    assert page.status_code == 200 and b"swagger-ui" in page.data
    script = client.get("/docs/static/swagger-ui-bundle.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    script.close()


# Found by Schemathesis (tests/e2e/test_openapi_fuzz.py): each was a 500.


def test_nul_characters_are_422(client: FlaskClient, owner: Client) -> None:
    headers = {"Authorization": f"Bearer {owner.token}"}
    for path, body in (
        ("/v1/merchants", {"name": "nul\u0000byte", "email": "a@b.co"}),
        ("/v1/merchants", {"name": "ok", "email": "a\u0000@b.co"}),
        ("/v1/users/token", {"handle": "a\u0000", "password": "whatever1"}),
        ("/v1/venues", {"name": "x\u0000", "location": {"type": "Point", "coordinates": [0, 0]}}),
    ):
        body_ = _problem(client.post(path, json=body, headers=headers), 422, "validation_error")
        assert "NUL" in body_["detail"] or body_["errors"]


def test_timestamps_postgres_cannot_hold_are_422(client: FlaskClient, owner: Client) -> None:
    headers = {"Authorization": f"Bearer {owner.token}"}
    venue = owner.create_venue({"name": "V", "location": {"type": "Point", "coordinates": [0, 0]}})
    for starts_at in (
        "2030-01-01T00:00:00+16:00",
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
    ):
        body = {
            "venue_ids": [venue["id"]],
            "title": "T",
            "rule": {"kind": "every_checkin"},
            "starts_at": starts_at,
        }
        _problem(client.post("/v1/offers", json=body, headers=headers), 422, "validation_error")
    assert owner.list_offers() == []
    response = client.get("/v1/analytics/leaks?to=2030-01-01T00:00:00%2B16:00", headers=headers)
    _problem(response, 422, "validation_error")


def test_redeeming_at_an_unknown_venue_is_404_not_500(client: FlaskClient, owner: Client) -> None:
    response = client.post(
        "/v1/redemptions",
        json={"code": "0", "venue_id": "e3e70682-c209-1cac-a29f-6fbed82c07cd"},
        headers={"Authorization": f"Bearer {owner.token}"},
    )
    _problem(response, 404, "not_found")
