"""Redemption at the till (owner or staff key, or a till device at its venue), exactly once per
code; the till's check of a code; and the till's list of the day at a venue."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, json
from flask.views import MethodView

from api import audit, auth, db, idempotency, observability
from api.checkins import IDEMPOTENCY_DOC
from api.errors import handle_domain_error
from api.jsonbody import Blueprint
from api.schemas import (
    CodeCheckSchema,
    RedemptionCreateSchema,
    RedemptionSchema,
    TillDayArgsSchema,
    TillDaySchema,
)
from offers import codes, redemptions
from offers.redemptions import CodeCheck, RecordedError, RedemptionResult, redeem

blp = Blueprint("redemptions", __name__, url_prefix="/v1", description="Redemption at the till")
_REDEMPTION = RedemptionSchema()  # one instance: building a schema costs more than dumping


@blp.route("/redemptions")
class Redemptions(MethodView):
    @auth.merchant("owner", "staff", devices=True)
    @blp.arguments(RedemptionCreateSchema())
    @blp.response(201, RedemptionSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(410, response="GONE")
    @blp.doc(**IDEMPOTENCY_DOC)
    def post(self, data: dict[str, Any]) -> Response:
        """Redeem a code. Refusals, first match wins: unknown or another merchant's code 404
        `not_found`; a venue_id not among the offer's venues (a deleted venue is not) 422
        `wrong_venue`; already redeemed 409 `already_redeemed` (its detail says when and where);
        expired 410 `expired`. Every attempt is recorded. A till device redeems at its own venue:
        `venue_id` defaults to it, and another venue is 403 `venue_not_paired`.

        A code stays redeemable until it expires even after its offer is paused or ended: those
        stop new unlocks, not codes already given. A till that sends no venue_id is trusted to
        be at one of the merchant's venues."""
        principal = auth.current_merchant()
        venue_id = auth.venue_scope(data["venue_id"])
        uow = db.uow()

        outcomes: list[RedemptionResult | RecordedError] = []  # empty when replayed

        def work() -> Response:
            try:
                result = redeem(
                    uow, audit.current_actor(), principal.merchant_id, data["code"], venue_id
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
            observability.redemption_recorded(principal, venue_id, outcome)
        return response


@blp.route("/redemptions/check")
class RedemptionCheck(MethodView):
    @auth.merchant("owner", "staff", devices=True)
    @blp.arguments(RedemptionCreateSchema())
    @blp.response(200, CodeCheckSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Check a code without redeeming it: `valid` (with the offer, its venues and the
        unlock's expiry) or the refusal `POST /v1/redemptions` would give now (`unknown`,
        `wrong_venue`, `already_redeemed` with where and when, `expired`). The attempt is
        recorded like a redemption's (outcome `checked` when valid), so the leak report counts
        codes refused at a till that only checked them. A till device checks at its own venue
        (`venue_id` defaults to it; another is 403 `venue_not_paired`)."""
        venue_id = auth.venue_scope(data["venue_id"])
        found = redemptions.check(
            db.uow(),
            audit.current_actor(),
            auth.current_merchant().merchant_id,
            data["code"],
            venue_id,
        )
        return _check_view(found, malformed=codes.normalize(data["code"]) is None)


_DETAILS = {
    "valid": "the code is good: redeem it to hand over the offer",
    "unknown": "no such code for this merchant",
    "wrong_venue": "this code is for an offer that is not valid at this venue",
    "already_redeemed": "this code was already redeemed",
    "expired": "this code has expired",
}


def _check_view(found: CodeCheck, *, malformed: bool) -> dict[str, Any]:
    detail = _DETAILS[found.outcome]
    if malformed:
        detail = "not a code: a symbol is mistyped or missing"
    return {
        "outcome": found.outcome,
        "detail": detail,
        "code": codes.format_code(found.code) if found.code else None,
        "offer_id": found.offer_id,
        "title": found.title,
        "venues": found.venues,
        "unlocked_at": found.unlocked_at,
        "expires_at": found.expires_at,
        "redemption": {
            "redeemed_at": found.redeemed_at,
            "venue_id": found.redeemed_venue_id,
            "venue_name": found.redeemed_venue_name,
            "till": found.redeemed_by,
        }
        if found.redeemed_at is not None
        else None,
    }


@blp.route("/venues/<uuid:venue_id>/till-day")
class TillDay(MethodView):
    @auth.merchant("owner", "staff", devices=True)
    @blp.arguments(TillDayArgsSchema(), location="query")
    @blp.response(200, TillDaySchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict[str, Any], venue_id: uuid.UUID) -> dict[str, Any]:
        """The till's day at a venue: its redemptions and its check-ins on one local date
        (today by default), newest first, so a till's list survives a reload. Check-ins say
        what they unlocked or why they were rejected, never who made them. A till device reads
        its own venue's day only (403 `venue_not_paired`)."""
        auth.venue_scope(venue_id)
        return redemptions.till_day(
            db.session(), auth.current_merchant().merchant_id, venue_id, args["date"]
        )
