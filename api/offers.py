"""Offers: configure them and move them through their lifecycle."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from api import audit, auth, db
from api.schemas import (
    OfferCreateSchema,
    OfferListArgsSchema,
    OfferListSchema,
    OfferPatchSchema,
    OfferSchema,
)
from core.models import Offer
from offers import catalog

blp = Blueprint(
    "offers",
    __name__,
    url_prefix="/v1/offers",
    description="Offers: rules, schedules, caps, and the lifecycle draft -> active <-> paused -> ended",
)


def present(offer: Offer, venue_ids: list[uuid.UUID]) -> dict[str, Any]:
    out = {name: getattr(offer, name) for name in OfferSchema().fields if name != "venue_ids"}
    out["venue_ids"] = venue_ids
    return out


def present_one(offer: Offer) -> dict[str, Any]:
    return present(offer, catalog.venue_ids_of(db.session(), [offer.id])[offer.id])


@blp.route("")
class Offers(MethodView):
    @auth.merchant("owner")
    @blp.arguments(OfferListArgsSchema(), location="query")
    @blp.response(200, OfferListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The merchant's offers, optionally of one status."""
        session = db.session()
        found = catalog.list_offers(
            session, auth.current_merchant().merchant_id, args.get("status")
        )
        venue_ids = catalog.venue_ids_of(session, [offer.id for offer in found])
        return {"offers": [present(offer, venue_ids[offer.id]) for offer in found]}

    @auth.merchant("owner")
    @blp.arguments(OfferCreateSchema())
    @blp.response(201, OfferSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create an offer (in `draft`) at some of the merchant's venues."""
        session = db.session()
        offer = catalog.create_offer(session, auth.current_merchant().merchant_id, data)
        body = present_one(offer)
        audit.record("offer.create", offer.id, after=body)
        session.commit()
        return body


@blp.route("/<uuid:offer_id>")
class OfferItem(MethodView):
    @auth.merchant("owner")
    @blp.response(200, OfferSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, offer_id: uuid.UUID) -> dict[str, Any]:
        """One offer."""
        return present_one(
            catalog.get_offer(db.session(), auth.current_merchant().merchant_id, offer_id)
        )

    @auth.merchant("owner")
    @blp.arguments(OfferPatchSchema(partial=True))
    @blp.response(200, OfferSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def patch(self, data: dict[str, Any], offer_id: uuid.UUID) -> dict[str, Any]:
        """Change some fields (not the status). An ended offer cannot change: 409."""
        session = db.session()
        merchant_id = auth.current_merchant().merchant_id
        audit.lock(Offer, offer_id)
        before = audit.snapshot(present_one(catalog.get_offer(session, merchant_id, offer_id)))
        offer = catalog.update_offer(session, merchant_id, offer_id, data)
        body = present_one(offer)
        audit.record("offer.update", offer.id, before=before, after=body)
        session.commit()
        return body


def _transition_view(action: str, doc: str) -> None:
    @blp.route(f"/<uuid:offer_id>/{action}", endpoint=action)
    class Transition(MethodView):
        @auth.merchant("owner")
        @blp.response(200, OfferSchema)
        @blp.alt_response(404, response="NOT_FOUND")
        @blp.alt_response(409, response="CONFLICT")
        @blp.doc(summary=doc)
        def post(self, offer_id: uuid.UUID) -> dict[str, Any]:
            session = db.session()
            merchant_id = auth.current_merchant().merchant_id
            audit.lock(Offer, offer_id)
            before = catalog.get_offer(session, merchant_id, offer_id).status
            offer = catalog.transition(session, merchant_id, offer_id, action)
            audit.record(
                f"offer.{action}",
                offer.id,
                before={"status": before},
                after={"status": offer.status},
            )
            session.commit()
            return present_one(offer)


_transition_view("activate", "Activate a draft or paused offer. Any other status: 409.")
_transition_view("pause", "Pause an active offer. Any other status: 409.")
_transition_view("end", "End an active or paused offer, for good. Any other status: 409.")
