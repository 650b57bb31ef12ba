"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import text

from api import db
from api.schemas import HealthSchema

blp = Blueprint("health", __name__, description="Service health")


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def get(self) -> dict[str, Any]:
        """200 when the service and its database are up; 503 problem+json otherwise."""
        db.session().execute(text("SELECT 1"))
        return {"status": "ok", "database": "ok"}
