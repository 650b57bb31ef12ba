"""Redemption at the till, exactly once, and the user's wallet.

A code is redeemed by one conditional UPDATE (`redeemed_at IS NULL AND expires_at > now()`), so
of any number of concurrent attempts exactly one wins. Every attempt, won or lost, is recorded
with who tried it and where: that is the raw material of leak detection.

A code is a promise made when it was issued, kept until it expires: it stays redeemable after
its offer is paused or ended (those stop new unlocks, not codes already given), within the
offer's `code_ttl_minutes`. A venue that has been deleted is no longer one of the offer's
venues: a till that names it is refused with `wrong_venue`. A till that names no venue is
trusted to be at one of the merchant's venues (docs/checkins.md, Redemption).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core import audit
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


# Everything the decision needs, in one round trip: the code's unlock (if any), its offer's
# title and kind, whether the till's venue is this merchant's and one of the offer's live
# venues (a deleted venue is one no more, though its offer still lists it).
_LOOKUP = text(
    """
    SELECT till.venue_id AS till_venue, u.id, u.offer_id, u.user_id, u.merchant_id,
           u.expires_at, u.redeemed_at, u.expires_at <= now() AS expired,
           o.title, o.rule->>'kind' AS kind,
           EXISTS (SELECT 1 FROM offer_venues ov JOIN venues v ON v.id = ov.venue_id
                   WHERE ov.offer_id = u.offer_id AND ov.venue_id = :venue_id
                     AND v.deleted_at IS NULL) AS at_venue
    FROM (SELECT (SELECT id FROM venues WHERE id = :venue_id AND merchant_id = :merchant_id)
                 AS venue_id) till
    LEFT JOIN unlocks u ON u.code = :code
    LEFT JOIN offers o ON o.id = u.offer_id
    """
)

# The redemption itself: the conditional UPDATE decides (of any number of concurrent attempts
# exactly one passes `redeemed_at IS NULL`), and the redemption and its attempt are written by
# the same statement. When the UPDATE loses the race, only the attempt is written.
_REDEEM = text(
    """
    WITH won AS (
        UPDATE unlocks SET redeemed_at = now()
        WHERE id = :unlock_id AND redeemed_at IS NULL AND expires_at > now()
        RETURNING id, offer_id, redeemed_at
    ), redemption AS (
        INSERT INTO redemptions (id, unlock_id, offer_id, merchant_id, venue_id, api_key_id,
                                 redeemed_at)
        SELECT :id, won.id, won.offer_id, :merchant_id, :venue_id, :api_key_id, won.redeemed_at
        FROM won
        RETURNING redeemed_at
    ), attempt AS (
        INSERT INTO redemption_attempts (id, merchant_id, api_key_id, unlock_id, venue_id,
                                         code_hint, outcome)
        SELECT :attempt_id, :merchant_id, :api_key_id, :unlock_id, :venue_id, :code_hint,
               CASE WHEN EXISTS (SELECT 1 FROM won) THEN 'redeemed' ELSE 'already_redeemed' END
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


def redeem(
    uow: UnitOfWork,
    actor: audit.Actor,
    merchant_id: uuid.UUID,
    raw_code: str,
    venue_id: uuid.UUID | None,
) -> RedemptionResult:
    """Redeem a code for this merchant at the till of `actor` (an API key). Refusals, in the
    contract's order: unknown or another merchant's code (404), a venue not among the offer's
    (422), already redeemed (409), expired (410). The attempt is recorded and committed either
    way: a refusal commits its attempt, then raises.

    Two statements whatever the outcome: one lookup, then the redemption with its attempt (or
    the refused attempt alone), and the audit record of a redemption."""
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
    api_key_id = actor.key_id
    code = codes.normalize(raw_code)
    row = execute(
        session,
        _LOOKUP,
        {
            "code": code,
            "venue_id": str(venue_id) if venue_id is not None else None,
            "merchant_id": str(merchant_id),
        },
    ).one()
    # The attempt records the till's venue only when it is one of this merchant's venues.
    params = {
        "merchant_id": str(merchant_id),
        "api_key_id": str(api_key_id),
        "unlock_id": str(row.id) if row.id is not None else None,
        "venue_id": str(row.till_venue) if row.till_venue is not None else None,
        "code_hint": (code or "")[:4],
    }

    def refuse(outcome: str, error: RecordedError) -> RecordedError:
        execute(session, _ATTEMPT, {**params, "id": str(uuid.uuid4()), "outcome": outcome})
        uow.commit()  # the refused attempt is kept: it is what leak detection reads
        return error

    if row.id is None:
        raise refuse("unknown", CodeNotFoundError("no such code"))
    if row.merchant_id != merchant_id:
        raise refuse("other_merchant", CodeNotFoundError("no such code"))
    if venue_id is not None and not row.at_venue:
        raise refuse(
            "wrong_venue",
            WrongVenueError(
                "this code is for an offer that is not valid at this venue",
                errors={"venue_id": ["not one of the offer's venues"]},
            ),
        )
    if row.redeemed_at is not None:
        raise refuse("already_redeemed", _already(row.redeemed_at))
    if row.expired:
        raise refuse("expired", ExpiredError(f"this code expired at {row.expires_at.isoformat()}"))
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
        raise _already(earlier)
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


def _already(redeemed_at: datetime | None) -> AlreadyRedeemedError:
    at = f" at {redeemed_at.isoformat()}" if redeemed_at is not None else ""
    return AlreadyRedeemedError(f"this code was already redeemed{at}")


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
    """
    SELECT * FROM (
        SELECT u.id, u.offer_id, u.venue_id, o.title, u.code, u.created_at, u.expires_at,
               u.redeemed_at,
               CASE WHEN u.redeemed_at IS NOT NULL THEN 'redeemed'
                    WHEN u.expires_at <= now() THEN 'expired'
                    ELSE 'active' END AS status
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
