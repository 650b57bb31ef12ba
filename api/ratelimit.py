"""Rate limits per merchant API key, per mobile user token and per client IP.

Flask-Limiter (over the `limits` library) counts every request, before its view runs, against:

- its client IP (`RATE_LIMIT_PER_IP`), always, with or without credentials;
- its credential when it carries one: the API key (`RATE_LIMIT_PER_KEY`), and the merchant the
  key belongs to (`RATE_LIMIT_PER_MERCHANT`, all its keys together); or the user the token
  belongs to (`RATE_LIMIT_PER_USER`, all the user's tokens together). So a new token, or
  another API key, does not start with a full budget. A credential is told apart by the public
  lookup part of `Bearer cok_<lookup>_<secret>` (or `cou_...`), before the secret is checked,
  so a forged secret still counts against that key and its merchant (or that token's user):
  the lookup is never shown by the API or the logs, and the per-IP limit bounds anyone who
  makes lookups up. The owner of a lookup is one indexed query the first time a worker sees
  it, then kept in the worker's memory (a lookup never changes owner); a lookup nobody has
  counts on its own.
- the sign-in routes (`POST /v1/users/token`, `POST /v1/users`, `POST /v1/devices/pair`) also
  against a budget of their own per client IP (`RATE_LIMIT_SIGN_IN_PER_IP`): each costs an
  Argon2 hash or guesses a secret. Failed sign-ins are limited per handle as well, by the
  domain (`core/throttle.py`).

All routes share one budget per caller ("application" limits). `/healthz`, `/readyz`,
`/metrics`, `/openapi.json`, `/docs` and static files are not limited, nor CORS preflights
(`OPTIONS`). Limits are fixed windows (`600/minute`: 600 requests in each minute from the first
one), so a caller may fit up to twice a limit across the boundary of two windows.

Counters must be shared by every gunicorn worker and every host, or N workers would let N times
the limit through. With `REDIS_URL` they live in Redis (`limits`' own Redis storage). Without
it, in PostgreSQL (`PostgresStorage` below): one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`
per limit per request on the UNLOGGED table `rate_limit_counters`, atomic under concurrency. If
the storage fails, each worker falls back to counting in its own memory (Flask-Limiter's
in-memory fallback, a warning in the log) and returns to the shared storage once it answers; a
request caught in that switch is let through, never answered 500.

Over a limit: 429 problem+json `rate_limited` with `Retry-After` (seconds). Every limited answer
carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds to the window's
end) for the tightest limit that applied, and `RateLimit-Policy` listing each limit
(`600;w=60`), after the IETF httpapi draft "RateLimit header fields for HTTP".
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from apispec import BasePlugin
from flask import Flask, Response, current_app, g, has_app_context, request
from flask_limiter import ApplicationLimit, Limiter, RequestLimit
from limits.storage import Storage
from sqlalchemy import Connection, CursorResult, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from api import auth
from api.observability import request_id
from core.accounts import KEY_PREFIX, TOKEN_PREFIX
from core.secrets import split_token

log = logging.getLogger("checkin_offers.ratelimit")

KEY_PREFIX_STORAGE = "checkin-offers"
# Paths never limited: probes, metrics and the API's own description.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"})
EXEMPT_PREFIXES = ("/docs/",)
# Credential kinds and the part of the message that names them.
_KINDS = {
    "key": "this API key",
    "merchant": "this merchant (all its API keys)",
    "user": "this user (all the user's tokens)",
    "ip": "this client address",
    "sign_in": "sign-ins from this client address",
}
# Which credential each limit counts, and whose it is.
_CREDENTIAL_OF = {"key": "key", "merchant": "key", "user": "user"}
_OWNER = {
    "key": text("SELECT merchant_id AS owner FROM api_keys WHERE lookup = :lookup"),
    "user": text("SELECT user_id AS owner FROM user_tokens WHERE lookup = :lookup"),
}
OWNER_CACHE_SIZE = 10_000
# The routes of the sign-in budget (view endpoints: blueprint.view).
SIGN_IN_ENDPOINTS = frozenset({"accounts.UserToken", "accounts.Users", "devices.Pair"})


# ---- who is calling --------------------------------------------------------------------------


def _credential() -> tuple[str, str] | None:
    """("key" or "user", lookup) of a well-formed bearer credential, without checking it."""
    token = auth.bearer()
    if token is None:
        return None
    for kind, prefix in (("key", KEY_PREFIX), ("user", TOKEN_PREFIX)):
        parts = split_token(token, prefix)
        if parts is not None:
            return kind, parts[0]
    return None


def _credential_of(kind: str) -> str:
    found = _credential()
    return f"{kind}:{found[1]}" if found is not None and found[0] == kind else ""


def _owner_of(limit: str) -> str:
    """The counter of a merchant's or a user's limit: `merchant:<id>` or `user:<id>`, found
    from the credential's lookup; a lookup that names nobody counts on its own."""
    found = _credential()
    if found is None or found[0] != _CREDENTIAL_OF[limit]:
        return ""
    kind, lookup = found
    owners: dict[tuple[str, str], str] = current_app.extensions["ratelimit_owners"]
    owner = owners.get((kind, lookup))
    if owner is None:
        try:
            with _connection() as conn:
                row = conn.execute(_OWNER[kind], {"lookup": lookup}).first()
        except SQLAlchemyError as exc:  # the storage's own fallback decides what to do next
            log.warning("rate-limit owner lookup failed: %s", type(exc).__name__)
            row = None
        if row is None:
            return f"{limit}-lookup:{lookup}"
        owner = str(row.owner)
        if len(owners) >= OWNER_CACHE_SIZE:
            owners.clear()
        owners[(kind, lookup)] = owner
    return f"{limit}:{owner}"


