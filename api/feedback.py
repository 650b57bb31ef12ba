"""Feedback from verified visits: users rate their visits, merchants answer (docs/feedback.md)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import request
from flask.views import MethodView

from api import audit, auth, db
from api.csvfile import csv_response
from api.jsonbody import Blueprint
from api.schemas import (
    FeedbackCreateSchema,
    FeedbackListArgsSchema,
    FeedbackSchema,
    MerchantFeedbackListSchema,
    MyFeedbackListSchema,
    ReplyCreateSchema,
    ReplySchema,
    ResponsivenessArgsSchema,
    ResponsivenessSchema,
)
from offers import feedback

blp = Blueprint(
    "feedback",
    __name__,
    url_prefix="/v1",
    description="Feedback from verified visits and the merchant's replies",
)

ANSWERERS = ("owner", "staff")
READERS = ("owner", "analyst")


@blp.route("/checkins/<uuid:checkin_id>/feedback")
class CheckinFeedback(MethodView):
    @auth.user
    @blp.arguments(FeedbackCreateSchema())
    @blp.response(201, FeedbackSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, data: dict[str, Any], checkin_id: uuid.UUID) -> dict[str, Any]:
        """Rate one of your own verified visits (1 to 5 stars, an optional plain-text comment),
        within 7 days of it, once. Another user's or an unknown check-in: 404 `not_found`; a
        rejected check-in, one older than 7 days, or a visit by the merchant's own staff: 422
        `not_eligible`; a second time: 409 `already_given`."""
        return feedback.give_feedback(
            db.uow(), auth.current_user().user_id, checkin_id, data["rating"], data["comment"]
        )


@blp.route("/me/feedback")
class MyFeedback(MethodView):
    @auth.user
    @blp.response(200, MyFeedbackListSchema)
    def get(self) -> dict[str, Any]:
        """Your feedback, newest first (at most 200), each with the merchant's replies."""
        return {"feedback": feedback.my_feedback(db.session(), auth.current_user().user_id)}


@blp.route("/feedback")
class MerchantFeedback(MethodView):
    @auth.merchant(*ANSWERERS)
    @blp.arguments(FeedbackListArgsSchema(), location="query")
    @blp.response(200, MerchantFeedbackListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The merchant's feedback: unanswered first, oldest first (the one waiting longest on
        top), then answered, newest first; by `status`, `venue_id` and `rating` if asked. Each
        comes with the visit it is about (when, proof, what it unlocked and whether that was
        redeemed) and its replies. Never who the customer is."""
        return {
            "feedback": feedback.merchant_feedback(
                db.session(),
                auth.current_merchant().merchant_id,
                status=args["status"],
                venue_id=args["venue_id"],
                rating=args["rating"],
                limit=args["limit"],
                offset=args["offset"],
            )
        }


@blp.route("/feedback/<uuid:feedback_id>/replies")
class Replies(MethodView):
    @auth.merchant(*ANSWERERS)
    @blp.arguments(ReplyCreateSchema())
    @blp.response(201, ReplySchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any], feedback_id: uuid.UUID) -> dict[str, Any]:
        """Answer a feedback in plain text; several replies are allowed, the first one stops
        its response clock. The customer reads it in GET /v1/me/feedback. Audited with the key
        that wrote it."""
        return feedback.reply(
            db.uow(),
            audit.current_actor(),
            auth.current_merchant().merchant_id,
            feedback_id,
            data["body"],
        )


@blp.route("/analytics/responsiveness")
class Responsiveness(MethodView):
    @auth.merchant(*READERS)
    @blp.arguments(ResponsivenessArgsSchema(), location="query")
    @blp.response(200, ResponsivenessSchema)
    @blp.alt_response(
        200,
        schema={"type": "string", "description": "CSV with a header row"},
        content_type="text/csv",
        success=True,
    )
    def get(self, args: dict[str, Any]) -> Any:
        """How well and how fast the merchant answers feedback given in the period, for the
        merchant and per venue: answered, pending (unanswered, younger than `target_hours`),
        overdue, the response rate (answered / (answered + overdue)), the share answered within
        the target, median and p90 time to first reply, the rating distribution, ratings per
        offer unlocked on the visits, and the Facebook and Yelp benchmarks. As JSON, or as CSV
        (merchant and venue rows) with `format=csv` or `Accept: text/csv`."""
        report = feedback.responsiveness(
            db.session(),
            auth.current_merchant().merchant_id,
            args["from_"],
            args["to"],
            args["target_hours"],
            args["venue_id"],
        )
        wants_csv = args["format"] == "csv" or (
            args["format"] is None
            and request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"
        )
        if wants_csv:
            return csv_response(
                "responsiveness.csv", feedback.CSV_COLUMNS, feedback.csv_rows(report)
            )
        return report
