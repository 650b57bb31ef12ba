"""Venues: geofenced places of a merchant, nearby search, and rotating presence codes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Response
from flask.views import MethodView

from api import audit, auth, db
from api.jsonbody import Blueprint
from api.schemas import (
    NearbyArgsSchema,
    NearbySchema,
    PresenceCodeSchema,
    VenueCreateSchema,
    VenueListSchema,
    VenuePatchSchema,
    VenueSchema,
)
from geo import venues
from offers import measurement

blp = Blueprint("venues", __name__, url_prefix="/v1/venues", description="Venues and geofences")


@blp.route("")
class Venues(MethodView):
    @auth.merchant("owner")
    @blp.response(200, VenueListSchema)
    def get(self) -> dict[str, Any]:
        """The merchant's venues."""
        merchant_id = auth.current_merchant().merchant_id
        return db.read(
            lambda session: {
                "venues": [venues.venue_view(v) for v in venues.list_venues(session, merchant_id)]
            }
        )

    @auth.merchant("owner")
    @blp.arguments(VenueCreateSchema())
    @blp.response(201, VenueSchema)
    def post(self, data: dict[str, Any]) -> venues.VenueView:
        """Register a venue with a polygon geofence or a circle (`radius_m`) around its location.

        Invalid geometry is 422 `invalid_geometry`.
        """
        return venues.create_venue(
            db.uow(),
            audit.current_actor(),
            auth.current_merchant().merchant_id,
            venues.VenueInput(**data),
        )


@blp.route("/<uuid:venue_id>")
class VenueItem(MethodView):
    @auth.merchant("owner")
    @blp.response(200, VenueSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, venue_id: uuid.UUID) -> venues.VenueView:
        """One venue."""
        merchant_id = auth.current_merchant().merchant_id
        return db.read(
            lambda session: venues.venue_view(venues.get_venue(session, merchant_id, venue_id))
        )

    @auth.merchant("owner")
    @blp.arguments(VenuePatchSchema(partial=True))
    @blp.response(200, VenueSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def patch(self, data: dict[str, Any], venue_id: uuid.UUID) -> venues.VenueView:
        """Change some fields; a new location moves a circular geofence with it."""
        return venues.update_venue(
            db.uow(), audit.current_actor(), auth.current_merchant().merchant_id, venue_id, data
        )

    @auth.merchant("owner")
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, venue_id: uuid.UUID) -> None:
        """Remove a venue from every listing; its history stays for analytics."""
        venues.delete_venue(
            db.uow(), audit.current_actor(), auth.current_merchant().merchant_id, venue_id
        )


@blp.route("/<uuid:venue_id>/presence-code")
class PresenceCode(MethodView):
    @auth.merchant("owner", "staff", devices=True)
    @blp.response(200, PresenceCodeSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, venue_id: uuid.UUID) -> dict[str, Any]:
        """The venue's current presence code; it rotates every minute and the previous one is
        still accepted, so show it on a screen or refreshed QR at the venue. A till device
        reads its own venue's only (403 `venue_not_paired`)."""
        auth.venue_scope(venue_id)
        code, valid_until = venues.presence_code(
            db.session(), auth.current_merchant().merchant_id, venue_id, datetime.now(UTC)
        )
        return {"code": code, "valid_until": valid_until}


@blp.route("/nearby")
class Nearby(MethodView):
    @blp.arguments(NearbyArgsSchema(), location="query")
    @blp.response(200, NearbySchema)
    @blp.doc(security=[{}, {"userToken": []}])
    def get(self, args: dict[str, Any]) -> Response:
        """Venues nearest first, with their live offers (never codes).

        Exactly the `limit` live venues nearest on the WGS84 spheroid within `radius_m`
        (`distance_m` is that distance in metres), by id among equals. No auth needed; with a user token, the offers listed are recorded as impressions, once
        per user, offer and day.
        """
        # Each statement stands alone: the token, the listing, the impressions it records. The
        # listing may come from a replica (at most REPLICA_MAX_LAG_SECONDS behind); the token
        # and the impressions are the primary's. The listing's JSON is PostgreSQL's, passed
        # through as it is (geo/venues.py says how it matches the schema).
        conn = db.connection()
        user = auth.current_user_or_none(conn)
        where = args["lat"], args["lon"], args["radius_m"], args["limit"]
        pairs = user is not None
        if db.replicas() is None:
            found = venues.nearby(conn, *where, pairs=pairs)
        else:
            found = db.read(
                lambda session: venues.nearby(session, *where, pairs=pairs), fresh=False
            )
        if user is not None:
            measurement.record_impressions(conn, user.user_id, found.listed)
        return Response(found.body + "\n", mimetype="application/json")
