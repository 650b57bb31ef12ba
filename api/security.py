"""Security headers on every answer, CORS only when configured, and the client's address behind
trusted proxies.

Every answer gets `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
`Referrer-Policy: no-referrer` and a Content-Security-Policy. The API answers JSON, CSV and
problem+json, which a browser should never run or frame: `default-src 'none'`. Pages set their
own policy: `/docs` (Swagger UI from the installed package, one inline script allowed by its
hash) gets `DOCS_CSP`, and the dashboard's blueprint sets its own before this runs (only headers
still missing are added here). `Strict-Transport-Security` only when `HSTS_SECONDS` is set: the
service does not know whether it is reached over HTTPS.

Caching, one rule for every answer: **every `/v1` answer is `Cache-Control: no-store`, and so is
any answer to a request that carried `Authorization`**, except the answers listed in `PUBLIC`
(the same for everyone, carrying nothing personal). The API's answers carry secrets (sign-up
keys and tokens, new and rotated keys, unlock codes in check-ins and the wallet, presence
codes) or one caller's data, and a secret must not rest in a browser's or a proxy's cache; an
answer written before this rule knew which fields are secret, so the rule does not try to. The
only public answer is an anonymous `GET /v1/venues/nearby`; with a user token it records
impressions and is `no-store` like the rest. Error answers follow the same rule.

CORS is off unless `CORS_ORIGINS` names origins: without it no `Access-Control-*` header is ever
sent, so browsers keep other sites' scripts out. With it, the listed origins (or any, with `*`)
may call `/v1/...` and read `/openapi.json` with `Authorization` and the JSON headers. The API
authenticates by bearer header, never by cookie, so no credentialed CORS is offered; the
cookie-authenticated dashboard (`/dashboard/...`) never answers CORS.

`TRUSTED_PROXIES` (N > 0) reads the client's address and scheme from the last N entries of
`X-Forwarded-For` and `X-Forwarded-Proto` (Werkzeug's ProxyFix): the per-IP rate limit and the
logs then see the client, not the load balancer. Leave it 0 when nothing trusted sits in front:
a client could otherwise pick its own address.
"""

from __future__ import annotations

import base64
import hashlib
import re

from flask import Flask, Response, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix

from api import docs

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def _inline_script_hashes(page: str) -> str:
    """CSP sources for the inline scripts of a page, by their SHA-256."""
    scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.DOTALL)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in scripts
    )


DOCS_CSP = "; ".join(
    (
        "default-src 'self'",
        f"script-src 'self' {_inline_script_hashes(docs.PAGE)}",
        "style-src 'self' 'unsafe-inline'",  # Swagger UI styles elements inline
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

# Endpoints whose answer, to a request without `Authorization`, is public: no `no-store`.
PUBLIC = frozenset({"venues.Nearby"})
API_PREFIX = "/v1/"

CORS_PATHS = ("/v1/", "/openapi.json")
CORS_ALLOW_METHODS = "GET, POST, PATCH, DELETE"
CORS_ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-ID"
CORS_EXPOSE_HEADERS = ", ".join(
    (
        "X-Request-ID",
        "Idempotent-Replayed",
        "Retry-After",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "RateLimit-Policy",
        "Content-Disposition",
    )
)
CORS_MAX_AGE_SECONDS = 600


def init_app(app: Flask) -> None:
    """Headers on every answer; CORS when configured; the client's address through proxies."""
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies
        )
    app.after_request(_security_headers)
    if app.config.get("CORS_ORIGINS"):
        app.after_request(_cors)


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    csp = DOCS_CSP if request.endpoint == "docs.page" else API_CSP
    headers.setdefault("Content-Security-Policy", csp)
    if "Cache-Control" not in headers and _private(request.path, request.endpoint):
        headers["Cache-Control"] = "no-store"
    hsts = current_app.config.get("HSTS_SECONDS") or 0
    if hsts > 0:
        headers.setdefault("Strict-Transport-Security", f"max-age={hsts}")
    return response


def _private(path: str, endpoint: str | None) -> bool:
    """Whether an answer must not be stored by any cache (the rule in the module's docstring)."""
    if "Authorization" in request.headers:
        return True
    return path.startswith(API_PREFIX) and endpoint not in PUBLIC


def _cors(response: Response) -> Response:
    if not request.path.startswith(CORS_PATHS):
        return response
    allowed = current_app.config["CORS_ORIGINS"]
    origin = request.headers.get("Origin")
    any_origin = "*" in allowed
    if not any_origin:
        response.vary.add("Origin")  # the answer depends on it: caches must keep them apart
    if origin is None or not (any_origin or origin in allowed):
        return response
    headers = response.headers
    headers["Access-Control-Allow-Origin"] = "*" if any_origin else origin
    headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        headers["Access-Control-Allow-Methods"] = CORS_ALLOW_METHODS
        headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
        headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_SECONDS)
    return response
