"""Webhooks: the merchant's endpoints, the outbox of events, and the deliveries' bookkeeping.

Events are never lost and never invented (docs/integrations.md):

- `emit` writes an event and its deliveries (one per subscribed endpoint of the merchant) with
  one INSERT ... SELECT, in the session of the use case that made the change: a check-in, an
  unlock or a redemption. They commit together, or roll back together. A merchant without a
  subscribed endpoint costs the statement's index probe and nothing is stored.
- The delivery worker (`core/delivery.py`) claims due deliveries with `FOR NO KEY UPDATE SKIP
  LOCKED` and records each attempt here (`record_attempt`): delivered on a 2xx, else retried on
  `backoff`'s schedule (exponential with jitter) until `RETRY_WINDOW` has passed, then `failed`
  and the endpoint is marked failing. The webhook-id is the event's id, the same on every retry.

Lists of codes, limits and defaults live here; the API's schemas import them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import json
import random
import secrets
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.orm import Session

from core import audit
from core.errors import NotFoundError, ValidationError
from core.uow import UnitOfWork, execute

CHECKIN_VERIFIED = "checkin.verified"
UNLOCK_CREATED = "unlock.created"
REDEMPTION_CREATED = "redemption.created"
# Written by offers.feedback.give_feedback in its own transaction.
FEEDBACK_CREATED = "feedback.created"
EVENT_TYPES = (CHECKIN_VERIFIED, UNLOCK_CREATED, REDEMPTION_CREATED, FEEDBACK_CREATED)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
DELIVERY_STATUSES = (PENDING, DELIVERED, FAILED)

MAX_ENDPOINTS_PER_MERCHANT = 10
MAX_URL_LENGTH = 2048
SECRET_PREFIX = "whsec_"

# Retries: the first within a minute (the contract), then doubling, each delay jittered by
# +-20% so that a receiver back from an outage is not hit by every retry at once; at most
# `MAX_DELAY` apart, until an attempt fails `RETRY_WINDOW` or more after the event (so the last
# retry comes at least 24 hours after the first attempt, and at most `MAX_DELAY` (+20%) later).
FIRST_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=2)
JITTER = 0.2
RETRY_WINDOW = timedelta(hours=24)

# Delivery limits (core/delivery.py): short timeouts, no redirects, the answer read up to a cap.
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 5.0
MAX_RESPONSE_BYTES = 64 * 1024
MAX_ERROR_LENGTH = 500
# A worker claims a delivery for this long at most (its transaction holds the row lock).
WORKER_HEARTBEAT_S = 10.0
# A worker whose heartbeat is older than this is not counted as running (/readyz).
WORKER_STALE_AFTER_S = 60.0

_ALLOWED_PORTS = None  # any port: merchants run receivers on odd ones; the address decides


class WebhookUrlError(ValidationError):
    code = "webhook_url_refused"
    title = "Webhook URL refused"


class WebhookLimitError(ValidationError):
    code = "too_many_webhooks"
    title = "Too many webhook endpoints"


# ---- where a webhook may point ------------------------------------------------------------------


@dataclass(frozen=True)
class UrlPolicy:
    """`allow_http_loopback` (the setting `WEBHOOKS_ALLOW_HTTP_LOOPBACK`, for development and
    tests): loopback addresses are accepted, over `http` as well as `https`."""

    allow_http_loopback: bool = False


Resolver = Callable[[str, int], Sequence[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (A and AAAA)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def refused_address(address: str, policy: UrlPolicy) -> str | None:
    """Why a receiver at this IP address is refused, or None: private, loopback (unless allowed),
    link-local (cloud metadata at 169.254.169.254 included), multicast, reserved, unspecified,
    carrier-grade NAT, and IPv4 reached through IPv6 (mapped, 6to4, Teredo) judged as IPv4."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None:
            return refused_address(str(inner), policy)
    if ip.is_loopback:
        return None if policy.allow_http_loopback else "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_private or ip in ipaddress.ip_network("100.64.0.0/10"):
        return "a private address"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class Target:
    """A checked URL, with the addresses it resolved to: the worker connects to one of these,
    never resolving again, so DNS cannot change between the check and the connection."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def check_url(url: str, policy: UrlPolicy, resolver: Resolver = resolve) -> Target:
    """The URL's target if a webhook may be sent there; `WebhookUrlError` saying why not. Run at
    registration and again before every delivery."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise WebhookUrlError(f"not a valid URL: {error}") from None
    host = parts.hostname
    if parts.scheme not in ("https", "http") or not host:
        raise WebhookUrlError("the URL must be https://host/path")
    if parts.username or parts.password:
        raise WebhookUrlError("the URL may not carry a user name or password")
    if parts.fragment:
        raise WebhookUrlError("the URL may not have a #fragment")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = list(resolver(host, port))
    except (OSError, UnicodeError):
        raise WebhookUrlError(f"the host {host} does not resolve") from None
    if not addresses:
        raise WebhookUrlError(f"the host {host} does not resolve")
    for address in addresses:
        why = refused_address(address, policy)
        if why is not None:
            raise WebhookUrlError(f"the host {host} resolves to {address}, {why}")
    if parts.scheme == "http":
        loopback = all(ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in addresses)
        if not (policy.allow_http_loopback and loopback):
            raise WebhookUrlError(
                "the URL must be https (plain http only to a loopback address, with the "
                "setting WEBHOOKS_ALLOW_HTTP_LOOPBACK=1)"
            )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port, path, tuple(addresses))


