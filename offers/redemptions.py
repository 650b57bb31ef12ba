"""Redemption at the till, exactly once, the till's check of a code, and the user's wallet.

A code is redeemed by one conditional UPDATE (the unlock still `active`), so of any number of
concurrent attempts exactly one wins. Every attempt, won or lost, is recorded with who tried it
and where: that is the raw material of leak detection. A till that checks a code before it
redeems it (`check`) records its attempt too, refused or not.

Two rules live here and nowhere else: whether an unlock is active, redeemed or expired
(`UNLOCK_STATUS_SQL`, read by the wallet, the till and the CLI's code history), and the order
in which a code is refused (`_refusal`, for redeeming and for checking alike).

A code is a promise made when it was issued, kept until it expires: it stays redeemable after
its offer is paused or ended (those stop new unlocks, not codes already given), within the
offer's `code_ttl_minutes`. A venue that has been deleted is no longer one of the offer's
venues: a till that names it is refused with `wrong_venue`. A till that names no venue is
trusted to be at one of the merchant's venues (docs/checkins.md, Redemption).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, TextClause, select, text
from sqlalchemy.orm import Session

from core import audit, webhooks
from core.errors import ConflictError, DomainError, NotFoundError, ValidationError
from core.models import Unlock
from core.uow import UnitOfWork, execute
from offers import codes


class RecordedError(DomainError):
    """A refusal whose attempt record was committed before it was raised."""


class CodeNotFoundError(RecordedError, NotFoundError):
    code = "not_found"


class WrongVenueError(RecordedError, ValidationError):
    code = "wrong_venue"
    title = "Wrong venue"


class AlreadyRedeemedError(RecordedError, ConflictError):
    code = "already_redeemed"
    title = "Already redeemed"


class ExpiredError(RecordedError):
    status = 410
    code = "expired"
    title = "Expired"


#: Whether an unlock is `active`, `redeemed` or `expired`, as SQL over an unlock aliased `u`.
#: The one place this is decided: the wallet, the till's lookup, the redemption's conditional
#: UPDATE and the CLI's code history all use it.
UNLOCK_STATUS_SQL = (
    "CASE WHEN u.redeemed_at IS NOT NULL THEN 'redeemed'"
    " WHEN u.expires_at <= now() THEN 'expired' ELSE 'active' END"
)
UNLOCK_STATUSES = ("active", "redeemed", "expired")

#: What `redemption_attempts.outcome` records: a redemption, a till's check that found the code
#: good (nothing redeemed), or a refusal. Refusals are listed in the contract's order: when
#: several apply, the first wins. `other_merchant` is told to the caller as an unknown code.
REDEEMED = "redeemed"
CHECKED = "checked"
REFUSALS = ("unknown", "other_merchant", "wrong_venue", "already_redeemed", "expired")


@dataclass(frozen=True)
class RedemptionResult:
    id: uuid.UUID
    unlock_id: uuid.UUID
    offer_id: uuid.UUID
    venue_id: uuid.UUID | None
    redeemed_at: datetime
    offer_title: str
    user_id: uuid.UUID
    offer_kind: str


# Everything the decision needs, in one round trip: the code's unlock (if any) and its status,
# its offer's title and kind, whether the till's venue is this merchant's and one of the offer's
# live venues (a deleted venue is one no more, though its offer still lists it), and where and
# when it was redeemed, if it was. The till's check adds the offer's venues.
_LOOKUP_SQL = """
    SELECT till.venue_id AS till_venue, u.id, u.offer_id, u.user_id, u.merchant_id,
           u.created_at, u.expires_at, u.redeemed_at, {status} AS status,
           o.title, o.rule->>'kind' AS kind,
           EXISTS (SELECT 1 FROM offer_venues ov JOIN venues v ON v.id = ov.venue_id
                   WHERE ov.offer_id = u.offer_id AND ov.venue_id = :venue_id
                     AND v.deleted_at IS NULL) AS at_venue,
           r.venue_id AS redeemed_venue_id, rv.name AS redeemed_venue_name,
           rk.label AS redeemed_by{extra}
    FROM (SELECT (SELECT id FROM venues WHERE id = :venue_id AND merchant_id = :merchant_id)
                 AS venue_id) till
    LEFT JOIN unlocks u ON u.code = :code
    LEFT JOIN offers o ON o.id = u.offer_id
    LEFT JOIN redemptions r ON r.unlock_id = u.id
    LEFT JOIN venues rv ON rv.id = r.venue_id
    LEFT JOIN api_keys rk ON rk.id = r.api_key_id
    """
_LOOKUP = text(_LOOKUP_SQL.format(status=UNLOCK_STATUS_SQL, extra=""))
_CHECK_LOOKUP = text(
    _LOOKUP_SQL.format(
        status=UNLOCK_STATUS_SQL,
        extra=""",
           (SELECT COALESCE(json_agg(json_build_object('id', v.id, 'name', v.name)
                                     ORDER BY v.name, v.id), '[]')
            FROM offer_venues ov JOIN venues v ON v.id = ov.venue_id
            WHERE ov.offer_id = u.offer_id AND v.deleted_at IS NULL) AS offer_venues""",
    )
)

# The redemption itself: the conditional UPDATE decides (of any number of concurrent attempts
# exactly one finds the unlock still active), and the redemption and its attempt are written by
# the same statement. When the UPDATE loses the race, only the attempt is written.
_REDEEM = text(
    f"""
    WITH won AS (
        UPDATE unlocks u SET redeemed_at = now()
        WHERE u.id = :unlock_id AND {UNLOCK_STATUS_SQL} = 'active'
        RETURNING u.id, u.offer_id, u.redeemed_at, u.venue_id, u.created_at, u.proof
    ), redemption AS (
        INSERT INTO redemptions (id, unlock_id, offer_id, merchant_id, venue_id, api_key_id,
                                 redeemed_at, unlock_venue_id, unlocked_at, proof)
        SELECT :id, won.id, won.offer_id, :merchant_id, :venue_id, :api_key_id, won.redeemed_at,
               won.venue_id, won.created_at, won.proof
        FROM won
        RETURNING redeemed_at
    ), attempt AS (
        INSERT INTO redemption_attempts (id, merchant_id, api_key_id, unlock_id, venue_id,
                                         code_hint, outcome)
        SELECT :attempt_id, :merchant_id, :api_key_id, :unlock_id, :venue_id, :code_hint,
               CASE WHEN EXISTS (SELECT 1 FROM won) THEN '{REDEEMED}' ELSE 'already_redeemed' END
    )
    SELECT (SELECT redeemed_at FROM redemption) AS redeemed_at,
           (SELECT redeemed_at FROM unlocks WHERE id = :unlock_id) AS earlier
    """
)

_ATTEMPT = text(
    """
    INSERT INTO redemption_attempts (id, merchant_id, api_key_id, unlock_id, venue_id,
                                     code_hint, outcome)
    VALUES (:id, :merchant_id, :api_key_id, :unlock_id, :venue_id, :code_hint, :outcome)
    """
)


def _lookup(
    session: Session,
    statement: TextClause,
    actor: audit.Actor,
    merchant_id: uuid.UUID,
    raw_code: str,
    venue_id: uuid.UUID | None,
) -> tuple[Row[Any], dict[str, Any]]:
    """The lookup's row, and the parameters of the attempt to record."""
    code = codes.normalize(raw_code)
    row = execute(
        session,
        statement,
        {
            "code": code,
            "venue_id": str(venue_id) if venue_id is not None else None,
            "merchant_id": str(merchant_id),
        },
    ).one()
    # The attempt records the till's venue only when it is one of this merchant's venues.
    params = {
        "merchant_id": str(merchant_id),
        "api_key_id": str(actor.key_id),
        "unlock_id": str(row.id) if row.id is not None else None,
        "venue_id": str(row.till_venue) if row.till_venue is not None else None,
        "code_hint": (code or "")[:4],
    }
    return row, params


