"""The audit trail over HTTP: the owner reads it, and views name the actor of their changes.

The use cases record their own events in their transaction (`core/audit.py`); views hand them
`current_actor()`: the request's API key, whose request id ties the event to the request's log
line. `GET /v1/merchants/me/audit` (owner) lists the events newest first.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from marshmallow import fields as f
from marshmallow import validate as v

from api import auth, db
from api.jsonbody import Blueprint
from api.observability import request_id
from api.schemas import QueryInteger, UtcDateTime
from core import audit

blp = Blueprint(
    "audit",
    __name__,
    url_prefix="/v1",
    description="The audit trail: who changed what, and when",
)

MAX_PAGE = 200


class AuditArgsSchema(ma.Schema):
    limit = QueryInteger(load_default=50, validate=v.Range(1, MAX_PAGE))
    before = f.UUID(
        load_default=None,
        metadata={"description": "An event's id: list only the events recorded before it"},
    )
    object_id = f.UUID(
        load_default=None, metadata={"description": "Only the events of this object"}
    )


class AuditEventSchema(ma.Schema):
    id = f.UUID(required=True)
    created_at = UtcDateTime(required=True)
    action = f.String(
        required=True,
        validate=v.OneOf(audit.ACTIONS),
        metadata={"description": "`<object_type>.<verb>`, e.g. `offer.activate`"},
    )
    object_type = f.String(
        required=True,
        metadata={
            "description": "merchant, venue, offer, key, redemption, staff_user, "
            "device_pairing, device or feedback_reply"
        },
    )
    object_id = f.UUID(required=True)
    actor_key_id = f.UUID(
        required=True,
        allow_none=True,
        metadata={"description": "The API key that acted; null for what sign-up created"},
    )
    actor_role = f.String(required=True, allow_none=True)
    request_id = f.String(
        required=True,
        allow_none=True,
        metadata={"description": "The request's X-Request-ID, as in the service's logs"},
    )
    changes = f.Dict(
        keys=f.String(),
        values=f.List(f.Raw(allow_none=True)),
        required=True,
        metadata={
            "description": "Each changed field as `[old, new]`: `[null, value]` when the object "
            "was created, `[value, null]` when it was deleted. Never a secret."
        },
    )


class AuditListSchema(ma.Schema):
    events = f.List(f.Nested(AuditEventSchema), required=True)
    next_before = f.UUID(
        required=True,
        allow_none=True,
        metadata={"description": "Pass as `before` for the next page; null on the last page"},
    )


@blp.route("/merchants/me/audit")
class AuditTrail(MethodView):
    @auth.merchant("owner")
    @blp.arguments(AuditArgsSchema(), location="query")
    @blp.response(200, AuditListSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The merchant's audit trail, newest first: every change to its venues, offers, keys,
        redemptions and staff accounts, with the key that made it. An unknown `before` is 404."""
        events = db.read(
            lambda session: audit.list_events(
                session,
                auth.current_merchant().merchant_id,
                limit=args["limit"],
                before=args["before"],
                object_id=args["object_id"],
            )
        )
        more = len(events) == args["limit"]
        return {"events": events, "next_before": events[-1].id if more else None}


# ---- the actor, for the views ------------------------------------------------------------------


def current_actor() -> audit.Actor:
    """The request's API key, as the actor of what it changes."""
    principal = auth.current_merchant()
    return audit.Actor(principal.key_id, principal.role, request_id())
