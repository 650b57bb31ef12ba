"""Check-ins (user token) and the user's wallet of unlocks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Response, current_app, json
from flask.views import MethodView

from api import auth, db, idempotency, observability
from api.errors import handle_domain_error
from api.jsonbody import Blueprint
from api.schemas import CheckinCreateSchema, CheckinSchema, WalletArgsSchema, WalletSchema
from geo.verify import Thresholds
from offers import codes
from offers.checkins import CheckinInput, CheckinResult, PresenceCodeGuessingError, check_in
from offers.redemptions import wallet

blp = Blueprint("checkins", __name__, url_prefix="/v1", description="Check-ins and the wallet")
_CHECKIN = (
    CheckinSchema()
)  # one instance: building a schema (and its nested ones) costs more than dumping

IDEMPOTENCY_DOC = {
    "parameters": [
        {
            "in": "header",
            "name": "Idempotency-Key",
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": "Retries with the same key and body replay the first answer and "
            "change nothing; the same key with another body is 422 idempotency_key_reused.",
        }
    ]
}


def present_unlock(u: Any) -> dict[str, Any]:
    return {
        "id": u.id,
        "offer_id": u.offer_id,
        "venue_id": u.venue_id,
        "title": u.title,
        "code": codes.format_code(u.code),
        "qr_payload": codes.qr_payload(u.code),
        "expires_at": u.expires_at,
    }


def thresholds() -> Thresholds:
    """The verification limits from the configuration (the contract's by default)."""
    config = current_app.config
    return Thresholds(
        stale_after=timedelta(seconds=config["CHECKIN_STALE_AFTER_SECONDS"]),
        future_tolerance=timedelta(seconds=config["CHECKIN_FUTURE_TOLERANCE_SECONDS"]),
        max_speed_kmh=float(config["CHECKIN_MAX_SPEED_KMH"]),
    )


def present(result: CheckinResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "status": result.status,
        "reasons": [{"code": r.code, "detail": r.detail} for r in result.verdict.reasons],
        "unlocks": [present_unlock(u) for u in result.unlocks],
        "held_out": result.held_out,
        "verification": {
            "strikes": [{"code": s.code, "detail": s.detail} for s in result.assessment.strikes],
            "presence_code_required": result.assessment.presence_code_required,
            "staff_exclusion": {
                "code": result.assessment.staff_exclusion.code,
                "detail": result.assessment.staff_exclusion.detail,
            }
            if result.assessment.staff_exclusion
            else None,
        },
        "proof": result.proof,
        "locked": [
            {
                "offer_id": lock.offer_id,
                "title": lock.title,
                "code": lock.code,
                "min_proof": lock.min_proof,
                "detail": lock.detail,
            }
            for lock in result.locked
        ],
        "created_at": result.created_at,
    }


@blp.route("/checkins")
class Checkins(MethodView):
    @auth.user
    @blp.arguments(CheckinCreateSchema())
    @blp.response(201, CheckinSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(**IDEMPOTENCY_DOC)
    def post(self, data: dict[str, Any]) -> Response:
        """Check in at a venue. A `presence_code` is guess-limited: after 5 wrong codes from the
        account or the device, or 30 at the venue, within 15 minutes, a check-in carrying a code
        is 429 `too_many_attempts` (with `Retry-After`) until the oldest leaves the window; one
        without a code is judged as usual. The server verifies presence; a rejected check-in is recorded
        and answered 201 with its reasons. With a `tap_token` (POST /v1/taps) the fix may be
        indoors and rough; a token that is not the caller's own for this venue, or was used, is
        the reason `tap_invalid`. `proof` says how strongly presence was proved; `locked` lists
        offers that need a stronger proof, with what to do. `unlocks` lists the codes this visit earned;
        `verification` tells when the account or device is under a strike (offers then unlock
        only with the presence code shown at the venue) or is the merchant's own staff."""
        user = auth.current_user()
        uow = db.uow()

        recorded: list[CheckinResult] = []  # empty when an idempotent retry is replayed

        def work() -> Response:
            try:
                result = check_in(uow, user.user_id, CheckinInput(**data), thresholds())
            except PresenceCodeGuessingError as error:
                # The refusal was recorded: answer it (and, under an Idempotency-Key, store the
                # answer) so that the record commits instead of rolling back.
                return handle_domain_error(error)
            recorded.append(result)
            body = _CHECKIN.dump(present(result))
            return Response(json.dumps(body), status=201, mimetype="application/json")

        response = idempotency.run(uow, f"user:{user.user_id}", data, work)
        for result in recorded:  # committed: log the verdict and count it
            observability.checkin_recorded(user.user_id, data["venue_id"], result)
        return response


@blp.route("/me/unlocks")
class Wallet(MethodView):
    @auth.user
    @blp.arguments(WalletArgsSchema(), location="query")
    @blp.response(200, WalletSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The user's unlocks, newest first, each `active`, `redeemed` or `expired`."""
        user_id = auth.current_user().user_id
        entries = db.read(lambda session: wallet(session, user_id, args.get("status")))
        return {
            "unlocks": [
                {
                    **present_unlock(e),
                    "status": e.status,
                    "created_at": e.created_at,
                    "redeemed_at": e.redeemed_at,
                }
                for e in entries
            ]
        }