def _not_a(kind: str) -> bool:
    found = _credential()
    return found is None or found[0] != _CREDENTIAL_OF.get(kind, kind)


def _not_sign_in() -> bool:
    return request.endpoint not in SIGN_IN_ENDPOINTS or request.method != "POST"


def client_ip() -> str:
    """The client's address (through `TRUSTED_PROXIES` proxies, see `api.security`)."""
    return f"ip:{request.remote_addr or 'unknown'}"


def _exempt() -> bool:
    path = request.path
    return request.method == "OPTIONS" or path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


def _limit(kind: str, value: str) -> ApplicationLimit:
    def message() -> str:
        return f"too many requests for {_KINDS[kind]} (the limit is {value}); retry later"

    def breach(limit: RequestLimit) -> None:
        # By kind and limit only: never the credential or its lookup.
        log.info(
            "rate_limited",
            extra={"request_id": request_id(), "scope": kind, "limit": str(limit.limit)},
        )

    if kind == "ip":
        return ApplicationLimit(
            value, key_function=client_ip, scope=kind, error_message=message, on_breach=breach
        )
    if kind == "sign_in":
        return ApplicationLimit(
            value,
            key_function=lambda: "sign-in:" + client_ip(),
            scope=kind,
            exempt_when=_not_sign_in,
            error_message=message,
            on_breach=breach,
        )
    key_function = (lambda: _credential_of(kind)) if kind == "key" else (lambda: _owner_of(kind))
    return ApplicationLimit(
        value,
        key_function=key_function,
        scope=kind,
        exempt_when=lambda: _not_a(kind),
        error_message=message,
        on_breach=breach,
    )


# ---- the app ---------------------------------------------------------------------------------


