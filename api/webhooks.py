"""Webhook endpoints (owner only): register, list, stop; their deliveries, and replay
(core/webhooks.py; docs/integrations.md)."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from flask import current_app
from flask.views import MethodView
from marshmallow import fields as f
from marshmallow import validate as v

from api import audit, auth, db
from api.jsonbody import Blueprint
from api.schemas import QueryInteger, Text, UtcDateTime
from core import webhooks

blp = Blueprint(
    "webhooks",
    __name__,
    url_prefix="/v1/merchants/me/webhooks",
    description="Signed webhooks (Standard Webhooks) of the merchant's events",
)


def policy() -> webhooks.UrlPolicy:
    return webhooks.UrlPolicy(
        allow_http_loopback=bool(current_app.config["WEBHOOKS_ALLOW_HTTP_LOOPBACK"])
    )


class WebhookCreateSchema(ma.Schema):
    url = Text(
        required=True,
        validate=v.Length(1, webhooks.MAX_URL_LENGTH),
        metadata={
            "description": "An `https` URL on a public address (private, loopback, link-local "
            "and metadata addresses are refused, here and at every delivery)"
        },
    )
    events = f.List(
        Text(validate=v.OneOf(webhooks.EVENT_TYPES)),
        required=True,
        validate=v.Length(1, len(webhooks.EVENT_TYPES)),
    )


class WebhookSchema(ma.Schema):
    id = f.UUID(required=True)
    url = f.String(required=True)
    events = f.List(f.String(validate=v.OneOf(webhooks.EVENT_TYPES)), required=True)
    status = f.String(
        required=True,
        validate=v.OneOf(["active", "failing"]),
        metadata={
            "description": "`failing` once a delivery gave up after its retry window; the next "
            "successful delivery makes it `active` again"
        },
    )
    failing_since = UtcDateTime(allow_none=True)
    created_at = UtcDateTime(required=True)


class WebhookCreatedSchema(WebhookSchema):
    secret = f.String(
        required=True,
        metadata={
            "description": "The signing secret (`whsec_` and base64), shown only this once: "
            "verify `webhook-signature` with it"
        },
    )


class WebhookListSchema(ma.Schema):
    webhooks = f.List(f.Nested(WebhookSchema), required=True)


class AttemptSchema(ma.Schema):
    attempted_at = UtcDateTime(required=True)
    status_code = f.Integer(allow_none=True)
    error = f.String(allow_none=True)
    duration_ms = f.Integer(required=True)


class DeliverySchema(ma.Schema):
    id = f.UUID(required=True)
    webhook_id = f.String(
        required=True, metadata={"description": "The `webhook-id` header, the same on every retry"}
    )
    type = f.String(required=True, validate=v.OneOf(webhooks.EVENT_TYPES))
    status = f.String(required=True, validate=v.OneOf(webhooks.DELIVERY_STATUSES))
    attempts = f.Integer(required=True)
    created_at = UtcDateTime(required=True)
    next_attempt_at = UtcDateTime(allow_none=True)
    give_up_at = UtcDateTime(required=True)
    delivered_at = UtcDateTime(allow_none=True)
    last_status_code = f.Integer(allow_none=True)
    last_error = f.String(allow_none=True)
    recent_attempts = f.List(f.Nested(AttemptSchema), required=True)


class DeliveryListSchema(ma.Schema):
    deliveries = f.List(f.Nested(DeliverySchema), required=True)


class DeliveryArgsSchema(ma.Schema):
    limit = QueryInteger(load_default=50, validate=v.Range(1, 200))


class ReplaySchema(ma.Schema):
    status = f.String(required=True, metadata={"description": "`pending`: sent again shortly"})


@blp.route("")
class Webhooks(MethodView):
    @auth.merchant("owner")
    @blp.arguments(WebhookCreateSchema())
    @blp.response(201, WebhookCreatedSchema)
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Register a webhook endpoint for some event types; the answer's `secret` signs every
        delivery and is shown only this once. A refused URL is 422 `webhook_url_refused`."""
        return webhooks.create_endpoint(
            db.uow(),
            audit.current_actor(),
            auth.current_merchant().merchant_id,
            data["url"],
            data["events"],
            policy(),
        )

    @auth.merchant("owner")
    @blp.response(200, WebhookListSchema)
    def get(self) -> dict[str, Any]:
        """The merchant's live webhook endpoints (never their secrets)."""
        return {
            "webhooks": webhooks.list_endpoints(db.session(), auth.current_merchant().merchant_id)
        }


@blp.route("/<uuid:webhook_id>")
class Webhook(MethodView):
    @auth.merchant("owner")
    @blp.response(200, WebhookSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, webhook_id: uuid.UUID) -> dict[str, Any]:
        """Stop an endpoint: nothing more is sent to it; its pending deliveries end `failed`."""
        return webhooks.delete_endpoint(
            db.uow(), audit.current_actor(), auth.current_merchant().merchant_id, webhook_id
        )


@blp.route("/<uuid:webhook_id>/deliveries")
class Deliveries(MethodView):
    @auth.merchant("owner")
    @blp.arguments(DeliveryArgsSchema(), location="query")
    @blp.response(200, DeliveryListSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict[str, Any], webhook_id: uuid.UUID) -> dict[str, Any]:
        """The endpoint's recent deliveries, newest first, with their recent attempts."""
        return {
            "deliveries": webhooks.list_deliveries(
                db.session(), auth.current_merchant().merchant_id, webhook_id, args["limit"]
            )
        }


@blp.route("/<uuid:webhook_id>/deliveries/<uuid:delivery_id>/replay")
class Replay(MethodView):
    @auth.merchant("owner")
    @blp.response(202, ReplaySchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def post(self, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> dict[str, Any]:
        """Send a delivery again, with the same `webhook-id`, on a fresh retry window."""
        webhooks.replay_delivery(
            db.uow(),
            audit.current_actor(),
            auth.current_merchant().merchant_id,
            webhook_id,
            delivery_id,
        )
        return {"status": webhooks.PENDING}
