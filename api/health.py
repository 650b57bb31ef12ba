"""Liveness and readiness, for load balancers and orchestrators.

`/healthz`: the service answers and its database is up (the contract's health check).
`/readyz`: and the database schema is one this version can serve: at this code's migration head,
or at a revision this code does not know, which a newer release's migrations wrote while this
one still serves (migrations are additive first, so the older version keeps working with the
newer schema until it is replaced). It also reports the webhook delivery worker (`webhooks`:
whether one has a recent heartbeat, and the queue): information, not a condition of readiness,
since the API serves and the outbox keeps events while no worker runs. A schema behind this code (migrations not applied yet) is 503
`not_ready`. A database that cannot be reached is 503 `service_unavailable` on both.
`/readyz` also reports each read replica's state and lag (`api/replicas.py`); a replica out of
rotation does not make the service unready, since the primary serves its reads.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from alembic.script import ScriptDirectory
from flask import current_app
from flask.views import MethodView
from sqlalchemy import text
from sqlalchemy.orm import Session

from api import db
from api.cli import alembic_config
from api.jsonbody import Blueprint
from api.replicas import STATES
from api.schemas import HealthSchema
from core import webhooks
from core.errors import DomainError

blp = Blueprint("health", __name__, description="Service health")


class NotReadyError(DomainError):
    status = 503
    code = "not_ready"
    title = "Not ready"


class ReplicaStatusSchema(ma.Schema):
    name = ma.fields.String(required=True, metadata={"description": "host:port/database"})
    state = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(STATES),
        metadata={
            "description": "`up` (in rotation), `lagging` (further behind than "
            "`REPLICA_MAX_LAG_SECONDS`), `down` (does not answer), `not_standby` (not in "
            "recovery), `unknown` (not checked yet)"
        },
    )
    lag_seconds = ma.fields.Float(
        allow_none=True, metadata={"description": "Replay lag in seconds; null when down"}
    )


class WebhookWorkerSchema(ma.Schema):
    worker = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(["running", "not_running"]),
        metadata={
            "description": "`running` when a delivery worker's heartbeat is recent; "
            "`not_running` does not make the API unready (events wait in the outbox)"
        },
    )
    workers = ma.fields.Integer(required=True)
    pending = ma.fields.Integer(required=True, metadata={"description": "Deliveries queued"})
    oldest_due_seconds = ma.fields.Float(
        required=True, metadata={"description": "How long the oldest due delivery has waited"}
    )


class ReadinessSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"description": "`ready`"})
    database = ma.fields.String(required=True, metadata={"description": "`ok`"})
    schema = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(["current", "ahead"]),
        metadata={
            "description": "`current`: at this version's migration head; `ahead`: migrated by "
            "a newer release (additive, so this one still serves)"
        },
    )
    revision = ma.fields.String(
        required=True, metadata={"description": "The database's migration revision"}
    )
    replicas = ma.fields.List(
        ma.fields.Nested(ReplicaStatusSchema),
        metadata={
            "description": "Each read replica (`DATABASE_REPLICA_URLS`), checked now; "
            "absent without replicas. A replica out of rotation does not make the service unready: "
            "its reads go to another replica or the primary."
        },
    )
    webhooks = ma.fields.Nested(
        WebhookWorkerSchema,
        required=True,
        metadata={"description": "The webhook delivery worker, as the database sees it"},
    )


_SELECT_1 = text("SELECT 1")


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def get(self) -> dict[str, Any]:
        """200 when the service and its database are up; 503 problem+json otherwise."""
        # On the autocommit connection: one round trip, no BEGIN and ROLLBACK, no ORM session.
        db.connection().execute(_SELECT_1)
        return {"status": "ok", "database": "ok"}


@blp.route("/readyz")
class Ready(MethodView):
    @blp.response(200, ReadinessSchema)
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def get(self) -> dict[str, Any]:
        """200 when the database is up and its schema is this version's (or a newer release's,
        additive); 503 problem+json otherwise: `not_ready` while migrations are pending,
        `service_unavailable` when the database cannot be reached."""
        session = db.session()
        applied: set[str] = set()
        if session.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL")):
            applied = set(session.scalars(text("SELECT version_num FROM alembic_version")))
        heads, known = _revisions()
        revision = ",".join(sorted(applied))
        found = db.replicas()
        replicas = {"replicas": found.status()} if found is not None else {}
        if applied == heads:
            return {
                "status": "ready",
                "database": "ok",
                "schema": "current",
                "revision": revision,
                **replicas,
                "webhooks": _webhooks(session),
            }
        if applied and not applied & known:
            return {
                "status": "ready",
                "database": "ok",
                "schema": "ahead",
                "revision": revision,
                **replicas,
                "webhooks": _webhooks(session),
            }
        raise NotReadyError(
            f"the database schema is at {revision or 'no revision'}; this version needs "
            f"{', '.join(sorted(heads))}: run `flask --app api.wsgi migrate`"
        )


def _webhooks(session: Session) -> dict[str, Any]:
    state = webhooks.queue_state(session)
    return {
        "worker": "running" if state.workers else "not_running",
        "workers": state.workers,
        "pending": state.pending,
        "oldest_due_seconds": round(state.oldest_due_s, 3),
    }


def _revisions() -> tuple[set[str], set[str]]:
    """This code's migration heads and every revision it knows, read once per app."""
    cached: tuple[set[str], set[str]] | None = current_app.extensions.get("migration_revisions")
    if cached is None:
        script = ScriptDirectory.from_config(alembic_config(current_app.config["DATABASE_URL"]))
        cached = (set(script.get_heads()), {rev.revision for rev in script.walk_revisions()})
        current_app.extensions["migration_revisions"] = cached
    return cached