# ---- endpoints ----------------------------------------------------------------------------------


def new_secret() -> str:
    """`whsec_` and the base64 of 32 random bytes (the Standard Webhooks format)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


_ENDPOINT_COLUMNS = "id, url, events, created_at, failing_since"


def endpoint_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "events": list(row.events),
        "status": "failing" if row.failing_since is not None else "active",
        "failing_since": row.failing_since,
        "created_at": row.created_at,
    }


def create_endpoint(
    uow: UnitOfWork,
    actor: audit.Actor,
    merchant_id: uuid.UUID,
    url: str,
    events: Iterable[str],
    policy: UrlPolicy,
    resolver: Resolver = resolve,
) -> dict[str, Any]:
    """Register an endpoint; the answer carries its signing secret, shown this once."""
    check_url(url, policy, resolver)
    wanted = sorted(set(events))
    unknown = [e for e in wanted if e not in EVENT_TYPES]
    if unknown or not wanted:
        raise ValidationError(
            "unknown event types" if unknown else "subscribe to at least one event",
            errors={"events": [f"one or more of {', '.join(EVENT_TYPES)}"]},
        )
    with uow:
        session = uow.session
        # One registration at a time per merchant, so the limit holds under parallel requests.
        execute(
            session,
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
            {"k": f"webhooks:{merchant_id}"},
        )
        count = execute(
            session,
            text(
                "SELECT count(*) FROM webhook_endpoints"
                " WHERE merchant_id = :m AND deleted_at IS NULL"
            ),
            {"m": merchant_id},
        ).scalar_one()
        if count >= MAX_ENDPOINTS_PER_MERCHANT:
            raise WebhookLimitError(
                f"at most {MAX_ENDPOINTS_PER_MERCHANT} webhook endpoints: delete one first"
            )
        secret = new_secret()
        row = execute(
            session,
            text(
                "INSERT INTO webhook_endpoints (id, merchant_id, url, events, secret, created_at)"
                " VALUES (:id, :m, :url, :events, :secret, now())"
                f" RETURNING {_ENDPOINT_COLUMNS}"
            ),
            {"id": uuid.uuid4(), "m": merchant_id, "url": url, "events": wanted, "secret": secret},
        ).one()
        view = endpoint_view(row)
        audit.record(session, merchant_id, actor, "webhook.create", row.id, audit.diff(None, view))
        uow.commit()
        return {**view, "secret": secret}


def list_endpoints(session: Session, merchant_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = execute(
        session,
        text(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints"
            " WHERE merchant_id = :m AND deleted_at IS NULL ORDER BY created_at, id"
        ),
        {"m": merchant_id},
    ).all()
    return [endpoint_view(r) for r in rows]


def delete_endpoint(
    uow: UnitOfWork, actor: audit.Actor, merchant_id: uuid.UUID, endpoint_id: uuid.UUID
) -> dict[str, Any]:
    """Stop an endpoint: nothing more is sent to it; its pending deliveries end `failed`."""
    with uow:
        session = uow.session
        row = execute(
            session,
            text(
                "UPDATE webhook_endpoints SET deleted_at = now()"
                " WHERE id = :id AND merchant_id = :m AND deleted_at IS NULL"
                f" RETURNING {_ENDPOINT_COLUMNS}"
            ),
            {"id": endpoint_id, "m": merchant_id},
        ).one_or_none()
        if row is None:
            raise NotFoundError("no such webhook")
        execute(
            session,
            text(
                "UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint deleted'"
                " WHERE endpoint_id = :id AND status = 'pending'"
            ),
            {"id": endpoint_id},
        )
        view = endpoint_view(row)
        audit.record(
            session, merchant_id, actor, "webhook.delete", endpoint_id, audit.diff(view, None)
        )
        uow.commit()
        return view


# ---- the outbox ---------------------------------------------------------------------------------

# The events, and one delivery per live endpoint of the merchant that subscribes to the type (an
# event nobody subscribes to is not stored at all): one INSERT ... SELECT inside a PL/pgSQL
# function (migration 0022), so PostgreSQL plans it once per connection instead of on every call.
_EMIT = text("SELECT webhook_emit(CAST(:events AS jsonb), :merchant_id, :window_s)")


def emit(
    session: Session, merchant_id: uuid.UUID, events: Sequence[tuple[str, Mapping[str, Any]]]
) -> None:
    """Put events (type, the object as the API shows it) in the outbox, in the caller's
    transaction: they are delivered if, and only if, it commits. One statement."""
    if not events:
        return
    for kind, _ in events:
        if kind not in EVENT_TYPES:
            raise ValueError(f"unknown webhook event type {kind!r}")
    payload = [
        {"id": str(uuid.uuid4()), "type": kind, "data": audit.jsonable(data)}
        for kind, data in events
    ]
    execute(
        session,
        _EMIT,
        {
            "events": json.dumps(payload),
            "merchant_id": str(merchant_id),
            "window_s": RETRY_WINDOW.total_seconds(),
        },
    )


# ---- the worker's two statements, prepared ----------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    """A statement the delivery worker runs in every transaction, prepared once per database
    connection (`PREPARE`) and then only executed (`EXECUTE`): measured, parsing and planning
    the claim and the record cost the database about as much CPU as running them
    (docs/performance.md). After a few executions PostgreSQL keeps a generic plan. A prepared
    statement belongs to its connection: a new one (the pool reconnecting after a restart)
    prepares again; its name is the statement's text's hash, so a changed text never meets an
    older preparation of itself. Parameters are `$1`..`$n` in `sql`, bound by name in order."""

    name: str
    params: tuple[tuple[str, str], ...]  # (name, SQL type), in $n order
    sql: str

    @functools.cached_property
    def key(self) -> str:
        digest = hashlib.blake2s(self.sql.encode(), digest_size=6).hexdigest()
        return f"{self.name}_{digest}"

    @functools.cached_property
    def prepare(self) -> str:
        types = ", ".join(t for _, t in self.params)
        return f"PREPARE {self.key}{f' ({types})' if types else ''} AS {self.sql}"

    @functools.cached_property
    def execute(self) -> Any:
        # The generic plan every time (the record's custom plans, which know how many
        # deliveries it records, won PostgreSQL's comparison and were planned anew each time);
        # SET LOCAL ends with the transaction. One round trip.
        args = ", ".join(f"CAST(:{n} AS {t})" for n, t in self.params)
        call = f"{self.key} ({args})" if args else self.key
        return text(f"SET LOCAL plan_cache_mode = force_generic_plan; EXECUTE {call}")

    @functools.cached_property
    def plain(self) -> Any:
        """The statement sent whole, parsed and planned each time (before preparing; benchmarks
        compare the two: `PREPARED`)."""
        sql = self.sql
        for i, (n, t) in reversed(list(enumerate(self.params, start=1))):
            sql = sql.replace(f"${i}", f"CAST(:{n} AS {t})")
        return text(sql)


# False: send the statements whole each time, as before they were prepared (bench/outbox.py's
# `before`; nothing else sets it).
PREPARED = True


def _execute_prepared(session: Session, statement: _Prepared, params: Mapping[str, Any]) -> Any:
    """Run `statement` in the session's transaction, preparing it first on a connection that
    has not prepared it yet (`Connection.info` lives as long as the database connection)."""
    if not PREPARED:
        return execute(session, statement.plain, params)
    connection = session.connection()
    prepared: set[str] = connection.info.setdefault("prepared_statements", set())
    if statement.key not in prepared:
        connection.exec_driver_sql(statement.prepare)
        prepared.add(statement.key)
    return execute(connection, statement.execute, params)


# ---- deliveries ---------------------------------------------------------------------------------


def backoff(attempts: int, rng: Callable[[], float] = random.random) -> timedelta:
    """The wait after the `attempts`-th failed attempt: `FIRST_DELAY` doubled each time, at most
    `MAX_DELAY`, times a random factor in [1 - JITTER, 1 + JITTER]."""
    base = min(FIRST_DELAY * (2 ** max(0, attempts - 1)), MAX_DELAY)
    return base * (1 - JITTER + 2 * JITTER * rng())


def schedule(rng: Callable[[], float] = random.random) -> list[timedelta]:
    """Every retry's delay after the first attempt (all failing), as `record_attempt` does it:
    a failure before `RETRY_WINDOW` has passed schedules another retry."""
    delays: list[timedelta] = []
    elapsed = timedelta(0)
    while elapsed < RETRY_WINDOW:
        delays.append(backoff(len(delays) + 1, rng))
        elapsed += delays[-1]
    return delays


@dataclass(frozen=True)
class Claimed:
    """A due delivery the worker holds (its row lock) while it sends it."""

    id: uuid.UUID
    event_id: uuid.UUID
    endpoint_id: uuid.UUID
    merchant_id: uuid.UUID
    url: str
    secret: str
    type: str
    data: dict[str, Any]
    event_created_at: datetime
    attempts: int


# The endpoint whose oldest due delivery is the oldest, among the endpoints no other worker holds,
# and up to `limit` of its due deliveries, oldest first (a batch, sent one after another on one
# connection). The endpoint's row is locked (one delivery in flight per endpoint, so a slow
# receiver ties up one worker thread, never all of them), and so are the deliveries.
#
# The endpoint is the first owner, oldest first, among the 64 oldest due deliveries (`fast`,
# which stops at the first it can lock: as a rule, the oldest). Only when every one of them
# belongs to an endpoint another worker holds (a receiver that is down or slow while its
# merchant's events pile up) does `slow` run: a loose index scan of
# `ix_webhook_deliveries_endpoint_due`, one descent per endpoint with pending deliveries, reading
# its oldest. Walking the due deliveries in time order until one could be
# locked (as this did before) met every due delivery of a held endpoint on the way and skipped
# them one by one: one backlog made every other endpoint's claim cost as much as the backlog
# (70 ms per claim with 50,000 waiting; docs/integrations.md). FOR NO KEY UPDATE does not block
# the FOREIGN KEY checks of new deliveries.
#
# The batch's size is written into the statement (one prepared statement per size): as a
# parameter, the generic plan assumed a LIMIT of a tenth of the rows and, with few endpoints,
# walked every endpoint's due deliveries and hashed the events table.
_CLAIM = """
    WITH RECURSIVE fast AS (
        SELECT w.id
        FROM (SELECT endpoint_id, next_attempt_at
              FROM webhook_deliveries
              WHERE status = 'pending' AND next_attempt_at <= now()
              ORDER BY next_attempt_at
              LIMIT 64) d
        JOIN webhook_endpoints w ON w.id = d.endpoint_id
        WHERE w.deleted_at IS NULL
        ORDER BY d.next_attempt_at
        LIMIT 1
        FOR NO KEY UPDATE OF w SKIP LOCKED
    ), pending AS (
        (SELECT d.endpoint_id, d.next_attempt_at
         FROM webhook_deliveries d
         WHERE d.status = 'pending'
         ORDER BY d.endpoint_id, d.next_attempt_at
         LIMIT 1)
        UNION ALL
        SELECT next.endpoint_id, next.next_attempt_at
        FROM pending p, LATERAL (
            SELECT d.endpoint_id, d.next_attempt_at
            FROM webhook_deliveries d
            WHERE d.status = 'pending' AND d.endpoint_id > p.endpoint_id
            ORDER BY d.endpoint_id, d.next_attempt_at
            LIMIT 1
        ) next
    ), slow AS (
        SELECT w.id
        FROM pending p JOIN webhook_endpoints w ON w.id = p.endpoint_id
        WHERE p.next_attempt_at <= now() AND w.deleted_at IS NULL
        ORDER BY p.next_attempt_at
        LIMIT 1
        FOR NO KEY UPDATE OF w SKIP LOCKED
    ), batch AS (
        -- in the order of ix_webhook_deliveries_endpoint_due (the endpoint is one)
        SELECT d.id, d.event_id, d.endpoint_id, d.attempts, d.next_attempt_at
        FROM webhook_deliveries d
        WHERE d.endpoint_id = COALESCE((SELECT id FROM fast), (SELECT id FROM slow))
          AND d.status = 'pending' AND d.next_attempt_at <= now()
        ORDER BY d.endpoint_id, d.next_attempt_at
        LIMIT {limit}
        FOR NO KEY UPDATE OF d SKIP LOCKED
    )
    SELECT b.id, b.event_id, b.endpoint_id, b.attempts, w.merchant_id, w.url, w.secret,
           e.type, e.data, e.created_at AS event_created_at
    FROM batch b
    JOIN webhook_endpoints w ON w.id = b.endpoint_id
    JOIN webhook_events e ON e.id = b.event_id
    ORDER BY b.next_attempt_at, b.id
