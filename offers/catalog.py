"""The merchant's offers: create, change, and move through `draft -> active <-> paused -> ended`.

The use cases (`create_offer`, `update_offer`, `transition`) each take a unit of work and an
actor, lock what they change, record the change in the audit trail and commit. They answer the
offer as the API shows it (`offer_view`), which is also what the audit trail compares.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core import audit
from core.errors import IllegalTransitionError, NotFoundError, ValidationError
from core.models import Offer, OfferStatusChange, OfferVenue, Venue
from core.uow import UnitOfWork
from geo import proof as proofs
from offers import counters

STATUSES = ("draft", "active", "paused", "ended")

# action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "activate": (("draft", "paused"), "active"),
    "pause": (("active",), "paused"),
    "end": (("active", "paused"), "ended"),
}

DEFAULTS: dict[str, Any] = {
    "description": None,
    "terms": None,
    "starts_at": None,
    "ends_at": None,
    "windows": [],
    "total_cap": None,
    "per_user_cap": 1,
    "code_ttl_minutes": 1440,
    "requires_presence_code": False,
    "min_proof": proofs.DEFAULT_MIN_PROOF,
    "holdout_pct": 0,
    "value_per_redemption": None,
}
# The largest value per redemption an offer may state (the column holds 12 digits, 2 decimals).
MAX_VALUE_PER_REDEMPTION = 1_000_000
FIELDS = ("title", "rule", *DEFAULTS)
# What the API shows of an offer, besides its venue ids (and so what the audit trail compares).
SHOWN = ("id", "status", *FIELDS, "unlocked_count", "created_at", "updated_at")

OfferView = dict[str, Any]


def offer_view(offer: Offer, venue_ids: list[uuid.UUID]) -> OfferView:
    """The offer as the API shows it."""
    return {**{name: getattr(offer, name) for name in SHOWN}, "venue_ids": venue_ids}


def show_offer(session: Session, offer: Offer) -> OfferView:
    return offer_view(offer, venue_ids_of(session, [offer.id])[offer.id])


def _cents(value: float | None) -> float | None:
    """A value per redemption as the database keeps it (two decimals), shown the same at once."""
    return None if value is None else round(float(value), 2)


def create_offer(
    uow: UnitOfWork, actor: audit.Actor, merchant_id: uuid.UUID, data: dict[str, Any]
) -> OfferView:
    """A new offer in `draft`, at venues that must all be the merchant's own."""
    with uow:
        session = uow.session
        values = {**DEFAULTS, **{k: v for k, v in data.items() if k in FIELDS}}
        values.update(_proof_fields(data, DEFAULTS["min_proof"]))
        values["value_per_redemption"] = _cents(values["value_per_redemption"])
        _check_period(values["starts_at"], values["ends_at"])
        offer = Offer(merchant_id=merchant_id, status="draft", unlocked_count=0, **values)
        session.add(offer)
        session.flush()
        session.add(OfferStatusChange(offer_id=offer.id, status="draft"))
        _set_venues(session, merchant_id, offer.id, data["venue_ids"])
        view = show_offer(session, offer)
        audit.record(session, merchant_id, actor, "offer.create", offer.id, audit.diff(None, view))
        offer_id = offer.id
        uow.commit()
    _make_top_visitor_windows(uow, offer_id)
    return view


def get_offer(session: Session, merchant_id: uuid.UUID, offer_id: uuid.UUID) -> Offer:
    offer = session.scalar(
        select(Offer).where(Offer.id == offer_id, Offer.merchant_id == merchant_id)
    )
    if offer is None:
        raise NotFoundError("no such offer")
    return offer


def list_offers(session: Session, merchant_id: uuid.UUID, status: str | None = None) -> list[Offer]:
    query = select(Offer).where(Offer.merchant_id == merchant_id)
    if status is not None:
        query = query.where(Offer.status == status)
    return list(session.scalars(query.order_by(Offer.created_at, Offer.id)))


