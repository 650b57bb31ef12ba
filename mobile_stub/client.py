"""A typed client for the checkin-offers v1 HTTP API, as a mobile app or a till would use it.

One method per endpoint, over an injectable transport: `HttpTransport` (a real HTTP session) or
`FlaskTransport` (the Flask test client). Every non-2xx answer raises `ApiError` carrying the
problem+json `code`. It imports nothing from the service's own packages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any
    text: str = ""


class Transport(Protocol):
    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        raw_body: bytes | None = None,
    ) -> Response: ...


class ApiError(Exception):
    """A problem+json answer: `status`, stable `code`, `detail` and per-field `errors`."""

    def __init__(self, response: Response):
        body = response.body if isinstance(response.body, dict) else {}
        self.status = response.status
        self.code: str = body.get("code", f"http_{response.status}")
        self.detail: str = body.get("detail", response.text)
        self.errors: dict[str, list[str]] = body.get("errors", {})
        self.response = response
        super().__init__(f"{self.status} {self.code}: {self.detail}")


def _decode(content_type: str, data: bytes) -> tuple[Any, str]:
    text = data.decode("utf-8", errors="replace")
    if "json" in content_type and data:
        return json.loads(text), text
    return None, text


class HttpTransport:
    """A real HTTP session (requests) against a running server."""

    def __init__(self, base_url: str, timeout: float = 30.0):
        import requests

        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        raw_body: bytes | None = None,
    ) -> Response:
        hdrs = dict(headers or {})
        data = raw_body
        if json_body is not None:
            data = json.dumps(json_body).encode()
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        r = self.session.request(
            method,
            self.base_url + path,
            data=data,
            params=params,
            headers=hdrs,
            timeout=self.timeout,
        )
        body, text = _decode(r.headers.get("Content-Type", ""), r.content)
        return Response(r.status_code, dict(r.headers), body, text)

    def close(self) -> None:
        self.session.close()


class FlaskTransport:
    """The Flask test client, for tests that run the app in-process."""

    def __init__(self, test_client: Any):
        self.test_client = test_client

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        raw_body: bytes | None = None,
    ) -> Response:
        data = json.dumps(json_body).encode() if json_body is not None else raw_body
        hdrs = dict(headers or {})
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        r = self.test_client.open(path, method=method, data=data, query_string=params, headers=hdrs)
        body, text = _decode(r.headers.get("Content-Type", ""), r.get_data())
        return Response(r.status_code, dict(r.headers), body, text)


@dataclass
class Client:
    """The v1 API. `with_token` gives a client acting as a merchant key or a user token."""

    transport: Transport
    token: str | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)

    def with_token(self, token: str | None) -> Client:
        return Client(self.transport, token, dict(self.extra_headers))

    # ---- plumbing ----

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """One request; raises `ApiError` for any answer that is not 2xx."""
        hdrs = {**self.extra_headers, **(headers or {})}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        response = self.transport.request(method, path, json_body=body, params=params, headers=hdrs)
        if not 200 <= response.status < 300:
            raise ApiError(response)
        return response

    def _json(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.call(method, path, body, **kwargs).body

    # ---- accounts ----

    def create_merchant(self, name: str, email: str) -> dict[str, Any]:
        return self._json("POST", "/v1/merchants", {"name": name, "email": email})

    def me(self) -> dict[str, Any]:
        return self._json("GET", "/v1/merchants/me")

    def create_key(self, role: str, label: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"role": role}
        if label is not None:
            body["label"] = label
        return self._json("POST", "/v1/merchants/me/keys", body)

    def list_keys(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/merchants/me/keys")["keys"]

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/v1/merchants/me/keys/{key_id}")

    def create_user(self, handle: str, password: str) -> dict[str, Any]:
        return self._json("POST", "/v1/users", {"handle": handle, "password": password})

    def login(self, handle: str, password: str) -> str:
        token: str = self._json(
            "POST", "/v1/users/token", {"handle": handle, "password": password}
        )["token"]
        return token

    # ---- venues ----

    def create_venue(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/v1/venues", body)

    def list_venues(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/venues")["venues"]

    def get_venue(self, venue_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/venues/{venue_id}")

    def update_venue(self, venue_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self._json("PATCH", f"/v1/venues/{venue_id}", changes)

    def delete_venue(self, venue_id: str) -> None:
        self.call("DELETE", f"/v1/venues/{venue_id}")

    def presence_code(self, venue_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/venues/{venue_id}/presence-code")

    def nearby(
        self, lat: float, lon: float, radius_m: float | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"lat": lat, "lon": lon}
        if radius_m is not None:
            params["radius_m"] = radius_m
        if limit is not None:
            params["limit"] = limit
        return self._json("GET", "/v1/venues/nearby", params=params)["venues"]

    # ---- offers ----

    def create_offer(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/v1/offers", body)

    def list_offers(self, status: str | None = None) -> list[dict[str, Any]]:
        params = {"status": status} if status else None
        return self._json("GET", "/v1/offers", params=params)["offers"]

    def get_offer(self, offer_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/offers/{offer_id}")

    def update_offer(self, offer_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self._json("PATCH", f"/v1/offers/{offer_id}", changes)

    def activate_offer(self, offer_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/offers/{offer_id}/activate")

    def pause_offer(self, offer_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/offers/{offer_id}/pause")

    def end_offer(self, offer_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/offers/{offer_id}/end")

    # ---- check-ins, wallet, redemptions ----

    def check_in(
        self,
        venue_id: str,
        lat: float,
        lon: float,
        accuracy_m: float,
        observed_at: str,
        *,
        mock_location: bool | None = None,
        presence_code: str | None = None,
        device_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Check in; a rejected check-in is an answer (status "rejected" with reasons)."""
        body: dict[str, Any] = {
            "venue_id": venue_id,
            "lat": lat,
            "lon": lon,
            "accuracy_m": accuracy_m,
            "observed_at": observed_at,
        }
        for name, value in (
            ("mock_location", mock_location),
            ("presence_code", presence_code),
            ("device_id", device_id),
        ):
            if value is not None:
                body[name] = value
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._json("POST", "/v1/checkins", body, headers=headers)

    def wallet(self, status: str | None = None) -> list[dict[str, Any]]:
        params = {"status": status} if status else None
        return self._json("GET", "/v1/me/unlocks", params=params)["unlocks"]

    def redeem(
        self, code: str, venue_id: str | None = None, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"code": code}
        if venue_id is not None:
            body["venue_id"] = venue_id
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._json("POST", "/v1/redemptions", body, headers=headers)

    # ---- service ----

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/healthz")
