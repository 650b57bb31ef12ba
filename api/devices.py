"""Till devices: pairing with a one-time code, the device list, revoking (offers/devices.py)."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask import Response
from flask.views import MethodView
from marshmallow import fields as f
from marshmallow import validate as v

from api import audit, auth, db
from api.jsonbody import Blueprint
from api.observability import request_id
from api.schemas import QueryFlag, Text, UtcDateTime
from core.audit import Actor
from core.errors import NotFoundError
from offers import devices

blp = Blueprint(
    "devices",
    __name__,
    url_prefix="/v1/devices",
    description="Till devices: paired to one venue with a one-time code, revocable at once",
)


class PairingCreateSchema(ma.Schema):
    venue_id = f.UUID(required=True, metadata={"description": "The venue the device works at"})
    label = Text(
        load_default=None,
        allow_none=True,
        validate=v.Length(0, 200),
        metadata={"description": "A name for the device, e.g. `Front counter`"},
    )


class PairingSchema(ma.Schema):
    id = f.UUID(required=True)
    venue_id = f.UUID(required=True)
    venue_name = f.String(required=True)
    label = f.String(allow_none=True)
    code = f.String(
        required=True,
        metadata={
            "description": "The one-time code, e.g. `7K3Q-XM9T`, shown only this once: type it "
            "on the device (case, spaces and dashes do not matter) or let it scan a QR code of "
            "`<dashboard>/dashboard/pair?code=<code>`"
        },
    )
    expires_at = UtcDateTime(required=True)


class PairSchema(ma.Schema):
    code = Text(required=True, validate=v.Length(1, 64))


class DeviceSchema(ma.Schema):
    id = f.UUID(required=True, metadata={"description": "The device's API key's id"})
    label = f.String(allow_none=True)
    venue_id = f.UUID(required=True)
    venue_name = f.String(required=True)
    venue_timezone = f.String(required=True)
    paired_at = UtcDateTime(required=True)
    last_used_at = UtcDateTime(
        allow_none=True, metadata={"description": "Its last request, to the minute"}
    )
    revoked_at = UtcDateTime(allow_none=True)


class PairedSchema(ma.Schema):
    device = f.Nested(DeviceSchema, required=True)
    api_key = f.String(
        required=True,
        metadata={"description": "The device's own key (role staff, this venue only), shown once"},
    )


class DeviceListArgsSchema(ma.Schema):
    include_revoked = QueryFlag(load_default=False, metadata={"enum": ["true", "false"]})


class DeviceListSchema(ma.Schema):
    devices = f.List(f.Nested(DeviceSchema), required=True)


@blp.route("/pairings")
class Pairings(MethodView):
    @auth.merchant("owner")
    @blp.arguments(PairingCreateSchema())
    @blp.response(201, PairingSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any]) -> devices.Pairing:
        """A one-time code that pairs one till device with a venue; it works once, for 10
        minutes. Show it (or its QR code) to the device. The code is shown only this once."""
        return devices.create_pairing(
            db.uow(),
            audit.current_actor(),
            auth.current_merchant().merchant_id,
            data["venue_id"],
            data["label"],
        )


@blp.route("/pair")
class Pair(MethodView):
    @blp.arguments(PairSchema())
    @blp.response(201, PairedSchema)
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Pair this device: exchange a pairing code for the device's own API key (role staff,
        bound to the code's venue), shown only this once. A wrong, used or expired code: 422
        `pairing_code_invalid`. No credentials needed: the code is the credential."""
        device, token = devices.pair_device(db.uow(), Actor(None, None, request_id()), data["code"])
        return {"device": device, "api_key": token}


@blp.after_request
def _no_store(response: Response) -> Response:
    """Answers carrying a secret (a pairing code, a device's key) are never cached."""
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route("")
class Devices(MethodView):
    @auth.merchant("owner")
    @blp.arguments(DeviceListArgsSchema(), location="query")
    @blp.response(200, DeviceListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The merchant's till devices with their venue and last use; working ones first.
        `include_revoked=true` lists revoked ones too."""
        return {
            "devices": devices.list_devices(
                db.session(),
                auth.current_merchant().merchant_id,
                include_revoked=args["include_revoked"],
            )
        }


@blp.route("/me")
class DeviceMe(MethodView):
    @auth.merchant("staff", devices=True)
    @blp.response(200, DeviceSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self) -> devices.Device:
        """The till device this key belongs to: its venue, label and pairing. A key that is
        not a till device's: 404."""
        return devices.get_device(db.session(), *_me())

    @auth.merchant("staff", devices=True)
    @blp.response(200, DeviceSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self) -> devices.Device:
        """Unpair this device: its key is revoked at once (this answer is its last)."""
        return devices.revoke_device(db.uow(), audit.current_actor(), *_me())


def _me() -> tuple[uuid.UUID, uuid.UUID]:
    principal = auth.current_merchant()
    if principal.venue_id is None:
        raise NotFoundError("this key is not a till device's")
    return principal.merchant_id, principal.key_id


@blp.route("/<uuid:device_id>")
class DeviceItem(MethodView):
    @auth.merchant("owner")
    @blp.response(200, DeviceSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, device_id: uuid.UUID) -> devices.Device:
        """Revoke a till device: its next request fails. Revoking it again changes nothing."""
        return devices.revoke_device(
            db.uow(), audit.current_actor(), auth.current_merchant().merchant_id, device_id
        )