"""


@functools.cache
def claim_statement(limit: int) -> _Prepared:
    """The claim of up to `limit` deliveries."""
    return _Prepared("webhook_claim", (), _CLAIM.format(limit=int(limit)))


def claim_batch(session: Session, limit: int) -> list[Claimed]:
    """Up to `limit` due deliveries of one endpoint, locked until the transaction ends; []
    when none is due (or every due one is held)."""
    rows = _execute_prepared(session, claim_statement(max(limit, 1)), {}).all()
    return [
        Claimed(
            row.id,
            row.event_id,
            row.endpoint_id,
            row.merchant_id,
            row.url,
            row.secret,
            row.type,
            row.data,
            row.event_created_at,
            row.attempts,
        )
        for row in rows
    ]


def claim(session: Session) -> Claimed | None:
    """One due delivery (`claim_batch` of one)."""
    claimed = claim_batch(session, 1)
    return claimed[0] if claimed else None


def body(claimed: Claimed) -> bytes:
    """The JSON body: `{"type", "timestamp", "data"}`, the same bytes on every retry."""
    return json.dumps(
        {
            "type": claimed.type,
            "timestamp": claimed.event_created_at.isoformat().replace("+00:00", "Z"),
            "data": claimed.data,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


@dataclass(frozen=True)
class Outcome:
    """What one attempt met: an HTTP status (None when no answer came) and an error."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def label(self) -> str:
        """For metrics: `delivered`, `http_4xx`/`http_5xx`/..., `refused` or `error`."""
        if self.delivered:
            return "delivered"
        if self.status_code is not None:
            return f"http_{self.status_code // 100}xx"
        if self.error and self.error.startswith("refused"):
            return "refused"
        return "error"