def _refusal(row: Row[Any], merchant_id: uuid.UUID, venue_id: uuid.UUID | None) -> str | None:
    """Why this code cannot be redeemed at this till (the first of `REFUSALS` that applies), or
    None when it can."""
    if row.id is None:
        return "unknown"
    if row.merchant_id != merchant_id:
        return "other_merchant"
    if venue_id is not None and not row.at_venue:
        return "wrong_venue"
    if row.status == "redeemed":
        return "already_redeemed"
    if row.status == "expired":
        return "expired"
    return None


def redeem(
    uow: UnitOfWork,
    actor: audit.Actor,
    merchant_id: uuid.UUID,
    raw_code: str,
    venue_id: uuid.UUID | None,
) -> RedemptionResult:
    """Redeem a code for this merchant at the till of `actor` (an API key). Refusals, in the
    contract's order: unknown or another merchant's code (404), a venue not among the offer's
    (422), already redeemed (409, saying where and when), expired (410). The attempt is recorded
    and committed either way: a refusal commits its attempt, then raises.

    Two statements whatever the outcome: one lookup, then the redemption with its attempt (or
    the refused attempt alone); then a redemption's audit record and its webhook event
    (`redemption.created`, in the outbox: `core.webhooks.emit`)."""
    with uow:
        result = _redeem(uow, actor, merchant_id, raw_code, venue_id)
        audit.record(  # the code itself is never recorded
            uow.session,
            merchant_id,
            actor,
            "redemption.create",
            result.id,
            audit.diff(
                None,
                {
                    "unlock_id": result.unlock_id,
                    "offer_id": result.offer_id,
                    "venue_id": result.venue_id,
                },
            ),
        )
        webhooks.emit(  # delivered if, and only if, the redemption commits
            uow.session,
            merchant_id,
            [
                (
                    webhooks.REDEMPTION_CREATED,
                    {
                        "id": result.id,
                        "unlock_id": result.unlock_id,
                        "offer_id": result.offer_id,
                        "venue_id": result.venue_id,
                        "title": result.offer_title,
                        "redeemed_at": result.redeemed_at,
                    },
                )
            ],
        )
        uow.commit()
        return result


