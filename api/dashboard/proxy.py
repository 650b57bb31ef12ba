"""`/dashboard/api/<path>`: the JSON API as the signed-in merchant, same origin, no key in JS.

A WSGI middleware in front of the Flask app. For a request under `/dashboard/api/` it opens the
session cookie, takes the merchant's API key out of it (or a paired till device's key out of
its own cookie), checks the CSRF header on anything but
GET and HEAD, and hands the same request on to the app as `/v1/<path>` with
`Authorization: Bearer <key>`. It is one ordinary request to the real API view: the same
validation, errors (problem+json), idempotency, logs and metrics, and no second request context
nested inside the first.

Only the parts of the API the dashboard uses are reachable this way (`ROUTES`); the cookie never
reaches the API and a caller's own Authorization header is dropped.

Changing API keys (create, rotate, revoke: `CONFIRMED_ROUTES`) also needs an owner key of the same
merchant typed again, sent as `X-Confirm-Key`: a session alone (a stolen cookie, a browser left
signed in) cannot mint a key, nor revoke the owner's other keys. Webhook endpoints, NFC tags and
till pairings are not key changes in this sense (none of them opens the API to whoever holds its
secret) and, like those, need the owner's session only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Request

from api import db
from api.dashboard import session as dash_session
from api.errors import problem
from core.accounts import authenticate_key

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

PREFIX = "/dashboard/api/"

# (methods, path under /v1) the dashboard may call. Everything else is 404 here.
_ID = r"[0-9a-fA-F-]{36}"
ROUTES: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = tuple(
    (frozenset(methods), re.compile(pattern))
    for methods, pattern in (
        (("GET",), r"/merchants/me"),
        (("GET", "POST"), r"/venues"),
        (("GET", "PATCH", "DELETE"), rf"/venues/{_ID}"),
        (("GET",), rf"/venues/{_ID}/presence-code"),
        (("GET", "POST"), rf"/venues/{_ID}/nfc-tags"),
        (("DELETE",), rf"/nfc-tags/{_ID}"),
        (("POST",), r"/staff-checkins"),
        (("GET", "POST"), r"/offers"),
        (("GET", "PATCH"), rf"/offers/{_ID}"),
        (("POST",), rf"/offers/{_ID}/(activate|pause|end)"),
        (("POST",), r"/redemptions"),
        (("POST",), r"/redemptions/check"),
        (("GET",), rf"/venues/{_ID}/till-day"),
        (("GET",), r"/devices"),
        (("POST",), r"/devices/pairings"),
        (("DELETE",), rf"/devices/{_ID}"),
        (("GET",), r"/feedback"),
        (("POST",), rf"/feedback/{_ID}/replies"),
        (("GET",), r"/analytics/responsiveness"),
        (("GET",), r"/analytics/redemptions"),
        (("GET",), r"/analytics/leaks"),
        (("GET",), r"/analytics/offers/health"),
        (("GET",), r"/analytics/summary"),
        (("GET",), rf"/analytics/offers/{_ID}/(funnel|lift|health)"),
        (("GET",), r"/merchants/me/keys"),
        (("GET", "POST"), r"/merchants/me/staff-users"),
        (("DELETE",), rf"/merchants/me/staff-users/{_ID}"),
        (("GET",), r"/merchants/me/audit"),
        (("GET", "POST"), r"/merchants/me/webhooks"),
        (("DELETE",), rf"/merchants/me/webhooks/{_ID}"),
        (("GET",), rf"/merchants/me/webhooks/{_ID}/deliveries"),
        (("POST",), rf"/merchants/me/webhooks/{_ID}/deliveries/{_ID}/replay"),
    )
)
# Key management: reachable only with an owner key typed again (X-Confirm-Key).
CONFIRMED_ROUTES: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = tuple(
    (frozenset(methods), re.compile(pattern))
    for methods, pattern in (
        (("POST",), r"/merchants/me/keys"),
        (("DELETE",), rf"/merchants/me/keys/{_ID}"),
        (("POST",), rf"/merchants/me/keys/{_ID}/rotate"),
    )
)
CONFIRM_HEADER = "X-Confirm-Key"


def allowed(method: str, path: str) -> bool:
    """Whether the dashboard may call `method path` (path under /v1)."""
    method = "GET" if method == "HEAD" else method
    return any(method in methods and rx.fullmatch(path) for methods, rx in ROUTES)


def needs_confirmation(method: str, path: str) -> bool:
    """Whether `method path` changes API keys: allowed only with an owner key typed again."""
    return any(method in methods and rx.fullmatch(path) for methods, rx in CONFIRMED_ROUTES)


def _confirmed(api_key: str, typed: str | None) -> bool:
    """Whether `typed` is a live owner key (not a device's) of the session key's merchant."""
    if not typed:
        return False
    session = db.session()
    acting = authenticate_key(session, api_key)
    confirming = authenticate_key(session, typed.strip())
    return (
        acting is not None
        and confirming is not None
        and confirming.role == "owner"
        and confirming.venue_id is None
        and confirming.merchant_id == acting.merchant_id
    )


class ApiProxy:
    """Wraps `app.wsgi_app`; every request outside `/dashboard/api/` passes through untouched."""

    def __init__(self, app: Flask, wsgi_app: WSGIApplication):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(PREFIX):
            return self.wsgi_app(environ, start_response)
        return self._forward(environ, start_response, "/" + path[len(PREFIX) :])

    def _forward(
        self, environ: WSGIEnvironment, start_response: StartResponse, rest: str
    ) -> Iterable[bytes]:
        request = Request(environ)
        method = request.method.upper()
        data: Any = self.app.session_interface.open_session(self.app, request) or {}
        with self.app.app_context():  # the sign-in is looked up in the database
            found = dash_session.credential(self.app, request, data)  # signed in, or a device
        api_key = found[0] if found else None
        if api_key is None:
            return problem(401, "unauthorized", "the dashboard session has ended: sign in again")(
                environ, start_response
            )
        if method not in dash_session.SAFE_METHODS and not dash_session.csrf_matches(
            data, request.headers.get(dash_session.CSRF_HEADER)
        ):
            return problem(
                403,
                "csrf_failed",
                "the request did not carry this session's CSRF token: reload the page",
            )(environ, start_response)
        confirm = needs_confirmation(method, rest)
        if not confirm and not allowed(method, rest):
            return problem(404, "not_found", "the dashboard does not offer this call")(
                environ, start_response
            )
        if confirm:
            with self.app.app_context():
                confirmed = _confirmed(api_key, request.headers.get(CONFIRM_HEADER))
            if not confirmed:
                return problem(
                    403,
                    "confirm_key_required",
                    "changing API keys needs an owner key of this merchant typed again",
                )(environ, start_response)
        inner = dict(environ)
        inner["PATH_INFO"] = "/v1" + rest
        inner["HTTP_AUTHORIZATION"] = f"Bearer {api_key}"
        for header in ("HTTP_COOKIE", "HTTP_X_CSRF_TOKEN", "HTTP_X_CONFIRM_KEY"):
            inner.pop(header, None)
        return self.wsgi_app(inner, start_response)