# Every attempt of a batch in one statement: the attempts inserted, the deliveries updated
# (delivered, retried after their backoff, or failed when the retry window is over), and the
# endpoint marked failing (or no longer) by the last attempt that settled a delivery; the row is
# left alone when that changes nothing.
_RECORD = _Prepared(
    "webhook_record",
    (
        ("ids", "uuid[]"),
        ("status_codes", "int[]"),
        ("errors", "text[]"),
        ("durations", "int[]"),
        ("delivered", "boolean[]"),
        ("delays", "float8[]"),
    ),
    """
    WITH o AS (
        SELECT * FROM unnest($1, $2, $3, $4, $5, $6)
            WITH ORDINALITY AS o(id, status_code, error, duration_ms, delivered, delay_s, n)
    ), attempt AS (
        INSERT INTO webhook_attempts (id, delivery_id, attempted_at, status_code, error,
                                      duration_ms)
        SELECT gen_random_uuid(), o.id, now(), o.status_code, o.error, o.duration_ms FROM o
    ), d AS (
        UPDATE webhook_deliveries d SET
            attempts = d.attempts + 1,
            last_attempt_at = now(),
            last_status_code = o.status_code,
            last_error = o.error,
            status = CASE WHEN o.delivered THEN 'delivered'
                          WHEN now() >= d.give_up_at THEN 'failed'
                          ELSE 'pending' END,
            delivered_at = CASE WHEN o.delivered THEN now() END,
            next_attempt_at = CASE WHEN o.delivered THEN d.next_attempt_at
                                   ELSE now() + make_interval(secs => o.delay_s) END
        FROM o WHERE d.id = o.id
        RETURNING d.id, d.status, d.endpoint_id, o.n
    ), settled AS (
        SELECT DISTINCT ON (endpoint_id) endpoint_id, status FROM d
        WHERE status IN ('delivered', 'failed')
        ORDER BY endpoint_id, n DESC
    ), endpoint AS (
        UPDATE webhook_endpoints w SET failing_since = CASE
                WHEN settled.status = 'delivered' THEN NULL ELSE now() END
        FROM settled
        WHERE w.id = settled.endpoint_id
          AND (settled.status = 'delivered') = (w.failing_since IS NOT NULL)
    )
    SELECT id, status FROM d ORDER BY n
    """,
)