def _redeem(
    uow: UnitOfWork,
    actor: audit.Actor,
    merchant_id: uuid.UUID,
    raw_code: str,
    venue_id: uuid.UUID | None,
) -> RedemptionResult:
    session = uow.session
    row, params = _lookup(session, _LOOKUP, actor, merchant_id, raw_code, venue_id)
    refusal = _refusal(row, merchant_id, venue_id)
    if refusal is not None:
        execute(session, _ATTEMPT, {**params, "id": str(uuid.uuid4()), "outcome": refusal})
        uow.commit()  # the refused attempt is kept: it is what leak detection reads
        raise _refusal_error(refusal, row)
    redemption_id = uuid.uuid4()
    done = execute(
        session,
        _REDEEM,
        {
            **params,
            "id": str(redemption_id),
            "attempt_id": str(uuid.uuid4()),
        },
    ).one()
    if done.redeemed_at is None:  # another till redeemed it after the lookup
        # Read again if that till committed while this statement waited on the row.
        earlier = done.earlier or session.scalar(
            select(Unlock.redeemed_at).where(Unlock.id == row.id)
        )
        uow.commit()  # the attempt, recorded as `already_redeemed` by the statement
        raise _already(earlier, None)
    return RedemptionResult(
        redemption_id,
        row.id,
        row.offer_id,
        venue_id,
        done.redeemed_at,
        row.title or "",
        row.user_id,
        row.kind,
    )


def _refusal_error(refusal: str, row: Row[Any]) -> RecordedError:
    if refusal in ("unknown", "other_merchant"):
        return CodeNotFoundError("no such code")
    if refusal == "wrong_venue":
        return WrongVenueError(
            "this code is for an offer that is not valid at this venue",
            errors={"venue_id": ["not one of the offer's venues"]},
        )
    if refusal == "already_redeemed":
        return _already(row.redeemed_at, row.redeemed_venue_name)
    return ExpiredError(f"this code expired at {row.expires_at.isoformat()}")


def _already(redeemed_at: datetime | None, venue_name: str | None) -> AlreadyRedeemedError:
    at = f" at {redeemed_at.isoformat()}" if redeemed_at is not None else ""
    where = f" at {venue_name}" if venue_name else ""
    return AlreadyRedeemedError(f"this code was already redeemed{at}{where}")


