"""Proof of presence over HTTP: venues' NFC tags, taps, users' cards and member codes, and the
check-ins the merchant's staff record (docs/presence.md)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, current_app, json, request
from flask.views import MethodView

from api import audit, auth, db, idempotency, observability
from api.checkins import IDEMPOTENCY_DOC, present, thresholds
from api.errors import handle_domain_error
from api.jsonbody import Blueprint
from api.schemas import (
    CardCreatedSchema,
    CardCreateSchema,
    CardListSchema,
    MemberCodeSchema,
    NfcTagCreatedSchema,
    NfcTagCreateSchema,
    NfcTagListSchema,
    StaffCheckinCreateSchema,
    StaffCheckinSchema,
    TapCreateSchema,
    TapSchema,
)
from core.errors import DomainError
from geo import members, nfc
from offers.checkins import (
    CheckinResult,
    StaffCheckinInput,
    TooManyAttemptsError,
    staff_check_in,
)

blp = Blueprint(
    "presence",
    __name__,
    url_prefix="/v1",
    description="Proof of presence: NFC tags and taps, cards, member codes, staff check-ins",
)
_STAFF_CHECKIN = StaffCheckinSchema()


def master_key() -> bytes:
    """The NFC master key from the configuration (validated at start)."""
    return bytes.fromhex(current_app.config["NFC_MASTER_KEY"])


def tap_base_url() -> str:
    configured = current_app.config.get("NFC_TAP_URL")
    return str(configured) if configured else request.host_url.rstrip("/") + "/tap"


@blp.route("/venues/<uuid:venue_id>/nfc-tags")
class VenueTags(MethodView):
    @auth.merchant("owner")
    @blp.response(200, NfcTagListSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, venue_id: uuid.UUID) -> dict[str, Any]:
        """The venue's NFC tags (never their keys)."""
        return {
            "nfc_tags": nfc.list_tags(db.session(), auth.current_merchant().merchant_id, venue_id)
        }

    @auth.merchant("owner")
    @blp.arguments(NfcTagCreateSchema())
    @blp.response(201, NfcTagCreatedSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, data: dict[str, Any], venue_id: uuid.UUID) -> dict[str, Any]:
        """Register an NTAG 424 DNA tag at the venue. The answer carries the tag's two AES keys
        and the URL to program into it: they are shown once, never again. A tag registered
        elsewhere (still live) is 409 `already_registered`."""
        return nfc.register_tag(
            db.uow(),
            audit.current_actor(),
            auth.current_merchant().merchant_id,
            venue_id,
            data["uid"],
            data["label"],
            master_key(),
            tap_base_url(),
        )


@blp.route("/nfc-tags/<uuid:tag_id>")
class Tag(MethodView):
    @auth.merchant("owner")
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, tag_id: uuid.UUID) -> None:
        """Remove a tag: its taps are `tap_invalid` from now on."""
        nfc.delete_tag(db.uow(), audit.current_actor(), auth.current_merchant().merchant_id, tag_id)


@blp.route("/taps")
class Taps(MethodView):
    @auth.user
    @blp.arguments(TapCreateSchema())
    @blp.response(201, TapSchema)
    @blp.alt_response(409, response="CONFLICT")
    def post(self, data: dict[str, Any]) -> nfc.TapToken:
        """Verify a tap on a venue's NFC tag (the `picc_data` and `cmac` of the URL the tag
        gave the phone) and answer a single-use token for a check-in at that venue within
        2 minutes. A message that does not verify, of an unknown or removed tag: 422
        `tap_invalid`; a read counter not above every earlier accepted one: 409 `tap_replayed`."""
        return nfc.accept_tap(
            db.uow(),
            auth.current_user().user_id,
            data["picc_data"],
            data["cmac"],
            master_key(),
        )


@blp.route("/me/cards")
class Cards(MethodView):
    @auth.user
    @blp.response(200, CardListSchema)
    def get(self) -> dict[str, Any]:
        """The user's registered cards and wristbands (never their keys)."""
        return {"cards": nfc.list_cards(db.session(), auth.current_user().user_id)}

    @auth.user
    @blp.arguments(CardCreateSchema())
    @blp.response(201, CardCreatedSchema)
    @blp.alt_response(409, response="CONFLICT")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Register an NTAG 424 DNA card or wristband for check-ins without the phone: the
        keys and URL to program are shown once."""
        return nfc.register_card(
            db.uow(),
            auth.current_user().user_id,
            data["uid"],
            data["label"],
            master_key(),
            tap_base_url(),
        )


@blp.route("/me/cards/<uuid:card_id>")
class Card(MethodView):
    @auth.user
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, card_id: uuid.UUID) -> None:
        """Remove a card: it stops working at once."""
        nfc.remove_card(db.uow(), auth.current_user().user_id, card_id)


@blp.route("/me/member-code")
class MemberCode(MethodView):
    @auth.user
    @blp.response(200, MemberCodeSchema)
    def get(self) -> members.MemberCode:
        """The user's member code: 8 digits to show the merchant's staff for a check-in without
        the phone. It rotates every minute; the previous one is still accepted."""
        return members.current_member_code(db.uow(), auth.current_user().user_id, master_key())


@blp.route("/staff-checkins")
class StaffCheckins(MethodView):
    @auth.merchant("owner", "staff", devices=True)
    @blp.arguments(StaffCheckinCreateSchema())
    @blp.response(201, StaffCheckinSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(429, response="TOO_MANY_REQUESTS")
    @blp.doc(**IDEMPOTENCY_DOC)
    def post(self, data: dict[str, Any]) -> Response:
        """Record a guest's visit seen by staff at the venue, by the guest's member code or
        card. The answer is the check-in (`proof` `staff`), decided by the same rules as any;
        its unlocks land in the guest's wallet. A wrong or expired member code: 422
        `member_code_invalid` (10 wrong per key and venue, 30 per venue, in 15 min, then 429
        `too_many_attempts`); a bad card message: 422 `tap_invalid`; a replayed one: 409
        `tap_replayed`. A till device checks guests in at its own venue only (403
        `venue_not_paired`)."""
        principal = auth.current_merchant()
        auth.venue_scope(data["venue_id"])
        uow = db.uow()
        card = data.get("card") or {}
        command = StaffCheckinInput(
            venue_id=data["venue_id"],
            member_code=data.get("member_code"),
            picc_data=card.get("picc_data"),
            cmac=card.get("cmac"),
        )
        recorded: list[CheckinResult] = []

        def work() -> Response:
            try:
                result = staff_check_in(
                    uow,
                    audit.current_actor(),
                    principal.merchant_id,
                    command,
                    master_key(),
                    thresholds(),
                )
            except DomainError as error:
                # The refusal's record was written: answer it (and, under an Idempotency-Key,
                # store the answer) so that it commits instead of rolling back.
                refused = handle_domain_error(error)
                if isinstance(error, TooManyAttemptsError):
                    refused.headers["Retry-After"] = str(error.retry_after_s)
                return refused
            recorded.append(result)
            body = _STAFF_CHECKIN.dump(present(result))
            return Response(json.dumps(body), status=201, mimetype="application/json")

        response = idempotency.run(uow, f"key:{principal.key_id}", data, work)
        for result in recorded:
            if result.user_id is not None:
                observability.checkin_recorded(result.user_id, data["venue_id"], result)
        return response