def record_attempts(session: Session, attempts: Sequence[tuple[Claimed, Outcome]]) -> list[str]:
    """Record attempts and what follows each: delivered, retried after `backoff`, or failed (the
    retry window is over: the endpoint is marked failing). Returns the deliveries' new statuses,
    in order."""
    if not attempts:
        return []
    rows = _execute_prepared(
        session,
        _RECORD,
        {
            "ids": [c.id for c, _ in attempts],
            "status_codes": [o.status_code for _, o in attempts],
            "errors": [(o.error or None) and o.error[:MAX_ERROR_LENGTH] for _, o in attempts],
            "durations": [o.duration_ms for _, o in attempts],
            "delivered": [o.delivered for _, o in attempts],
            "delays": [backoff(c.attempts + 1).total_seconds() for c, _ in attempts],
        },
    ).all()
    status = {row.id: str(row.status) for row in rows}
    return [status[c.id] for c, _ in attempts]


def record_attempt(session: Session, claimed: Claimed, outcome: Outcome) -> str:
    """`record_attempts` of one; returns the delivery's new status."""
    return record_attempts(session, [(claimed, outcome)])[0]


def list_deliveries(
    session: Session, merchant_id: uuid.UUID, endpoint_id: uuid.UUID, limit: int = 50
) -> list[dict[str, Any]]:
    """An endpoint's recent deliveries, newest first, each with its recent attempts."""
    owned = execute(
        session,
        text("SELECT 1 FROM webhook_endpoints WHERE id = :id AND merchant_id = :m"),
        {"id": endpoint_id, "m": merchant_id},
    ).first()
    if owned is None:
        raise NotFoundError("no such webhook")
    rows = execute(
        session,
        text(
            """
            SELECT d.id, d.event_id, e.type, d.status, d.attempts, d.created_at,
                   d.next_attempt_at, d.give_up_at, d.delivered_at, d.last_attempt_at,
                   d.last_status_code, d.last_error,
                   COALESCE((SELECT json_agg(json_build_object(
                                 'attempted_at', a.attempted_at, 'status_code', a.status_code,
                                 'error', a.error, 'duration_ms', a.duration_ms)
                             ORDER BY a.attempted_at DESC)
                             FROM (SELECT * FROM webhook_attempts a
                                   WHERE a.delivery_id = d.id
                                   ORDER BY a.attempted_at DESC LIMIT 10) a), '[]') AS tries
            FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
            WHERE d.endpoint_id = :id
            ORDER BY d.created_at DESC, d.id DESC
            LIMIT :limit
            """
        ),
        {"id": endpoint_id, "limit": limit},
    ).all()
    return [
        {
            "id": r.id,
            "webhook_id": str(r.event_id),
            "type": r.type,
            "status": r.status,
            "attempts": r.attempts,
            "created_at": r.created_at,
            "next_attempt_at": r.next_attempt_at if r.status == PENDING else None,
            "give_up_at": r.give_up_at,
            "delivered_at": r.delivered_at,
            "last_status_code": r.last_status_code,
            "last_error": r.last_error,
            "recent_attempts": [
                {**a, "attempted_at": datetime.fromisoformat(a["attempted_at"])} for a in r.tries
            ],
        }
        for r in rows
    ]


