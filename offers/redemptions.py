"""Redemption at the till, exactly once, and the user's wallet.

A code is redeemed by one conditional UPDATE (`redeemed_at IS NULL AND expires_at > now()`), so
of any number of concurrent attempts exactly one wins. Every attempt, won or lost, is recorded
with who tried it and where: that is the raw material of leak detection.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.errors import ConflictError, DomainError, NotFoundError, ValidationError
from core.models import Offer, RedemptionAttempt, Unlock, Venue
from offers import codes


class RecordedError(DomainError):
    """A refusal whose attempt record must be committed along with the answer."""


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


_REDEEM = text(
    """
    WITH won AS (
        UPDATE unlocks SET redeemed_at = now()
        WHERE id = :unlock_id AND redeemed_at IS NULL AND expires_at > now()
        RETURNING id, offer_id, redeemed_at
    )
    INSERT INTO redemptions (id, unlock_id, offer_id, merchant_id, venue_id, api_key_id,
                             redeemed_at)
    SELECT :id, won.id, won.offer_id, :merchant_id, :venue_id, :api_key_id, won.redeemed_at
    FROM won
    RETURNING redeemed_at
    """
)


def redeem(
    session: Session,
    merchant_id: uuid.UUID,
    api_key_id: uuid.UUID,
    raw_code: str,
    venue_id: uuid.UUID | None,
) -> RedemptionResult:
    """Redeem a code for this merchant. Refusals, in the contract's order: unknown or another
    merchant's code (404), a venue not among the offer's (422), already redeemed (409), expired
    (410). The attempt is recorded either way; the caller commits in both cases."""
    code = codes.normalize(raw_code)
    unlock = session.scalar(select(Unlock).where(Unlock.code == code)) if code is not None else None
    # The attempt records the till's venue only when it is one of this merchant's venues.
    till_venue = (
        session.scalar(
            select(Venue.id).where(Venue.id == venue_id, Venue.merchant_id == merchant_id)
        )
        if venue_id is not None
        else None
    )

    def attempt(outcome: str) -> None:
        session.add(
            RedemptionAttempt(
                merchant_id=merchant_id,
                api_key_id=api_key_id,
                unlock_id=unlock.id if unlock is not None else None,
                venue_id=till_venue,
                code_hint=(code or "")[:4],
                outcome=outcome,
            )
        )
        session.flush()

    if unlock is None:
        attempt("unknown")
        raise CodeNotFoundError("no such code")
    if unlock.merchant_id != merchant_id:
        attempt("other_merchant")
        raise CodeNotFoundError("no such code")
    if venue_id is not None:
        at_venue = session.scalar(
            text(
                "SELECT EXISTS (SELECT 1 FROM offer_venues"
                " WHERE offer_id = :offer_id AND venue_id = :venue_id)"
            ),
            {"offer_id": str(unlock.offer_id), "venue_id": str(venue_id)},
        )
        if not at_venue:
            attempt("wrong_venue")
            raise WrongVenueError(
                "this code is for an offer that is not valid at this venue",
                errors={"venue_id": ["not one of the offer's venues"]},
            )
    redemption_id = uuid.uuid4()
    redeemed_at = session.scalar(
        _REDEEM,
        {
            "unlock_id": str(unlock.id),
            "id": str(redemption_id),
            "merchant_id": str(merchant_id),
            "venue_id": str(venue_id) if venue_id else None,
            "api_key_id": str(api_key_id),
        },
    )
    if redeemed_at is None:
        session.refresh(unlock)
        if unlock.redeemed_at is not None:
            attempt("already_redeemed")
            raise AlreadyRedeemedError(
                f"this code was already redeemed at {unlock.redeemed_at.isoformat()}"
            )
        attempt("expired")
        raise ExpiredError(f"this code expired at {unlock.expires_at.isoformat()}")
    attempt("redeemed")
    title = session.scalar(select(Offer.title).where(Offer.id == unlock.offer_id)) or ""
    return RedemptionResult(
        redemption_id,
        unlock.id,
        unlock.offer_id,
        venue_id,
        redeemed_at,
        title,
        unlock.user_id,
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
    rows = session.execute(
        _WALLET, {"user_id": str(user_id), "status": status, "limit": limit}
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
