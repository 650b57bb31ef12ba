"""Wallet passes for the user's own active unlocks (offers/wallet.py; docs/integrations.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import marshmallow as ma
from flask import Response, current_app
from flask.views import MethodView

from api import auth, db
from api.jsonbody import Blueprint
from offers import wallet

blp = Blueprint(
    "wallet_passes",
    __name__,
    url_prefix="/v1/me/unlocks",
    description="Apple Wallet and Google Wallet passes for an unlocked code",
)

PKPASS = "application/vnd.apple.pkpass"


class GooglePassSchema(ma.Schema):
    url = ma.fields.String(
        required=True,
        metadata={"description": "Open it on the phone: Google Wallet offers to save the pass"},
    )


def _read(setting: str) -> bytes:
    return Path(current_app.config[setting]).read_bytes()


def apple_signer() -> wallet.AppleSigner:
    config = current_app.config
    names = (
        "APPLE_PASS_TYPE_ID",
        "APPLE_TEAM_ID",
        "APPLE_PASS_CERT_FILE",
        "APPLE_PASS_KEY_FILE",
        "APPLE_WWDR_CERT_FILE",
    )
    if not all(config.get(n) for n in names):
        raise wallet.WalletNotConfiguredError(
            "Apple Wallet passes are not set up on this service (APPLE_PASS_* settings)"
        )
    return wallet.AppleSigner.from_pem(
        config["APPLE_PASS_TYPE_ID"],
        config["APPLE_TEAM_ID"],
        _read("APPLE_PASS_CERT_FILE"),
        _read("APPLE_PASS_KEY_FILE"),
        _read("APPLE_WWDR_CERT_FILE"),
    )


def google_signer() -> wallet.GoogleSigner:
    config = current_app.config
    names = ("GOOGLE_WALLET_ISSUER_ID", "GOOGLE_WALLET_SERVICE_ACCOUNT", "GOOGLE_WALLET_KEY_FILE")
    if not all(config.get(n) for n in names):
        raise wallet.WalletNotConfiguredError(
            "Google Wallet passes are not set up on this service (GOOGLE_WALLET_* settings)"
        )
    return wallet.GoogleSigner.from_pem(
        config["GOOGLE_WALLET_ISSUER_ID"],
        config["GOOGLE_WALLET_SERVICE_ACCOUNT"],
        _read("GOOGLE_WALLET_KEY_FILE"),
    )


@blp.route("/<uuid:unlock_id>/apple-pass")
class ApplePass(MethodView):
    @auth.user
    @blp.response(200, content_type=PKPASS, description="The signed `.pkpass` file")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(410, response="GONE")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def get(self, unlock_id: uuid.UUID) -> Response:
        """The unlock as an Apple Wallet pass: the offer, the venue, the expiry and the code as
        a QR code in the till's format. A redeemed or expired code is 410 `unlock_not_active`;
        without the APPLE_PASS_* settings 503 `wallet_not_configured`."""
        data = wallet.pass_data(db.session(), auth.current_user().user_id, unlock_id)
        body = wallet.apple_pass(data, apple_signer())
        return Response(
            body,
            status=200,
            mimetype=PKPASS,
            headers={"Content-Disposition": f'attachment; filename="{unlock_id}.pkpass"'},
        )


@blp.route("/<uuid:unlock_id>/google-pass")
class GooglePass(MethodView):
    @auth.user
    @blp.response(200, GooglePassSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(410, response="GONE")
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def get(self, unlock_id: uuid.UUID) -> dict[str, Any]:
        """A "save to Google Wallet" link (a signed JWT) for the unlock. A redeemed or expired
        code is 410 `unlock_not_active`; without the GOOGLE_WALLET_* settings 503
        `wallet_not_configured`."""
        data = wallet.pass_data(db.session(), auth.current_user().user_id, unlock_id)
        return {"url": wallet.google_save_url(data, google_signer(), datetime.now(UTC))}