def replay_delivery(
    uow: UnitOfWork,
    actor: audit.Actor,
    merchant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
) -> None:
    """Send a delivery again (delivered or failed ones too), with the same webhook-id, now and
    then on a fresh retry window."""
    with uow:
        session = uow.session
        row = execute(
            session,
            text(
                """
                UPDATE webhook_deliveries d SET status = 'pending', next_attempt_at = now(),
                       give_up_at = now() + make_interval(secs => :window_s)
                FROM webhook_endpoints w
                WHERE d.id = :id AND d.endpoint_id = :endpoint_id AND w.id = d.endpoint_id
                  AND w.merchant_id = :m AND w.deleted_at IS NULL
                RETURNING d.id
                """
            ),
            {
                "id": delivery_id,
                "endpoint_id": endpoint_id,
                "m": merchant_id,
                "window_s": RETRY_WINDOW.total_seconds(),
            },
        ).one_or_none()
        if row is None:
            raise NotFoundError("no such delivery")
        audit.record(session, merchant_id, actor, "webhook_delivery.replay", delivery_id, {})
        uow.commit()


# ---- the workers' heartbeats and the queue, for /readyz and /metrics ---------------------------


def heartbeat(session: Session, worker_id: uuid.UUID, name: str) -> None:
    execute(
        session,
        text(
            "INSERT INTO webhook_workers (id, name, started_at, heartbeat_at)"
            " VALUES (:id, :name, now(), now())"
            " ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()"
        ),
        {"id": worker_id, "name": name},
    )