# ---- the till's check ------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeCheck:
    """What a code is at a till. `outcome` is `valid` or the refusal a redemption would meet
    now (`unknown`, `wrong_venue`, `already_redeemed`, `expired`); the offer, its venues and the
    unlock's times are told for this merchant's codes only, and where and when it was redeemed
    for a redeemed one."""

    outcome: str
    code: str | None  # canonical; None for an unknown code (nothing is echoed about it)
    unlock_id: uuid.UUID | None = None
    offer_id: uuid.UUID | None = None
    title: str | None = None
    venues: list[dict[str, Any]] = field(default_factory=list)
    unlocked_at: datetime | None = None
    expires_at: datetime | None = None
    redeemed_at: datetime | None = None
    redeemed_venue_id: uuid.UUID | None = None
    redeemed_venue_name: str | None = None
    redeemed_by: str | None = None


def check(
    uow: UnitOfWork,
    actor: audit.Actor,
    merchant_id: uuid.UUID,
    raw_code: str,
    venue_id: uuid.UUID | None,
) -> CodeCheck:
    """Whether a code could be redeemed at this till now, and for what, without redeeming it.
    The attempt is recorded like a redemption's (outcome `checked` when the code is good, else
    the refusal), so codes refused at a till that only checks them reach the leak report too.

    Two statements: the lookup (with the offer's venues), then the attempt."""
    with uow:
        row, params = _lookup(uow.session, _CHECK_LOOKUP, actor, merchant_id, raw_code, venue_id)
        refusal = _refusal(row, merchant_id, venue_id)
        execute(
            uow.session,
            _ATTEMPT,
            {**params, "id": str(uuid.uuid4()), "outcome": refusal or CHECKED},
        )
        uow.commit()
    if refusal in ("unknown", "other_merchant"):  # nothing about another merchant's code
        return CodeCheck("unknown", None)
    return CodeCheck(
        refusal or "valid",
        codes.normalize(raw_code),
        row.id,
        row.offer_id,
        row.title,
        [{"id": uuid.UUID(v["id"]), "name": v["name"]} for v in row.offer_venues],
        row.created_at,
        row.expires_at,
        row.redeemed_at,
        row.redeemed_venue_id,
        row.redeemed_venue_name,
        row.redeemed_by,
    )


@dataclass(frozen=True)
class WalletEntry:
    id: uuid.UUID
    offer_id: uuid.UUID
    venue_id: uuid.UUID
    title: str
    code: str
    status: str
    created_at: datetime
    expires_at: datetime
    redeemed_at: datetime | None


_WALLET = text(
    f"""
    SELECT * FROM (
        SELECT u.id, u.offer_id, u.venue_id, o.title, u.code, u.created_at, u.expires_at,
               u.redeemed_at, {UNLOCK_STATUS_SQL} AS status
        FROM unlocks u JOIN offers o ON o.id = u.offer_id
        WHERE u.user_id = :user_id
    ) w
    WHERE CAST(:status AS text) IS NULL OR w.status = :status
    ORDER BY w.created_at DESC, w.id
    LIMIT :limit
    """
)


def wallet(
    session: Session, user_id: uuid.UUID, status: str | None = None, limit: int = 200
) -> list[WalletEntry]:
    """The user's unlocks, newest first, each `active`, `redeemed` or `expired`."""
    rows = execute(
        session, _WALLET, {"user_id": str(user_id), "status": status, "limit": limit}
    ).all()
    return [
        WalletEntry(
            uuid.UUID(str(r.id)),
            uuid.UUID(str(r.offer_id)),
            uuid.UUID(str(r.venue_id)),
            r.title,
            r.code,
            r.status,
            r.created_at,
            r.expires_at,
            r.redeemed_at,
        )
        for r in rows
    ]


# ---- the till's day --------------------------------------------------------------------------

