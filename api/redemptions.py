"""Redemption at the till (owner or staff key), exactly once per code."""

from __future__ import annotations

from typing import Any

from flask import Response, json
from flask.views import MethodView

from api import audit, auth, db, idempotency, observability
from api.checkins import IDEMPOTENCY_DOC
from api.errors import handle_domain_error
from api.jsonbody import Blueprint
from api.schemas import RedemptionCreateSchema, RedemptionSchema
from offers.redemptions import RecordedError, RedemptionResult, redeem

blp = Blueprint("redemptions", __name__, url_prefix="/v1", description="Redemption at the till")
_REDEMPTION = RedemptionSchema()  # one instance: building a schema costs more than dumping


@blp.route("/redemptions")
class Redemptions(MethodView):
    @auth.merchant("owner", "staff")
    @blp.arguments(RedemptionCreateSchema())
    @blp.response(201, RedemptionSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(410, response="GONE")
    @blp.doc(**IDEMPOTENCY_DOC)
    def post(self, data: dict[str, Any]) -> Response:
        """Redeem a code. Refusals, first match wins: unknown or another merchant's code 404
        `not_found`; a venue_id not among the offer's venues (a deleted venue is not) 422
        `wrong_venue`; already redeemed 409 `already_redeemed`; expired 410 `expired`. Every
        attempt is recorded.

        A code stays redeemable until it expires even after its offer is paused or ended: those
        stop new unlocks, not codes already given. A till that sends no venue_id is trusted to
        be at one of the merchant's venues."""
        principal = auth.current_merchant()
        uow = db.uow()

        outcomes: list[RedemptionResult | RecordedError] = []  # empty when replayed

        def work() -> Response:
            try:
                result = redeem(
                    uow,
                    audit.current_actor(),
                    principal.merchant_id,
                    data["code"],
                    data["venue_id"],
                )
            except RecordedError as refusal:
                outcomes.append(refusal)
                return handle_domain_error(refusal)
            outcomes.append(result)
            body = _REDEMPTION.dump(
                {
                    "id": result.id,
                    "unlock_id": result.unlock_id,
                    "offer_id": result.offer_id,
                    "venue_id": result.venue_id,
                    "title": result.offer_title,
                    "redeemed_at": result.redeemed_at,
                }
            )
            return Response(json.dumps(body), status=201, mimetype="application/json")

        response = idempotency.run(uow, f"key:{principal.key_id}", data, work)
        for outcome in outcomes:  # committed: log the outcome and count it
            observability.redemption_recorded(principal, data["venue_id"], outcome)
        return response
