"""The dashboard's session: a signed cookie holding the merchant's API key, encrypted.

Flask's session cookie is signed (nobody can forge or alter it) but only base64-encoded, so the
key is sealed with Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from `SECRET_KEY`: a
copied cookie does not reveal the API key itself. The cookie is HttpOnly, SameSite=Lax, scoped to
`/dashboard`, Secure when the request came over HTTPS (or always, with `SESSION_COOKIE_SECURE`),
and lasts `PERMANENT_SESSION_LIFETIME` (12 hours by default: a shift at the till).

The cookie also names a row of `dashboard_sessions` (core/dashboard_sessions.py), looked up on
every dashboard request: signing out deletes it, so a copy of the cookie stops working at once
rather than when it expires.

Every session carries a random CSRF token. Forms post it as `csrf_token`; the pages' scripts send
it as the `X-CSRF-Token` header on every request that is not GET or HEAD.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import MutableMapping
from datetime import timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from flask import Flask, Request, has_request_context, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from werkzeug.wrappers import Response

from api import db
from core import dashboard_sessions

log = logging.getLogger(__name__)

COOKIE_NAME = "checkin_offers_dashboard"
SESSION_ID = "sid"  # the cookie's row in dashboard_sessions
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_LIFETIME = timedelta(hours=12)


class DashboardSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, Secure whenever the request itself came over HTTPS."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # Flask opens a session for every request, and builds its signing serializer before it
        # looks for the cookie. API calls never carry the cookie (it is scoped to /dashboard):
        # skip that work for them, a few percent of a nearby request.
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        forced = bool(app.config.get("SESSION_COOKIE_SECURE"))
        return forced or (has_request_context() and request.is_secure)


def init_app(app: Flask) -> None:
    if not app.config.get("SECRET_KEY"):
        # Only in development: production refuses to start without one (api/config.py). Under
        # gunicorn the master makes one up for all workers (api/gunicorn_conf.py), so this is a
        # single process: the flask CLI, or an app built by hand.
        app.config["SECRET_KEY"] = secrets.token_hex(32)
        log.warning(
            "SECRET_KEY is not set (APP_ENV=development): dashboard sessions are signed with a "
            "key made up for this process and end with it"
        )
    app.config["SESSION_COOKIE_NAME"] = COOKIE_NAME
    app.config["SESSION_COOKIE_PATH"] = "/dashboard"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", DEFAULT_LIFETIME)
    if not isinstance(app.config["PERMANENT_SESSION_LIFETIME"], timedelta):
        app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(
            seconds=int(app.config["PERMANENT_SESSION_LIFETIME"])
        )
    app.session_interface = DashboardSessionInterface()


def _fernet(app: Flask) -> Fernet:
    secret = str(app.config["SECRET_KEY"]).encode()
    key = hmac.new(secret, b"checkin-offers dashboard api key", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal_key(app: Flask, api_key: str) -> str:
    return _fernet(app).encrypt(api_key.encode()).decode()


def api_key_of(app: Flask, data: MutableMapping[str, Any]) -> str | None:
    """The API key a session holds, or None (signed out, expired, or sealed under another
    SECRET_KEY)."""
    sealed = data.get("key")
    if not isinstance(sealed, str):
        return None
    ttl = int(app.config["PERMANENT_SESSION_LIFETIME"].total_seconds())
    try:
        return _fernet(app).decrypt(sealed.encode(), ttl=ttl).decode()
    except InvalidToken:
        return None


# ---- a till device's cookie ------------------------------------------------------------------
#
# A paired till device (offers/devices.py) keeps its own key in a cookie of its own, sealed like
# the session's but under another derived key, for as long as browsers keep a cookie (400 days):
# it is no sign-in that ends with a shift. Revoking the device (or deleting its venue) ends it at
# once, since every request looks the key up. The session cookie, when it holds a signed-in key,
# comes first; signing out leaves the device's cookie.

DEVICE_COOKIE = "checkin_offers_till"
DEVICE_COOKIE_LIFETIME = timedelta(days=400)


def _device_fernet(app: Flask) -> Fernet:
    secret = str(app.config["SECRET_KEY"]).encode()
    key = hmac.new(secret, b"checkin-offers till device key", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def device_key_of(app: Flask, request: Request) -> str | None:
    """The till device key this browser holds, or None."""
    sealed = request.cookies.get(DEVICE_COOKIE)
    if not sealed:
        return None
    try:
        return _device_fernet(app).decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None


def session_id_of(data: MutableMapping[str, Any]) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(data[SESSION_ID]))
    except (KeyError, ValueError):
        return None


def signed_in_key(app: Flask, data: MutableMapping[str, Any]) -> str | None:
    """The session's API key while its sign-in is open on the server (not signed out, not
    expired); None otherwise. Needs an app context (one database read)."""
    api_key = api_key_of(app, data)
    if api_key is None:
        return None
    session_id = session_id_of(data)
    if session_id is None or not dashboard_sessions.is_open(db.connection(), session_id):
        return None
    return api_key


def credential(
    app: Flask, request: Request, data: MutableMapping[str, Any]
) -> tuple[str, bool] | None:
    """The key a request acts with, and whether it is the till device's: the signed-in key of
    the session first, else the device's. Needs an app context."""
    api_key = signed_in_key(app, data)
    if api_key is not None:
        return api_key, False
    device_key = device_key_of(app, request)
    return (device_key, True) if device_key is not None else None


def set_device_cookie(app: Flask, response: Response, api_key: str) -> None:
    response.set_cookie(
        DEVICE_COOKIE,
        _device_fernet(app).encrypt(api_key.encode()).decode(),
        max_age=int(DEVICE_COOKIE_LIFETIME.total_seconds()),
        path=app.config["SESSION_COOKIE_PATH"],
        secure=DashboardSessionInterface().get_cookie_secure(app),
        httponly=True,
        samesite="Lax",
    )


def clear_device_cookie(app: Flask, response: Response) -> None:
    response.delete_cookie(
        DEVICE_COOKIE,
        path=app.config["SESSION_COOKIE_PATH"],
        secure=DashboardSessionInterface().get_cookie_secure(app),
        httponly=True,
        samesite="Lax",
    )


def csrf_token(data: MutableMapping[str, Any]) -> str:
    """The session's CSRF token, created on first use."""
    token = data.get("csrf")
    if not isinstance(token, str):
        token = data["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_matches(data: MutableMapping[str, Any], sent: str | None) -> bool:
    expected = data.get("csrf")
    return (
        isinstance(expected, str)
        and isinstance(sent, str)
        and hmac.compare_digest(expected.encode(), sent.encode())
    )