def init_app(app: Flask) -> None:
    """Count requests (when `RATE_LIMIT_ENABLED`) and answer the RateLimit headers."""
    config = app.config
    limiter = Limiter(
        key_func=client_ip,
        application_limits=[
            _limit("key", config["RATE_LIMIT_PER_KEY"]),
            _limit("merchant", config["RATE_LIMIT_PER_MERCHANT"]),
            _limit("user", config["RATE_LIMIT_PER_USER"]),
            _limit("ip", config["RATE_LIMIT_PER_IP"]),
            _limit("sign_in", config["RATE_LIMIT_SIGN_IN_PER_IP"]),
        ],
        storage_uri=config.get("REDIS_URL") or f"{PostgresStorage.STORAGE_SCHEME[0]}://",
        strategy="fixed-window",
        key_prefix=KEY_PREFIX_STORAGE,
        # Unmatched paths (404, 405) are counted too, under one name.
        request_identifier=lambda: request.endpoint or "unmatched",
        headers_enabled=False,  # written below, after the IETF draft rather than X-RateLimit-*
        in_memory_fallback_enabled=True,
        # When the storage fails, the first request to see it switches the worker to counting
        # in memory; others failing at the same moment are let through (logged), not 500.
        swallow_errors=True,
        enabled=bool(config["RATE_LIMIT_ENABLED"]),
    )
    limiter.request_filter(_exempt)
    limiter.init_app(app)
    app.extensions["ratelimit"] = limiter
    app.extensions["ratelimit_owners"] = {}
    if not config.get("REDIS_URL"):
        app.extensions["ratelimit_engine"] = counters_engine(
            app.extensions["engine"], config["DB_POOL_SIZE"] + config["DB_MAX_OVERFLOW"]
        )
    # Flask-Limiter's own breach line names the counter's key (a credential's lookup): ours
    # (`rate_limited`, above) does not.
    logging.getLogger("flask-limiter").setLevel(logging.WARNING)
    app.after_request(_headers)


def _headers(response: Response) -> Response:
    limiter: Limiter | None = current_app.extensions.get("ratelimit")
    if limiter is None or not limiter.enabled:
        return response
    try:
        applied = [(lim, *lim.window) for lim in limiter.current_limits]
    except Exception as exc:  # the storage failed since the check: answer without the headers
        log.warning("rate-limit headers unavailable: %s", type(exc).__name__)
        return response
    if not applied:
        return response
    now = time.time()
    tightest, reset_at, remaining = min(applied, key=lambda a: (not a[0].breached, a[2], -a[1]))
    reset = max(0, math.ceil(reset_at - now))
    response.headers["RateLimit-Limit"] = str(tightest.limit.amount)
    response.headers["RateLimit-Remaining"] = str(max(0, remaining))
    response.headers["RateLimit-Reset"] = str(reset)
    response.headers["RateLimit-Policy"] = ", ".join(
        f"{lim.limit.amount};w={lim.limit.get_expiry()}" for lim, _, _ in applied
    )
    if response.status_code == 429 and "Retry-After" not in response.headers:
        # A domain refusal (too many wrong codes or passwords) says its own wait.
        response.headers["Retry-After"] = str(max(1, reset))
    return response


class TooManyRequestsPlugin(BasePlugin):
    """An apispec plugin: every operation but the exempt ones may answer 429."""

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if path in EXEMPT_PATHS or operations is None:
            return
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if 429 not in responses and "429" not in responses:
                responses[429] = "TOO_MANY_REQUESTS"


# ---- PostgreSQL storage ----------------------------------------------------------------------

_INCR = text(
    """
    INSERT INTO rate_limit_counters AS c (key, hits, expires_at)
    VALUES (:key, :amount, clock_timestamp() + make_interval(secs => :expiry))
    ON CONFLICT (key) DO UPDATE SET
        hits = CASE WHEN c.expires_at <= clock_timestamp() THEN excluded.hits
                    ELSE c.hits + excluded.hits END,
        expires_at = CASE WHEN c.expires_at <= clock_timestamp() THEN excluded.expires_at
                          ELSE c.expires_at END
    RETURNING c.hits, EXTRACT(EPOCH FROM c.expires_at) AS expires_at
    """
)
_GET = text(
    "SELECT hits, EXTRACT(EPOCH FROM expires_at) AS expires_at FROM rate_limit_counters"
    " WHERE key = :key AND expires_at > clock_timestamp()"
)
_PRUNE = text(
    "DELETE FROM rate_limit_counters WHERE expires_at < clock_timestamp() - interval '1 minute'"
)
PRUNE_EVERY_SECONDS = 60.0