def venue_ids_of(session: Session, offer_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The venues of each offer, in one query."""
    result: dict[uuid.UUID, list[uuid.UUID]] = {offer_id: [] for offer_id in offer_ids}
    rows = session.execute(
        select(OfferVenue.offer_id, OfferVenue.venue_id)
        .where(OfferVenue.offer_id.in_(offer_ids))
        .order_by(OfferVenue.offer_id, OfferVenue.venue_id)
    )
    for offer_id, venue_id in rows:
        result[offer_id].append(venue_id)
    return result


def update_offer(
    uow: UnitOfWork,
    actor: audit.Actor,
    merchant_id: uuid.UUID,
    offer_id: uuid.UUID,
    changes: dict[str, Any],
) -> OfferView:
    """Change any field but the status. An ended offer is final."""
    with uow:
        session = uow.session
        offer = session.scalar(
            select(Offer)
            .where(Offer.id == offer_id, Offer.merchant_id == merchant_id)
            .with_for_update()
        )
        if offer is None:
            raise NotFoundError("no such offer")
        if offer.status == "ended":
            raise IllegalTransitionError("an ended offer cannot be changed")
        before = audit.jsonable(show_offer(session, offer))
        _check_period(
            changes.get("starts_at", offer.starts_at), changes.get("ends_at", offer.ends_at)
        )
        cap = changes.get("total_cap", offer.total_cap)
        if cap is not None and cap < offer.unlocked_count:
            raise ValidationError(
                f"total_cap cannot go below the {offer.unlocked_count} unlocks already issued",
                errors={"total_cap": [f"must be at least {offer.unlocked_count}"]},
            )
        changes = {**changes, **_proof_fields(changes, offer.min_proof)}
        if "value_per_redemption" in changes:
            changes["value_per_redemption"] = _cents(changes["value_per_redemption"])
        for field in FIELDS:
            if field in changes:
                setattr(offer, field, changes[field])
        if "venue_ids" in changes:
            _set_venues(session, merchant_id, offer.id, changes["venue_ids"])
        offer.updated_at = datetime.now(UTC)
        session.flush()
        view = show_offer(session, offer)
        audit.record(
            session, merchant_id, actor, "offer.update", offer.id, audit.diff(before, view)
        )
        uow.commit()
    _make_top_visitor_windows(uow, offer_id)
    return view


def _make_top_visitor_windows(uow: UnitOfWork, offer_id: uuid.UUID) -> None:
    """Fill a top_visitor offer's tallies at each of its venues (offers/counters.py), in a
    transaction of its own after the offer's: it waits for the check-ins in flight at those
    venues, which may be waiting to claim this offer's cap, so it must not hold the offer's row.
    Until it commits, the check-ins there count the old way, exactly all the same."""
    with uow:
        counters.ensure_top_visitor_windows(uow.session, offer_id)
        uow.commit()


def transition(
    uow: UnitOfWork,
    actor: audit.Actor,
    merchant_id: uuid.UUID,
    offer_id: uuid.UUID,
    action: str,
) -> OfferView:
    """Move an offer (`activate`, `pause`, `end`). The offer's row is locked first, so of two
    concurrent moves from the same state exactly one succeeds and the other sees its result."""
    sources, target = TRANSITIONS[action]
    with uow:
        session = uow.session
        offer = session.scalar(
            select(Offer)
            .where(Offer.id == offer_id, Offer.merchant_id == merchant_id)
            .with_for_update()
            .execution_options(populate_existing=True)  # as committed by the lock's last holder
        )
        if offer is None:
            raise NotFoundError("no such offer")
        before = offer.status
        if before not in sources:
            raise IllegalTransitionError(
                f"cannot {action} an offer that is {before} (allowed from: {', '.join(sources)})"
            )
        offer.status = target
        offer.updated_at = datetime.now(UTC)
        session.add(OfferStatusChange(offer_id=offer.id, status=target))
        session.flush()
        view = show_offer(session, offer)
        audit.record(
            session, merchant_id, actor, f"offer.{action}", offer.id, {"status": [before, target]}
        )
        uow.commit()
        return view


def _proof_fields(data: dict[str, Any], current: str) -> dict[str, Any]:
    """`min_proof` and `requires_presence_code` kept consistent: the flag is the older spelling
    of `min_proof` above gps. Only the one sent decides; both sent must agree."""
    sent_min = data.get("min_proof")
    sent_flag = data.get("requires_presence_code")
    if sent_min is None and sent_flag is None:
        return {}
    if sent_min is None:
        if sent_flag:  # a stronger level already set stays: it satisfies the code
            min_proof = current if current != proofs.GPS else proofs.PRESENCE_CODE
        else:
            min_proof = proofs.GPS
    else:
        min_proof = sent_min
        if sent_flag is not None and sent_flag != (min_proof != proofs.GPS):
            raise ValidationError(
                "requires_presence_code contradicts min_proof (true means min_proof"
                " presence_code or stronger; send min_proof alone)",
                errors={"requires_presence_code": [f"must be {min_proof != proofs.GPS}"]},
            )
    return {"min_proof": min_proof, "requires_presence_code": min_proof != proofs.GPS}


def _check_period(starts_at: datetime | None, ends_at: datetime | None) -> None:
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise ValidationError(
            "ends_at must be after starts_at", errors={"ends_at": ["must be after starts_at"]}
        )


def _set_venues(
    session: Session, merchant_id: uuid.UUID, offer_id: uuid.UUID, venue_ids: list[uuid.UUID]
) -> None:
    wanted = set(venue_ids)
    found = set(
        session.scalars(
            select(Venue.id).where(
                Venue.id.in_(wanted), Venue.merchant_id == merchant_id, Venue.deleted_at.is_(None)
            )
        )
    )
    missing = wanted - found
    if missing:
        raise NotFoundError(f"no such venue: {', '.join(sorted(str(v) for v in missing))}")
    session.execute(delete(OfferVenue).where(OfferVenue.offer_id == offer_id))
    session.add_all(OfferVenue(offer_id=offer_id, venue_id=v) for v in sorted(wanted))
    session.flush()
