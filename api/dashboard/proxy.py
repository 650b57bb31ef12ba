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
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Request

from api.dashboard import session as dash_session
from api.errors import problem

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
        (("GET",), rf"/analytics/offers/{_ID}/(funnel|lift|health)"),
    )
)


def allowed(method: str, path: str) -> bool:
    """Whether the dashboard may call `method path` (path under /v1)."""
    method = "GET" if method == "HEAD" else method
    return any(method in methods and rx.fullmatch(path) for methods, rx in ROUTES)


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
        found = dash_session.credential(self.app, request, data)  # signed in, or a till device
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
        if not allowed(method, rest):
            return problem(404, "not_found", "the dashboard does not offer this call")(
                environ, start_response
            )
        inner = dict(environ)
        inner["PATH_INFO"] = "/v1" + rest
        inner["HTTP_AUTHORIZATION"] = f"Bearer {api_key}"
        for header in ("HTTP_COOKIE", "HTTP_X_CSRF_TOKEN"):
            inner.pop(header, None)
        return self.wsgi_app(inner, start_response)