def stopped(session: Session, worker_id: uuid.UUID) -> None:
    execute(session, text("DELETE FROM webhook_workers WHERE id = :id"), {"id": worker_id})


@dataclass(frozen=True)
class QueueState:
    workers: int  # workers with a recent heartbeat
    pending: int
    due: int  # pending and due now
    oldest_due_s: float  # how long the oldest due delivery has waited
    failing_endpoints: int


def queue_state(session: Session) -> QueueState:
    row = execute(
        session,
        text(
            """
            SELECT (SELECT count(*) FROM webhook_workers
                    WHERE heartbeat_at > now() - make_interval(secs => :stale_s)) AS workers,
                   (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') AS pending,
                   d.due, COALESCE(EXTRACT(EPOCH FROM now() - d.oldest), 0) AS oldest_due_s,
                   (SELECT count(*) FROM webhook_endpoints
                    WHERE failing_since IS NOT NULL AND deleted_at IS NULL) AS failing
            FROM (SELECT count(*) AS due, min(next_attempt_at) AS oldest
                  FROM webhook_deliveries
                  WHERE status = 'pending' AND next_attempt_at <= now()) d
            """
        ),
        {"stale_s": WORKER_STALE_AFTER_S},
    ).one()
    return QueueState(
        int(row.workers),
        int(row.pending),
        int(row.due),
        float(row.oldest_due_s),
        int(row.failing),
    )
