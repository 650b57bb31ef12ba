"""Analytics for owners and analysts: the funnel, redemptions, lift, leaks and offer health."""

from __future__ import annotations

import uuid
from typing import Any

from flask import request
from flask.views import MethodView

from api import auth, db
from api.csvfile import csv_response
from api.jsonbody import Blueprint
from api.schemas import (
    FunnelSchema,
    LeakArgsSchema,
    LeakReportSchema,
    LiftArgsSchema,
    LiftSchema,
    OfferHealthListSchema,
    OfferHealthSchema,
    PeriodArgsSchema,
    RedemptionsArgsSchema,
    RedemptionsReportSchema,
    SummaryArgsSchema,
    SummarySchema,
)
from offers import analytics

blp = Blueprint(
    "analytics",
    __name__,
    url_prefix="/v1/analytics",
    description="Measurement, computed from the recorded events (owner or analyst key)",
)

READERS = ("owner", "analyst")


@blp.route("/offers/<uuid:offer_id>/funnel")
class Funnel(MethodView):
    @auth.merchant(*READERS)
    @blp.arguments(PeriodArgsSchema(), location="query")
    @blp.response(200, FunnelSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict[str, Any], offer_id: uuid.UUID) -> dict[str, Any]:
        """Impressions, check-ins at its venues while active, verified check-ins, unlocks,
        holdouts and redemptions over a period (default: the offer's whole life), the rates
        between them, time to redeem, and new versus returning visitors."""
        return db.read(
            lambda session: analytics.funnel(
                session, auth.current_merchant().merchant_id, offer_id, args["from_"], args["to"]
            )
        )


@blp.route("/redemptions")
class Redemptions(MethodView):
    @auth.merchant(*READERS)
    @blp.arguments(RedemptionsArgsSchema(), location="query")
    @blp.response(200, RedemptionsReportSchema)
    @blp.alt_response(
        200,
        schema={"type": "string", "description": "CSV with a header row"},
        content_type="text/csv",
        success=True,
    )
    def get(self, args: dict[str, Any]) -> Any:
        """Redemptions counted by local day or hour at the venue, by venue, or by offer; as
        JSON, or as CSV with `format=csv` or `Accept: text/csv`."""
        rows = db.read(
            lambda session: analytics.redemptions_by(
                session,
                auth.current_merchant().merchant_id,
                args["group_by"],
                args["from_"],
                args["to"],
                args["offer_id"],
                args["venue_id"],
            )
        )
        wants_csv = args["format"] == "csv" or (
            args["format"] is None
            and request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"
        )
        if wants_csv:
            return csv_response(
                f"redemptions-by-{args['group_by']}.csv", REDEMPTION_COLUMNS[args["group_by"]], rows
            )
        return {"group_by": args["group_by"], "rows": rows}


REDEMPTION_COLUMNS = {
    "day": ["day", "redemptions"],
    "hour": ["hour", "redemptions"],
    "venue": ["venue_id", "venue_name", "redemptions"],
    "offer": ["offer_id", "offer_title", "redemptions"],
}


@blp.route("/offers/<uuid:offer_id>/lift")
class Lift(MethodView):
    @auth.merchant(*READERS)
    @blp.arguments(LiftArgsSchema(), location="query")
    @blp.response(200, LiftSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict[str, Any], offer_id: uuid.UUID) -> dict[str, Any]:
        """Causal lift from the randomized holdout: return rates of treated and held-out users
        within `window_days` after their first eligible visit, the difference, and its 95%
        interval (Newcombe). Users still inside their window are reported as `pending`."""
        return db.read(
            lambda session: analytics.lift(
                session, auth.current_merchant().merchant_id, offer_id, args["window_days"]
            )
        )


@blp.route("/leaks")
class Leaks(MethodView):
    @auth.merchant(*READERS)
    @blp.arguments(LeakArgsSchema(), location="query")
    @blp.response(200, LeakReportSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Exclusivity and leaks for the merchant (or one offer): the share of redemptions backed
        by a verified check-in, refused redemption attempts by reason, this merchant's codes
        tried by other merchants, redemptions suspiciously fast after the unlock or far from
        where it happened, and rejected check-ins by reason."""
        return db.read(
            lambda session: analytics.leak_report(
                session,
                auth.current_merchant().merchant_id,
                args["from_"],
                args["to"],
                args["offer_id"],
                args["fast_seconds"],
                args["far_m"],
            )
        )


@blp.route("/offers/health")
class HealthList(MethodView):
    @auth.merchant(*READERS)
    @blp.response(200, OfferHealthListSchema)
    def get(self) -> dict[str, Any]:
        """Every offer with its health over the last 7 days and flags that say why an
        offer looks broken or mistrusted."""
        return {
            "offers": db.read(
                lambda session: analytics.offer_health(session, auth.current_merchant().merchant_id)
            )
        }


@blp.route("/offers/<uuid:offer_id>/health")
class Health(MethodView):
    @auth.merchant(*READERS)
    @blp.response(200, OfferHealthSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, offer_id: uuid.UUID) -> dict[str, Any]:
        """One offer's health over the last 7 days, with its flags."""
        [health] = db.read(
            lambda session: analytics.offer_health(
                session, auth.current_merchant().merchant_id, offer_id
            )
        )
        return health


@blp.route("/summary")
class Summary(MethodView):
    @auth.merchant(*READERS)
    @blp.arguments(SummaryArgsSchema(), location="query")
    @blp.response(200, SummarySchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Is it working? Visitors, verified check-ins, unlocks, redemptions, the redemption
        rate and the lift over a period (default: the last 30 days), at every venue or one,
        beside the previous period of the same length; and the same for each offer."""
        return db.read(
            lambda session: analytics.summary(
                session,
                auth.current_merchant().merchant_id,
                args["from_"],
                args["to"],
                args["venue_id"],
            )
        )