@contextmanager
def _connection() -> Iterator[Connection]:
    """A connection for the limiter's own statements: the counters' pool (the app's engine
    when counters live in Redis). The test suite binds the app's sessions to one connection;
    use it (without opening the request's session, which a view may want in autocommit mode)."""
    bind = current_app.extensions["sessionmaker"].kw.get("bind")
    if isinstance(bind, Connection):
        yield bind
        return
    engine: Engine = (
        current_app.extensions.get("ratelimit_engine") or current_app.extensions["engine"]
    )
    with engine.connect() as conn:
        yield conn


def counters_engine(app_engine: Engine, most: int) -> Engine:
    """The counters' own small pool on the app's database: autocommit (a hit is one statement),
    and no ping at checkout, which would double the cost of a hit; a hit on a connection the
    database has dropped is retried once on a fresh one instead. At most `most` connections."""
    return create_engine(
        app_engine.url,
        pool_size=min(2, most),
        max_overflow=max(0, most - 2),
        pool_recycle=1800,
        pool_reset_on_return=None,  # nothing to roll back in autocommit
        isolation_level="AUTOCOMMIT",
        hide_parameters=True,
    )


class PostgresStorage(Storage):
    """`limits` storage on the app's PostgreSQL database, shared by every worker and host.

    Fixed windows only (Flask-Limiter's `fixed-window` strategy): a counter is a row with its
    hits and the end of its window, the database's clock deciding when a window ends. A hit is
    one upsert in autocommit on a pool of its own (`counters_engine`), so it counts even when
    the request's own transaction rolls back. When the app's sessions are bound to one
    connection rather than an engine (the test suite runs each test in a transaction it rolls
    back), counters go through that connection instead.

    The counts of the request's own hits are kept for the RateLimit headers written after the
    view, so answering them costs no further query. Expired rows are deleted about once a minute
    per worker.
    """

    STORAGE_SCHEME = ["checkin-offers+postgresql"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any):
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self._pruned_at = time.monotonic()

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        with _connection() as conn:
            yield conn

    def _execute(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        """Run one statement and read its rows; once more on a fresh connection if the pooled
        one had been dropped by the database."""
        for attempt in range(2):
            try:
                with self._connection() as conn:
                    result: CursorResult[Any] = conn.execute(statement, params or {})
                    return result.freeze()() if result.returns_rows else result
            except DBAPIError as exc:
                if attempt or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    def _seen(self) -> dict[str, tuple[int, float]]:
        if not has_app_context():
            return {}
        seen: dict[str, tuple[int, float]] = g.setdefault("ratelimit_seen", {})
        return seen

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        row = self._execute(_INCR, {"key": key, "amount": amount, "expiry": expiry}).one()
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_SECONDS:
            self._pruned_at = time.monotonic()
            self._execute(_PRUNE)
        hits, expires_at = int(row.hits), float(row.expires_at)
        self._seen()[key] = (hits, expires_at)
        return hits

    def _lookup(self, key: str) -> tuple[int, float]:
        seen = self._seen().get(key)
        if seen is not None:
            return seen
        row = self._execute(_GET, {"key": key}).one_or_none()
        return (0, time.time()) if row is None else (int(row.hits), float(row.expires_at))

    def get(self, key: str) -> int:
        return self._lookup(key)[0]

    def get_expiry(self, key: str) -> float:
        return self._lookup(key)[1]

    def check(self) -> bool:
        try:
            self._execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        deleted: int = self._execute(text("DELETE FROM rate_limit_counters")).rowcount
        self._seen().clear()
        return deleted

    def clear(self, key: str) -> None:
        self._execute(text("DELETE FROM rate_limit_counters WHERE key = :key"), {"key": key})
        self._seen().pop(key, None)
