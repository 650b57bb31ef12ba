"""A typed client for the checkin-offers v1 HTTP API, as a mobile app or a till would use it.

One method per endpoint, over an injectable transport: `HttpTransport` (a real HTTP session) or
`FlaskTransport` (the Flask test client). Every non-2xx answer raises `ApiError` carrying the
problem+json `code`. It imports nothing from the service's own packages.

Answers are plain dicts from the JSON; the `TypedDict`s below name the fields of the main ones
(the server may add more fields: the contract only ever adds). See docs/mobile.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, Protocol, TypedDict, cast
from urllib.parse import parse_qs, urlsplit


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
        self.title: str = body.get("title", "")
        self.detail: str = body.get("detail", response.text)
        self.errors: dict[str, list[str]] = body.get("errors", {})
        self.response = response
        super().__init__(f"{self.status} {self.code}: {self.detail}")

    @property
    def retryable(self) -> bool:
        """Worth retrying with the same Idempotency-Key: the server failed or is unavailable
        (5xx), or asked to slow down (429). Any other 4xx answers the same on a retry."""
        return self.status >= 500 or self.status == 429


# ---- the main answers ------------------------------------------------------------------------


class Merchant(TypedDict):
    id: str
    name: str
    email: str
    created_at: str


class MerchantCreated(TypedDict):
    merchant: Merchant
    api_key: str  # an owner key, shown once


class ApiKey(TypedDict):
    id: str
    role: Literal["owner", "staff", "analyst"]
    label: str | None
    created_at: str
    revoked_at: str | None
    venue_id: NotRequired[str | None]  # a till device's key: its venue
    last_used_at: NotRequired[str | None]


class ApiKeyCreated(ApiKey):
    api_key: str  # the secret, shown once


class User(TypedDict):
    id: str
    handle: str


class UserCreated(TypedDict):
    user: User
    token: str


class Venue(TypedDict):
    id: str
    name: str
    category: str | None
    address: str | None  # plain text for people; the location is `location`
    timezone: str
    location: dict[str, Any]  # GeoJSON Point, [lon, lat]
    geofence: dict[str, Any]  # GeoJSON Polygon or MultiPolygon
    radius_m: float | None  # set when the fence is a circle
    checkin_cooldown_minutes: int
    max_accuracy_m: float
    tap_radius_m: float  # with a tap of its tag, a fix this near the fence is plausible
    created_at: str
    updated_at: str


class PresenceCode(TypedDict):
    code: str
    valid_until: str


class NearbyOffer(TypedDict):
    id: str
    title: str
    rule: dict[str, Any]
    unlock: str  # what it takes to unlock, for people
    requires_presence_code: bool
    min_proof: Literal["gps", "presence_code", "nfc_tap"]
    starts_at: str | None
    ends_at: str | None
    windows: list[dict[str, Any]]


class NearbyVenue(TypedDict):
    id: str
    name: str
    category: str | None
    distance_m: float
    location: dict[str, Any]
    offers: list[NearbyOffer]


class Offer(TypedDict):
    id: str
    status: Literal["draft", "active", "paused", "ended"]
    venue_ids: list[str]
    title: str
    description: str | None
    terms: str | None
    rule: dict[str, Any]
    starts_at: str | None
    ends_at: str | None
    windows: list[dict[str, Any]]
    total_cap: int | None
    unlocked_count: int
    per_user_cap: int
    code_ttl_minutes: int
    requires_presence_code: bool
    min_proof: Literal["gps", "presence_code", "nfc_tap"]
    holdout_pct: float
    created_at: str
    updated_at: str


class Reason(TypedDict):
    code: str  # outside_geofence, low_accuracy, stale_fix, future_fix, mock_location, ...
    detail: str


class IssuedUnlock(TypedDict):
    id: str
    offer_id: str
    venue_id: str
    title: str
    code: str  # show it at the till, e.g. 7K3Q-XM9T-2RK
    qr_payload: str  # the same code for a QR code
    expires_at: str


class Checkin(TypedDict):
    id: str
    status: Literal["verified", "rejected"]
    reasons: list[Reason]
    unlocks: list[IssuedUnlock]
    held_out: list[str]  # offer ids this visit earned but that hold the user out
    proof: Literal["gps", "presence_code", "nfc_tap", "staff"]
    locked: list[dict[str, Any]]  # offers needing a stronger proof, with what to do
    created_at: str


class NfcTag(TypedDict):
    id: str
    venue_id: str
    uid: str
    label: str | None
    last_counter: int | None
    last_tap_at: str | None
    created_at: str


class NfcTagCreated(NfcTag):
    sdm_meta_read_key: str  # shown once
    sdm_file_read_key: str  # shown once
    url_template: str
    picc_data_offset: int
    cmac_offset: int


class Tap(TypedDict):
    tap_token: str
    venue_id: str
    expires_at: str


class UserCard(TypedDict):
    id: str
    uid: str
    label: str | None
    last_read_at: str | None
    created_at: str


class UserCardCreated(UserCard):
    sdm_meta_read_key: str
    sdm_file_read_key: str
    url_template: str
    picc_data_offset: int
    cmac_offset: int


class MemberCode(TypedDict):
    code: str
    valid_until: str


class StaffCheckin(Checkin):
    """The guest's check-in as the till sees it (never the guest's user id)."""


class WalletEntry(IssuedUnlock):
    status: Literal["active", "redeemed", "expired"]
    created_at: str
    redeemed_at: str | None


class Redemption(TypedDict):
    id: str
    unlock_id: str
    offer_id: str
    venue_id: str | None
    title: str
    redeemed_at: str


class CodeCheck(TypedDict):
    outcome: Literal["valid", "unknown", "wrong_venue", "already_redeemed", "expired"]
    detail: str
    code: str | None
    offer_id: str | None
    title: str | None
    venues: list[dict[str, str]]  # {"id", "name"}: where the offer's codes are good
    unlocked_at: str | None
    expires_at: str | None
    redemption: dict[str, Any] | None  # {"redeemed_at", "venue_id", "venue_name", "till"}


class TillDay(TypedDict):
    venue_id: str
    venue_name: str
    timezone: str
    date: str
    redemptions: list[dict[str, Any]]  # {"id", "redeemed_at", "offer_id", "title", "code", "till"}
    redemptions_total: int
    checkins: list[dict[str, Any]]  # {"id", "created_at", "status", "reasons", "unlocked"}
    checkins_total: int


class Pairing(TypedDict):
    id: str
    venue_id: str
    venue_name: str
    label: str | None
    code: str  # e.g. 7K3Q-XM9T, shown once
    expires_at: str


class Device(TypedDict):
    id: str
    label: str | None
    venue_id: str
    venue_name: str
    venue_timezone: str
    paired_at: str
    last_used_at: str | None
    revoked_at: str | None


class Paired(TypedDict):
    device: Device
    api_key: str  # the device's own key, shown once


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

    @staticmethod
    def _params(**values: Any) -> dict[str, Any] | None:
        params = {k.rstrip("_"): v for k, v in values.items() if v is not None}
        return params or None

    # ---- accounts ----

    def create_merchant(self, name: str, email: str) -> MerchantCreated:
        return cast(
            MerchantCreated, self._json("POST", "/v1/merchants", {"name": name, "email": email})
        )

    def me(self) -> Merchant:
        return cast(Merchant, self._json("GET", "/v1/merchants/me"))

    def create_key(self, role: str, label: str | None = None) -> ApiKeyCreated:
        body: dict[str, Any] = {"role": role}
        if label is not None:
            body["label"] = label
        return cast(ApiKeyCreated, self._json("POST", "/v1/merchants/me/keys", body))

    def list_keys(self) -> list[ApiKey]:
        return cast(list[ApiKey], self._json("GET", "/v1/merchants/me/keys")["keys"])

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("DELETE", f"/v1/merchants/me/keys/{key_id}"))

    def rotate_key(self, key_id: str) -> ApiKeyCreated:
        """A new secret for the key (owner key); the old one fails at once."""
        return cast(ApiKeyCreated, self._json("POST", f"/v1/merchants/me/keys/{key_id}/rotate"))

    def create_webhook(self, url: str, events: list[str]) -> dict[str, Any]:
        """Register a webhook endpoint (owner key); the answer's `secret` is shown only once."""
        body = {"url": url, "events": events}
        return cast(dict[str, Any], self._json("POST", "/v1/merchants/me/webhooks", body))

    def list_webhooks(self) -> list[dict[str, Any]]:
        return cast(
            list[dict[str, Any]], self._json("GET", "/v1/merchants/me/webhooks")["webhooks"]
        )

    def delete_webhook(self, webhook_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("DELETE", f"/v1/merchants/me/webhooks/{webhook_id}"))

    def webhook_deliveries(self, webhook_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """An endpoint's recent deliveries, newest first, with their attempts."""
        path = f"/v1/merchants/me/webhooks/{webhook_id}/deliveries"
        answer = self._json("GET", path, params=self._params(limit=limit))
        return cast(list[dict[str, Any]], answer["deliveries"])

    def replay_webhook_delivery(self, webhook_id: str, delivery_id: str) -> dict[str, Any]:
        """Send a delivery again, with the same webhook-id."""
        path = f"/v1/merchants/me/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"
        return cast(dict[str, Any], self._json("POST", path))

    def audit_trail(
        self, limit: int | None = None, before: str | None = None, object_id: str | None = None
    ) -> dict[str, Any]:
        """The merchant's audit trail, newest first (owner key): `{"events", "next_before"}`."""
        params = self._params(limit=limit, before=before, object_id=object_id)
        return cast(dict[str, Any], self._json("GET", "/v1/merchants/me/audit", params=params))

    def add_staff_user(self, handle: str) -> dict[str, Any]:
        """Register a handle as the merchant's staff (owner key): the account with it, now or
        once it signs up, never unlocks the merchant's own offers. Answers `{"id", "handle",
        "created_at"}`, the same whether an account has the handle or not."""
        return cast(
            dict[str, Any], self._json("POST", "/v1/merchants/me/staff-users", {"handle": handle})
        )

    def list_staff_users(self) -> list[dict[str, Any]]:
        return cast(
            list[dict[str, Any]], self._json("GET", "/v1/merchants/me/staff-users")["staff_users"]
        )

    def remove_staff_user(self, staff_user_id: str) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            self._json("DELETE", f"/v1/merchants/me/staff-users/{staff_user_id}"),
        )

    def create_user(self, handle: str, password: str) -> UserCreated:
        return cast(
            UserCreated, self._json("POST", "/v1/users", {"handle": handle, "password": password})
        )

    def login(self, handle: str, password: str) -> str:
        token: str = self._json(
            "POST", "/v1/users/token", {"handle": handle, "password": password}
        )["token"]
        return token

    def export_me(self) -> dict[str, Any]:
        """Everything the service keeps about this user, as one JSON document."""
        return cast(dict[str, Any], self._json("GET", "/v1/me/export"))

    def delete_me(self) -> None:
        """Delete this user's account: the token stops working at once."""
        self.call("DELETE", "/v1/me")

    # ---- venues ----

    def create_venue(self, body: dict[str, Any]) -> Venue:
        return cast(Venue, self._json("POST", "/v1/venues", body))

    def list_venues(self) -> list[Venue]:
        return cast(list[Venue], self._json("GET", "/v1/venues")["venues"])

    def get_venue(self, venue_id: str) -> Venue:
        return cast(Venue, self._json("GET", f"/v1/venues/{venue_id}"))

    def update_venue(self, venue_id: str, changes: dict[str, Any]) -> Venue:
        return cast(Venue, self._json("PATCH", f"/v1/venues/{venue_id}", changes))

    def delete_venue(self, venue_id: str) -> None:
        self.call("DELETE", f"/v1/venues/{venue_id}")

    def presence_code(self, venue_id: str) -> PresenceCode:
        return cast(PresenceCode, self._json("GET", f"/v1/venues/{venue_id}/presence-code"))

    def nearby(
        self, lat: float, lon: float, radius_m: float | None = None, limit: int | None = None
    ) -> list[NearbyVenue]:
        """Venues nearest first, with their active offers; a user token records impressions."""
        params = self._params(lat=lat, lon=lon, radius_m=radius_m, limit=limit)
        return cast(
            list[NearbyVenue], self._json("GET", "/v1/venues/nearby", params=params)["venues"]
        )

    # ---- offers ----

    def create_offer(self, body: dict[str, Any]) -> Offer:
        return cast(Offer, self._json("POST", "/v1/offers", body))

    def list_offers(self, status: str | None = None) -> list[Offer]:
        params = self._params(status=status)
        return cast(list[Offer], self._json("GET", "/v1/offers", params=params)["offers"])

    def get_offer(self, offer_id: str) -> Offer:
        return cast(Offer, self._json("GET", f"/v1/offers/{offer_id}"))

    def update_offer(self, offer_id: str, changes: dict[str, Any]) -> Offer:
        return cast(Offer, self._json("PATCH", f"/v1/offers/{offer_id}", changes))

    def activate_offer(self, offer_id: str) -> Offer:
        return cast(Offer, self._json("POST", f"/v1/offers/{offer_id}/activate"))

    def pause_offer(self, offer_id: str) -> Offer:
        return cast(Offer, self._json("POST", f"/v1/offers/{offer_id}/pause"))

    def end_offer(self, offer_id: str) -> Offer:
        return cast(Offer, self._json("POST", f"/v1/offers/{offer_id}/end"))

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
        tap_token: str | None = None,
        idempotency_key: str | None = None,
    ) -> Checkin:
        """Check in; a rejected check-in is an answer (status "rejected" with reasons).

        Send an `idempotency_key` (a fresh UUID per tap) and reuse it when retrying after a
        timeout or a 5xx: the retry answers the first check-in instead of making a second.
        """
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
            ("tap_token", tap_token),
        ):
            if value is not None:
                body[name] = value
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return cast(Checkin, self._json("POST", "/v1/checkins", body, headers=headers))

    # ---- proof of presence: tags, taps, cards, member codes, staff check-ins ----

    def register_nfc_tag(self, venue_id: str, uid: str, label: str | None = None) -> NfcTagCreated:
        """Register a venue's NTAG 424 DNA tag (owner); its keys are in this answer only."""
        body: dict[str, Any] = {"uid": uid}
        if label is not None:
            body["label"] = label
        return cast(NfcTagCreated, self._json("POST", f"/v1/venues/{venue_id}/nfc-tags", body))

    def list_nfc_tags(self, venue_id: str) -> list[NfcTag]:
        return cast(list[NfcTag], self._json("GET", f"/v1/venues/{venue_id}/nfc-tags")["nfc_tags"])

    def delete_nfc_tag(self, tag_id: str) -> None:
        self.call("DELETE", f"/v1/nfc-tags/{tag_id}")

    def tap(self, url: str) -> Tap:
        """Send what a tag's URL said (its `picc_data` and `cmac`) for a tap token."""
        query = parse_qs(urlsplit(url).query)
        body: dict[str, Any] = {
            "picc_data": query["picc_data"][0],
            "cmac": query["cmac"][0],
        }
        return cast(Tap, self._json("POST", "/v1/taps", body))

    def register_card(self, uid: str, label: str | None = None) -> UserCardCreated:
        body: dict[str, Any] = {"uid": uid}
        if label is not None:
            body["label"] = label
        return cast(UserCardCreated, self._json("POST", "/v1/me/cards", body))

    def list_cards(self) -> list[UserCard]:
        return cast(list[UserCard], self._json("GET", "/v1/me/cards")["cards"])

    def remove_card(self, card_id: str) -> None:
        self.call("DELETE", f"/v1/me/cards/{card_id}")

    def member_code(self) -> MemberCode:
        return cast(MemberCode, self._json("GET", "/v1/me/member-code"))

    def staff_check_in(
        self,
        venue_id: str,
        *,
        member_code: str | None = None,
        card_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> StaffCheckin:
        """Record a guest's visit at the venue (owner or staff key), by the member code the
        guest shows or the URL their card gave the reader."""
        body: dict[str, Any] = {"venue_id": venue_id}
        if member_code is not None:
            body["member_code"] = member_code
        if card_url is not None:
            query = parse_qs(urlsplit(card_url).query)
            card: dict[str, Any] = {
                "picc_data": query["picc_data"][0],
                "cmac": query["cmac"][0],
            }
            body["card"] = card
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return cast(StaffCheckin, self._json("POST", "/v1/staff-checkins", body, headers=headers))

    def wallet(self, status: str | None = None) -> list[WalletEntry]:
        params = self._params(status=status)
        return cast(
            list[WalletEntry], self._json("GET", "/v1/me/unlocks", params=params)["unlocks"]
        )

    def google_wallet_link(self, unlock_id: str) -> str:
        """A "save to Google Wallet" link for one of the user's active unlocks. (The Apple
        Wallet `.pkpass` is a file for the phone to open: GET .../apple-pass directly.)"""
        answer = self._json("GET", f"/v1/me/unlocks/{unlock_id}/google-pass")
        return cast(str, answer["url"])

    def redeem(
        self, code: str, venue_id: str | None = None, *, idempotency_key: str | None = None
    ) -> Redemption:
        """Redeem a code at the till (owner or staff key); refusals raise `ApiError` with
        `not_found`, `wrong_venue`, `already_redeemed` or `expired`."""
        body: dict[str, Any] = {"code": code}
        if venue_id is not None:
            body["venue_id"] = venue_id
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return cast(Redemption, self._json("POST", "/v1/redemptions", body, headers=headers))

    def check_code(self, code: str, venue_id: str | None = None) -> CodeCheck:
        """What a code is at this till, without redeeming it (the attempt is recorded)."""
        body: dict[str, Any] = {"code": code}
        if venue_id is not None:
            body["venue_id"] = venue_id
        return cast(CodeCheck, self._json("POST", "/v1/redemptions/check", body))

    def till_day(self, venue_id: str, date: str | None = None) -> TillDay:
        """A venue's redemptions and check-ins on one local date (default: today there)."""
        params = self._params(date=date)
        return cast(TillDay, self._json("GET", f"/v1/venues/{venue_id}/till-day", params=params))

    # ---- till devices ----

    def create_pairing(self, venue_id: str, label: str | None = None) -> Pairing:
        """A one-time code pairing one till device with the venue (owner key)."""
        body = {"venue_id": venue_id, "label": label}
        return cast(Pairing, self._json("POST", "/v1/devices/pairings", body))

    def pair_device(self, code: str) -> Paired:
        """Exchange a pairing code for the device's own key (no credentials needed)."""
        return cast(Paired, self._json("POST", "/v1/devices/pair", {"code": code}))

    def list_devices(self, include_revoked: bool = False) -> list[Device]:
        params = {"include_revoked": "true"} if include_revoked else None
        return cast(list[Device], self._json("GET", "/v1/devices", params=params)["devices"])

    def this_device(self) -> Device:
        """The till device whose key this client holds."""
        return cast(Device, self._json("GET", "/v1/devices/me"))

    def unpair(self) -> Device:
        """The device revokes its own key."""
        return cast(Device, self._json("DELETE", "/v1/devices/me"))

    def revoke_device(self, device_id: str) -> Device:
        return cast(Device, self._json("DELETE", f"/v1/devices/{device_id}"))

    # ---- analytics (owner or analyst key) ----

    def offer_funnel(
        self, offer_id: str, from_: str | None = None, to: str | None = None
    ) -> dict[str, Any]:
        """Impressions, check-ins, verified check-ins, unlocks, held out, redemptions, rates."""
        params = self._params(from_=from_, to=to)
        return cast(
            dict[str, Any],
            self._json("GET", f"/v1/analytics/offers/{offer_id}/funnel", params=params),
        )

    def redemption_report(
        self, group_by: str | None = None, from_: str | None = None, to: str | None = None
    ) -> dict[str, Any]:
        """Redemption counts grouped by `day`, `hour`, `venue` or `offer`."""
        params = self._params(group_by=group_by, from_=from_, to=to)
        return cast(dict[str, Any], self._json("GET", "/v1/analytics/redemptions", params=params))

    def redemption_report_csv(
        self, group_by: str | None = None, from_: str | None = None, to: str | None = None
    ) -> str:
        """The same report as CSV with a header row."""
        params = self._params(group_by=group_by, from_=from_, to=to, format="csv")
        return self.call("GET", "/v1/analytics/redemptions", params=params).text

    def leak_report(
        self, from_: str | None = None, to: str | None = None, offer_id: str | None = None
    ) -> dict[str, Any]:
        """Exclusivity and leaks: refused attempts, suspicious redemptions, rejected check-ins,
        check-ins under strikes and by the merchant's own staff."""
        params = self._params(from_=from_, to=to, offer_id=offer_id)
        return cast(dict[str, Any], self._json("GET", "/v1/analytics/leaks", params=params))

    def offer_health(self, offer_id: str) -> dict[str, Any]:
        """One offer's last 7 days: unlocks (by proof of presence), redemptions, flags."""
        return cast(dict[str, Any], self._json("GET", f"/v1/analytics/offers/{offer_id}/health"))

    def offer_lift(self, offer_id: str, window_days: int | None = None) -> dict[str, Any]:
        """Each group's users (all assigned), pending and measured users and return rate, the
        lift and its 95% interval (from measured users only)."""
        params = self._params(window_days=window_days)
        return cast(
            dict[str, Any],
            self._json("GET", f"/v1/analytics/offers/{offer_id}/lift", params=params),
        )

    # ---- feedback from verified visits ----

    def give_feedback(
        self, checkin_id: str, rating: int, comment: str | None = None
    ) -> dict[str, Any]:
        """Rate one of your verified visits (1-5, within 7 days, once); refusals raise
        `ApiError` with `not_eligible` (422), `already_given` (409) or `not_found` (404)."""
        body: dict[str, Any] = {"rating": rating}
        if comment is not None:
            body["comment"] = comment
        return cast(dict[str, Any], self._json("POST", f"/v1/checkins/{checkin_id}/feedback", body))

    def my_feedback(self) -> list[dict[str, Any]]:
        """Your feedback, newest first, each with the merchant's `replies`."""
        return cast(list[dict[str, Any]], self._json("GET", "/v1/me/feedback")["feedback"])

    def list_feedback(
        self,
        status: str | None = None,
        venue_id: str | None = None,
        rating: int | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[dict[str, Any]]:
        """The merchant's feedback (owner or staff): unanswered oldest first, then answered."""
        params = self._params(
            status=status, venue_id=venue_id, rating=rating, limit=limit, offset=offset
        )
        return cast(
            list[dict[str, Any]], self._json("GET", "/v1/feedback", params=params)["feedback"]
        )

    def reply_to_feedback(self, feedback_id: str, body: str) -> dict[str, Any]:
        """Answer a feedback (owner or staff); several replies are allowed."""
        return cast(
            dict[str, Any],
            self._json("POST", f"/v1/feedback/{feedback_id}/replies", {"body": body}),
        )

    def responsiveness(
        self,
        from_: str | None = None,
        to: str | None = None,
        target_hours: float | None = None,
        venue_id: str | None = None,
    ) -> dict[str, Any]:
        """How well and how fast the merchant answers feedback (owner or analyst)."""
        params = self._params(from_=from_, to=to, target_hours=target_hours, venue_id=venue_id)
        return cast(
            dict[str, Any], self._json("GET", "/v1/analytics/responsiveness", params=params)
        )

    def responsiveness_csv(
        self,
        from_: str | None = None,
        to: str | None = None,
        target_hours: float | None = None,
        venue_id: str | None = None,
    ) -> str:
        """The same report as CSV: the merchant's row, then one per venue."""
        params = self._params(
            from_=from_, to=to, target_hours=target_hours, venue_id=venue_id, format="csv"
        )
        return self.call("GET", "/v1/analytics/responsiveness", params=params).text

    # ---- service ----

    def health(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._json("GET", "/healthz"))
