"""Privacy: what a person can take away (export), what leaving erases (erasure), and how long a
precise fix is kept (retention). docs/privacy.md lists every personal field and what each of
these does to it.

- `export_user` yields one JSON document of everything kept about a user, section by section,
  from one read-only snapshot read through server-side cursors: a heavy user's history is never
  in memory at once.
- `erase_user` is the use case behind `DELETE /v1/me`, in one transaction: the user's advisory
  lock (the check-in's own, so a check-in in flight finishes first or sees the erasure), then
  the tokens, member codes and idempotency records go, the fixes are coarsened and the device
  ids replaced by a one-way pseudonym, the cards lose their UID and label, the staff
  registrations of the handle let go of the account, the handle and password hash are nulled,
  and an `account_erasures` row records how many rows of each kind (never the data). The rows
  merchants count (check-ins, unlocks, holdouts, redemptions, impressions, taps) stay with the
  account's id, which now names nobody. Erasing again changes nothing.
- `apply_retention` is the scheduled job (`api/jobs.py` starts it with the service; `flask
  retention` runs it once): check-ins older than `RETENTION_DAYS` are coarsened in small
  batches, each its own short transaction (`FOR UPDATE SKIP LOCKED`, oldest first, through the
  partial index of precise check-ins), then expired idempotency records and rate-limit
  counters are pruned.

A coarsened check-in keeps its venue, times, verdict, reasons, proof and strikes, and the fix's
distance from the venue (`venue_distance_m`): every analytics figure reads those. Its location
becomes the venue's location, and its device id goes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from core import audit
from core.errors import UnauthorizedError
from core.throttle import KNOWN_SOURCE_DAYS
from core.uow import UnitOfWork, execute

# How long a check-in keeps its precise fix and device id (verification, travel checks,
# disputes); `RETENTION_DAYS` overrides it. The staff-device check (offers.abuse) looks back
# 30 days at device ids: a shorter period makes it see less.
RETENTION_DAYS = 30
# Idempotency keys are kept at least this long (the contract's 24 hours), then pruned.
IDEMPOTENCY_KEEP = timedelta(hours=24)
# Check-ins coarsened per transaction by the retention job: short transactions, few row locks.
RETENTION_BATCH = 5000
# The job's interval when the service runs it (`RETENTION_INTERVAL_MINUTES` overrides it).
RETENTION_INTERVAL_MINUTES = 60
# The analyst views show a point as its cell of this many degrees (about 1.1 km north-south,
# 0.55 km east-west at 60 degrees north): migration 0009 holds the same number.
CELL_DEGREES = 0.01
# Rows per fetch of the export's server-side cursors.
EXPORT_FETCH = 500
# The export's sections, in order (the contract names `account`, `checkins`, `unlocks`,
# `redemptions`, `feedback`, `cards`).
EXPORT_SECTIONS = (
    "account",
    "tokens",
    "devices",
    "checkins",
    "unlocks",
    "redemptions",
    "holdouts",
    "impressions",
    "taps",
    "cards",
    "feedback",
)

# A device id's pseudonym: the same for the same id, so that the leak report's count of shared
# devices stays the same when one of a device's users is erased, and not the id itself.
# `device_key(x)` in SQL is the pseudonym of x, or x when it is one already.
PSEUDONYM_PREFIX = "erased:"
DEVICE_KEY_SQL = (
    "CASE WHEN {col} LIKE 'erased:%' THEN {col}"
    " ELSE 'erased:' || encode(sha256(convert_to('checkin-offers device ' || {col}, 'UTF8')),"
    " 'hex') END"
)


def device_key(column: str) -> str:
    """SQL for the pseudonym of the device id in `column` (see `DEVICE_KEY_SQL`)."""
    return DEVICE_KEY_SQL.format(col=column)


# ---- export ---------------------------------------------------------------------------------

_ACCOUNT = text("SELECT id, handle, created_at, erased_at FROM users WHERE id = :u")
_TOKENS = text(
    "SELECT id, created_at, expires_at, revoked_at FROM user_tokens WHERE user_id = :u"
    " ORDER BY created_at, id"
)
_DEVICES = text(
    "SELECT device_id, min(created_at) AS first_seen, max(created_at) AS last_seen,"
    " count(*) AS checkins FROM checkins WHERE user_id = :u AND device_id IS NOT NULL"
    " GROUP BY device_id ORDER BY min(created_at)"
)
_CHECKINS = text(
    """
    SELECT c.id, c.venue_id, v.name AS venue_name, c.status, c.reasons, c.proof, c.strikes,
           c.staff_exclusion, c.created_at, c.observed_at,
           ST_Y(c.location::geometry) AS lat, ST_X(c.location::geometry) AS lon,
           c.accuracy_m, c.mock_location, c.presence_code_sent, c.device_id,
           c.coarsened_at, c.venue_distance_m
    FROM checkins c JOIN venues v ON v.id = c.venue_id
    WHERE c.user_id = :u
    ORDER BY c.created_at, c.id
    """
)
_UNLOCKS = text(
    """
    SELECT u.id, u.offer_id, o.title, u.venue_id, u.checkin_id, u.code, u.created_at,
           u.expires_at, u.redeemed_at
    FROM unlocks u JOIN offers o ON o.id = u.offer_id
    WHERE u.user_id = :u ORDER BY u.created_at, u.id
    """
)
_REDEMPTIONS = text(
    """
    SELECT r.id, r.unlock_id, r.offer_id, r.venue_id, r.redeemed_at
    FROM redemptions r JOIN unlocks u ON u.id = r.unlock_id
    WHERE u.user_id = :u ORDER BY r.redeemed_at, r.id
    """
)
_HOLDOUTS = text(
    "SELECT checkin_id, offer_id, created_at FROM holdouts WHERE user_id = :u"
    " ORDER BY created_at, checkin_id"
)
_IMPRESSIONS = text(
    "SELECT offer_id, venue_id, day, created_at FROM impressions WHERE user_id = :u"
    " ORDER BY created_at, id"
)
_TAPS = text(
    "SELECT id, venue_id, card_id, outcome, reason, created_at, used_at FROM nfc_taps"
    " WHERE user_id = :u ORDER BY created_at, id"
)
_FEEDBACK = text(
    """
    SELECT f.id, f.checkin_id, f.venue_id, f.rating, f.comment, f.created_at,
           COALESCE((SELECT json_agg(json_build_object('body', r.body, 'created_at', r.created_at)
                                     ORDER BY r.created_at, r.id)
                     FROM feedback_replies r WHERE r.feedback_id = f.id), '[]'::json) AS replies
    FROM feedback f WHERE f.user_id = :u ORDER BY f.created_at, f.id
    """
)
_CARDS = text(
    "SELECT id, encode(uid, 'hex') AS uid, label, created_at, last_read_at, deleted_at"
    " FROM user_cards WHERE user_id = :u ORDER BY created_at, id"
)


def _checkin(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "venue_id": row.venue_id,
        "venue_name": row.venue_name,
        "status": row.status,
        "reasons": row.reasons,
        "proof": row.proof,
        "strikes": row.strikes,
        "staff_exclusion": row.staff_exclusion,
        "created_at": row.created_at,
        "fix": {
            "lat": row.lat,
            "lon": row.lon,
            "accuracy_m": row.accuracy_m,
            "observed_at": row.observed_at,
            "mock_location": row.mock_location,
            "presence_code_sent": row.presence_code_sent,
            "device_id": row.device_id,
            # After the retention period (or an erasure) lat and lon are the venue's location:
            # only the fix's distance from it is left.
            "coarsened_at": row.coarsened_at,
            "venue_distance_m": row.venue_distance_m,
        },
    }


def _plain(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


_SECTIONS: dict[str, tuple[Any, Callable[[Any], dict[str, Any]]]] = {
    "tokens": (_TOKENS, _plain),
    "devices": (_DEVICES, _plain),
    "checkins": (_CHECKINS, _checkin),
    "unlocks": (_UNLOCKS, _plain),
    "redemptions": (_REDEMPTIONS, _plain),
    "holdouts": (_HOLDOUTS, _plain),
    "impressions": (_IMPRESSIONS, _plain),
    "taps": (_TAPS, _plain),
    "cards": (_CARDS, _plain),
    "feedback": (_FEEDBACK, _plain),
}


def _json(value: Any) -> str:
    return json.dumps(audit.jsonable(value), ensure_ascii=False, separators=(",", ":"))


def export_user(conn: Connection, user_id: uuid.UUID, now: datetime) -> Generator[str, None, None]:
    """Everything kept about a user as one JSON object, in pieces of text to send as they come.

    On a connection of its own, at the start of its transaction, the transaction is made
    REPEATABLE READ and read-only, so that every section is the same moment; inside a caller's
    transaction (a savepoint) it reads in the caller's. Each section is read through a
    server-side cursor, `EXPORT_FETCH` rows at a time."""
    if not conn.in_nested_transaction():
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
    account = conn.execute(_ACCOUNT, {"u": user_id}).one_or_none()
    if account is None or account.erased_at is not None:
        raise UnauthorizedError("no such account")
    yield '{"exported_at":' + _json(now)
    yield ',"account":' + _json(_plain(account))
    for name in EXPORT_SECTIONS[1:]:
        yield f',"{name}":['
        if name in _SECTIONS:
            statement, shape = _SECTIONS[name]
            yield from _rows(conn, statement, user_id, shape)
        yield "]"
    yield "}\n"


def _rows(
    conn: Connection, statement: Any, user_id: uuid.UUID, shape: Callable[[Any], dict[str, Any]]
) -> Iterator[str]:
    # Per statement: a connection's own execution options would stay with it (and the pool).
    result = conn.execute(
        statement,
        {"u": user_id},
        execution_options={"stream_results": True, "max_row_buffer": EXPORT_FETCH},
    )
    first = True
    for partition in result.partitions(EXPORT_FETCH):
        chunk = ",".join(_json(shape(row)) for row in partition)
        yield chunk if first else "," + chunk
        first = False


# ---- erasure --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Erasure:
    """What an erasure did: `erased` is False when the account was erased already."""

    user_id: uuid.UUID
    erased: bool
    counts: dict[str, int] = field(default_factory=dict)


_USER_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")
_LOCK_USER = text("SELECT erased_at FROM users WHERE id = :u FOR UPDATE")
# Each statement answers how many rows it touched: the erasure's record keeps the numbers.
_ERASE_STEPS: tuple[tuple[str, Any], ...] = (
    ("tokens", text("DELETE FROM user_tokens WHERE user_id = :u")),
    ("member_codes", text("DELETE FROM member_codes WHERE user_id = :u")),
    ("idempotency_records", text("DELETE FROM idempotency_records WHERE principal = :principal")),
    (
        "checkins",
        text(
            f"""
            UPDATE checkins c
            SET venue_distance_m = CASE WHEN c.coarsened_at IS NULL
                                        THEN ST_Distance(c.location, v.location)
                                        ELSE c.venue_distance_m END,
                location = v.location,
                device_id = CASE WHEN c.device_id IS NULL THEN NULL
                                 ELSE {device_key("c.device_id")} END,
                coarsened_at = COALESCE(c.coarsened_at, now())
            FROM venues v
            WHERE c.user_id = :u AND v.id = c.venue_id
            """
        ),
    ),
    (
        "cards",
        text(
            "UPDATE user_cards SET uid = '\\x00000000000000'::bytea, label = NULL,"
            " deleted_at = COALESCE(deleted_at, now()) WHERE user_id = :u"
        ),
    ),
    # The comments are the person's words; the ratings stay counted (responsiveness, health).
    ("feedback", text("UPDATE feedback SET comment = NULL WHERE user_id = :u")),
    (
        # Wrong presence codes stay counted (the leak report's guessing figures), detached from
        # the device like the check-ins.
        "presence_code_attempts",
        text(
            f"""
            UPDATE presence_code_attempts a SET device_id = {device_key("a.device_id")}
            WHERE a.user_id = :u AND a.device_id IS NOT NULL
            """
        ),
    ),
    (
        # The sign-in throttle's rows name the handle and the addresses it signed in from.
        "sign_in_attempts",
        text(
            "DELETE FROM sign_in_attempts"
            " WHERE handle = (SELECT lower(handle) FROM users WHERE id = :u)"
        ),
    ),
    (
        "staff_registrations",
        text("UPDATE merchant_staff_users SET user_id = NULL WHERE user_id = :u"),
    ),
    (
        "account",
        text(
            "UPDATE users SET handle = NULL, password_hash = NULL, erased_at = now() WHERE id = :u"
        ),
    ),
)
_RECORD = text(
    """
    INSERT INTO account_erasures (id, user_id, erased_at, actor, request_id, counts)
    VALUES (:id, :u, now(), :actor, :request_id, CAST(:counts AS jsonb))
    """
)


def erase_user(
    uow: UnitOfWork, user_id: uuid.UUID, actor: str, request_id: str | None = None
) -> Erasure:
    """Erase a person, keep what merchants count (module docstring): one transaction, so a
    crash half way leaves the account as it was, to be erased again. `actor` is `user` (the
    person, `DELETE /v1/me`) or `operator:<name>` (`flask erase-user`)."""
    with uow:
        session: Session = uow.session
        execute(session, _USER_LOCK, {"k": f"user:{user_id}"})
        row = execute(session, _LOCK_USER, {"u": user_id}).one_or_none()
        if row is None:
            raise UnauthorizedError("no such account")
        if row.erased_at is not None:
            return Erasure(user_id, False)
        counts: dict[str, int] = {}
        params = {"u": user_id, "principal": f"user:{user_id}"}
        for name, statement in _ERASE_STEPS:
            counts[name] = execute(session, statement, params).rowcount
        execute(
            session,
            _RECORD,
            {
                "id": uuid.uuid4(),
                "u": user_id,
                "actor": actor,
                "request_id": request_id,
                "counts": json.dumps(counts),
            },
        )
        uow.commit()
        return Erasure(user_id, True, counts)


# ---- retention ------------------------------------------------------------------------------


@dataclass
class RetentionReport:
    """What one run of the retention job did, and how long it took."""

    coarsened: int = 0
    batches: int = 0
    idempotency_records: int = 0
    rate_limit_counters: int = 0
    attempts: int = 0  # wrong presence codes that lost their device id, sign-in rows deleted
    dashboard_sessions: int = 0  # expired dashboard sign-ins deleted
    user_tokens: int = 0  # expired or revoked app tokens deleted
    seconds: float = 0.0
    ran: bool = True  # False when another process held the job's lock

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# Only one process runs the job at a time (a session-level advisory lock, given up at the end).
JOB_LOCK_KEY = "checkin-offers:retention"
_TRY_LOCK = text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))")

_COARSEN_BATCH = text(
    """
    WITH batch AS (
        SELECT c.id FROM checkins c
        WHERE c.coarsened_at IS NULL AND c.created_at < :cutoff
        ORDER BY c.created_at
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    )
    UPDATE checkins c
    SET venue_distance_m = ST_Distance(c.location, v.location),
        location = v.location,
        device_id = NULL,
        coarsened_at = now()
    FROM batch, venues v
    WHERE c.id = batch.id AND v.id = c.venue_id
    """
)
_PRUNE_IDEMPOTENCY = text(
    "DELETE FROM idempotency_records WHERE ctid = ANY (ARRAY("
    " SELECT ctid FROM idempotency_records WHERE created_at < now() - :keep"
    " LIMIT :batch))"
)
# The guess limits' rows (migration 0010): a wrong presence code older than the retention period
# keeps its count and venue, not its device; a sign-in attempt is kept as long as it can make
# its address known to the handle (core/throttle.py).
_DROP_ATTEMPT_DEVICES = text(
    "UPDATE presence_code_attempts SET device_id = NULL WHERE id = ANY (ARRAY("
    " SELECT id FROM presence_code_attempts WHERE device_id IS NOT NULL"
    " AND created_at < :cutoff LIMIT :batch))"
)
_PRUNE_SIGN_INS = text(
    "DELETE FROM sign_in_attempts WHERE id = ANY (ARRAY("
    " SELECT id FROM sign_in_attempts"
    " WHERE created_at < :known_cutoff LIMIT :batch))"
)
_PRUNE_DASHBOARD_SESSIONS = text(
    "DELETE FROM dashboard_sessions WHERE id = ANY (ARRAY("
    " SELECT id FROM dashboard_sessions WHERE expires_at < :now LIMIT :batch))"
)
# A token past its expiry or revoked can never authenticate again: its row is only a record that
# a phone once signed in, which the person's export need not carry for ever.
_PRUNE_USER_TOKENS = text(
    "DELETE FROM user_tokens WHERE id = ANY (ARRAY("
    " SELECT id FROM user_tokens WHERE expires_at < :now OR revoked_at < :now LIMIT :batch))"
)
_PRUNE_RATE_LIMITS = text(
    "DELETE FROM rate_limit_counters WHERE ctid = ANY (ARRAY("
    " SELECT ctid FROM rate_limit_counters WHERE expires_at < now() LIMIT :batch))"
)


def apply_retention(
    engine: Engine,
    *,
    retention_days: int = RETENTION_DAYS,
    batch: int = RETENTION_BATCH,
    now: datetime | None = None,
    pause_s: float = 0.0,
) -> RetentionReport:
    """Coarsen the check-ins older than `retention_days` (before `now`, the database clock when
    None) and prune expired idempotency records and rate-limit counters, in batches of `batch`
    rows, each its own transaction; `pause_s` between batches leaves the database to the
    service. Idempotent: what is done is not done again. Skips the run (`ran` False) while
    another process runs it."""
    report = RetentionReport()
    started = time.monotonic()
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        if not conn.execute(_TRY_LOCK, {"k": JOB_LOCK_KEY}).scalar_one():
            report.ran = False
            return report
        try:
            if now is None:
                now = conn.execute(text("SELECT now()")).scalar_one()
            assert now is not None
            cutoff = now - timedelta(days=retention_days)
            report.coarsened, report.batches = _in_batches(
                conn, _COARSEN_BATCH, {"cutoff": cutoff, "batch": batch}, batch, pause_s
            )
            report.idempotency_records, _ = _in_batches(
                conn, _PRUNE_IDEMPOTENCY, {"keep": IDEMPOTENCY_KEEP, "batch": batch}, batch, 0
            )
            report.rate_limit_counters, _ = _in_batches(
                conn, _PRUNE_RATE_LIMITS, {"batch": batch}, batch, 0
            )
            devices, _ = _in_batches(
                conn, _DROP_ATTEMPT_DEVICES, {"cutoff": cutoff, "batch": batch}, batch, 0
            )
            sign_ins, _ = _in_batches(
                conn,
                _PRUNE_SIGN_INS,
                {"known_cutoff": now - timedelta(days=KNOWN_SOURCE_DAYS), "batch": batch},
                batch,
                0,
            )
            report.attempts = devices + sign_ins
            report.dashboard_sessions, _ = _in_batches(
                conn, _PRUNE_DASHBOARD_SESSIONS, {"now": now, "batch": batch}, batch, 0
            )
            report.user_tokens, _ = _in_batches(
                conn, _PRUNE_USER_TOKENS, {"now": now, "batch": batch}, batch, 0
            )
        finally:
            conn.execute(_UNLOCK, {"k": JOB_LOCK_KEY})
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _in_batches(
    conn: Connection, statement: Any, params: dict[str, Any], batch: int, pause_s: float
) -> tuple[int, int]:
    """Run `statement` (one batch, in autocommit: its own transaction) until it touches fewer
    than `batch` rows: the rows touched in all, and the number of batches."""
    total = batches = 0
    while True:
        touched = conn.execute(statement, params).rowcount
        total += touched
        batches += 1
        if touched < batch:
            return total, batches
        if pause_s:
            time.sleep(pause_s)