#: The till's lists show at most this many of each; the totals count them all.
TILL_DAY_LIMIT = 200
# The local dates a till's day can be asked for: the day's bounds must be times in every zone
# (year 1 shifted by a zone's offset is no time Python can hold: it answered 500).
TILL_DAY_FIRST = date(2000, 1, 1)
TILL_DAY_LAST = date(9998, 12, 31)

# The venue's local day as an interval of instants (a DST day is 23 or 25 hours long).
_TILL_DAY = text(
    """
    SELECT id, name, timezone, day,
           CAST(day AS timestamp) AT TIME ZONE timezone AS lo,
           CAST(day + 1 AS timestamp) AT TIME ZONE timezone AS hi
    FROM (SELECT id, name, timezone,
                 COALESCE(CAST(:day AS date), CAST(now() AT TIME ZONE timezone AS date)) AS day
          FROM venues
          WHERE id = :venue_id AND merchant_id = :merchant_id AND deleted_at IS NULL) v
    """
)
_TILL_REDEMPTIONS = text(
    """
    SELECT r.id, r.redeemed_at, r.offer_id, o.title, u.code, k.label AS till,
           count(*) OVER () AS total
    FROM redemptions r
    JOIN unlocks u ON u.id = r.unlock_id
    JOIN offers o ON o.id = r.offer_id
    LEFT JOIN api_keys k ON k.id = r.api_key_id
    WHERE r.merchant_id = :merchant_id AND r.venue_id = :venue_id
      AND r.redeemed_at >= :lo AND r.redeemed_at < :hi
    ORDER BY r.redeemed_at DESC, r.id
    LIMIT :limit
    """
)
_TILL_CHECKINS = text(
    """
    SELECT c.id, c.created_at, c.status, c.reason_codes,
           ARRAY(SELECT o.title FROM unlocks u JOIN offers o ON o.id = u.offer_id
                 WHERE u.checkin_id = c.id ORDER BY o.title) AS unlocked,
           count(*) OVER () AS total
    FROM checkins c
    WHERE c.venue_id = :venue_id AND c.created_at >= :lo AND c.created_at < :hi
    ORDER BY c.created_at DESC, c.id
    LIMIT :limit
    """
)


def till_day(
    session: Session, merchant_id: uuid.UUID, venue_id: uuid.UUID, day: date | None = None
) -> dict[str, Any]:
    """What happened at a venue's till on one local day (today by default): the redemptions
    there and the check-ins there, newest first, for the till's list that survives a reload.
    Check-ins say what they unlocked or why they were rejected, never who made them."""
    if day is not None and not TILL_DAY_FIRST <= day <= TILL_DAY_LAST:
        raise ValidationError(
            f"date must be from {TILL_DAY_FIRST} to {TILL_DAY_LAST}",
            errors={"date": [f"must be from {TILL_DAY_FIRST} to {TILL_DAY_LAST}"]},
        )
    venue = execute(
        session,
        _TILL_DAY,
        {"venue_id": str(venue_id), "merchant_id": str(merchant_id), "day": day},
    ).one_or_none()
    if venue is None:
        raise NotFoundError("no such venue")
    bounds = {
        "venue_id": str(venue_id),
        "merchant_id": str(merchant_id),
        "lo": venue.lo,
        "hi": venue.hi,
        "limit": TILL_DAY_LIMIT,
    }
    redeemed = execute(session, _TILL_REDEMPTIONS, bounds).all()
    checkins = execute(session, _TILL_CHECKINS, bounds).all()
    return {
        "venue_id": venue.id,
        "venue_name": venue.name,
        "timezone": venue.timezone,
        "date": venue.day,
        "redemptions": [
            {
                "id": r.id,
                "redeemed_at": r.redeemed_at,
                "offer_id": r.offer_id,
                "title": r.title,
                "code": codes.format_code(r.code),
                "till": r.till,
            }
            for r in redeemed
        ],
        "redemptions_total": redeemed[0].total if redeemed else 0,
        "checkins": [
            {
                "id": c.id,
                "created_at": c.created_at,
                "status": c.status,
                "reasons": list(c.reason_codes),
                "unlocked": list(c.unlocked),
            }
            for c in checkins
        ],
        "checkins_total": checkins[0].total if checkins else 0,
    }
