"""Offers: configure them and move them through their lifecycle (use cases in `offers.catalog`)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView
from sqlalchemy.orm import Session

from api import audit, auth, db
from api.jsonbody import Blueprint
from api.schemas import (
    OfferCreateSchema,
    OfferListArgsSchema,
    OfferListSchema,
    OfferPatchSchema,
    OfferSchema,
)
from offers import catalog

blp = Blueprint(
    "offers",
    __name__,
    url_prefix="/v1/offers",
    description="Offers: rules, schedules, caps, and the lifecycle draft -> active <-> paused -> ended",
)


@blp.route("")
class Offers(MethodView):
    @auth.merchant("owner")
    @blp.arguments(OfferListArgsSchema(), location="query")
    @blp.response(200, OfferListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The merchant's offers, optionally of one status."""
        merchant_id = auth.current_merchant().merchant_id

        def query(session: Session) -> dict[str, Any]:
            found = catalog.list_offers(session, merchant_id, args.get("status"))
            venue_ids = catalog.venue_ids_of(session, [offer.id for offer in found])
            return {"offers": [catalog.offer_view(offer, venue_ids[offer.id]) for offer in found]}

        return db.read(query)

    @auth.merchant("owner")
    @blp.arguments(OfferCreateSchema())
    @blp.response(201, OfferSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any]) -> catalog.OfferView:
        """Create an offer (in `draft`) at some of the merchant's venues."""
        return catalog.create_offer(
            db.uow(), audit.current_actor(), auth.current_merchant().merchant_id, data
        )


@blp.route("/<uuid:offer_id>")
class OfferItem(MethodView):
    @auth.merchant("owner")
    @blp.response(200, OfferSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, offer_id: uuid.UUID) -> catalog.OfferView:
        """One offer."""
        merchant_id = auth.current_merchant().merchant_id
        return db.read(
            lambda session: catalog.show_offer(
                session, catalog.get_offer(session, merchant_id, offer_id)
            )
        )

    @auth.merchant("owner")
    @blp.arguments(OfferPatchSchema(partial=True))
    @blp.response(200, OfferSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def patch(self, data: dict[str, Any], offer_id: uuid.UUID) -> catalog.OfferView:
        """Change some fields (not the status). An ended offer cannot change: 409."""
        return catalog.update_offer(
            db.uow(), audit.current_actor(), auth.current_merchant().merchant_id, offer_id, data
        )


def _transition_view(action: str, doc: str) -> None:
    @blp.route(f"/<uuid:offer_id>/{action}", endpoint=action)
    class Transition(MethodView):
        @auth.merchant("owner")
        @blp.response(200, OfferSchema)
        @blp.alt_response(404, response="NOT_FOUND")
        @blp.alt_response(409, response="CONFLICT")
        @blp.doc(summary=doc)
        def post(self, offer_id: uuid.UUID) -> catalog.OfferView:
            return catalog.transition(
                db.uow(),
                audit.current_actor(),
                auth.current_merchant().merchant_id,
                offer_id,
                action,
            )


_transition_view("activate", "Activate a draft or paused offer. Any other status: 409.")
_transition_view(
    "pause",
    "Pause an active offer: nothing unlocks until it is activated again; codes already issued "
    "stay redeemable until they expire. Any other status: 409.",
)
_transition_view(
    "end",
    "End an active or paused offer, for good: nothing unlocks any more; codes already issued "
    "stay redeemable until they expire (`code_ttl_minutes`). Any other status: 409.",
)
