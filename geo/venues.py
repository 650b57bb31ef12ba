"""Venue use cases and the spatial queries over venues.

Every query is scoped to its merchant: another tenant's venue is simply not found. The use cases
(`create_venue`, `update_venue`, `delete_venue`) take a unit of work and an actor, lock what they
change, record it in the audit trail and commit; they answer the venue as the API shows it
(`venue_view`), which is also what the audit trail compares.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast
from zoneinfo import ZoneInfo, available_timezones

from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import MultiPolygon, Point
from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from core import audit
from core.errors import NotFoundError, ValidationError
from core.models import Venue
from core.uow import UnitOfWork
from geo import presence
from geo.geofence import DEFAULT_RADIUS_M, geofence_for, parse_point, to_geojson
from geo.verify import DEFAULT_TAP_RADIUS_M

DEFAULT_TIMEZONE = "UTC"
DEFAULT_COOLDOWN_MINUTES = 60
MAX_COOLDOWN_MINUTES = 7 * 24 * 60  # a week
DEFAULT_MAX_ACCURACY_M = 100.0
MIN_ACCURACY_LIMIT_M, MAX_ACCURACY_LIMIT_M = 1.0, 5_000.0  # bounds of a venue's max_accuracy_m
NEARBY_DEFAULT_RADIUS_M = 1_000.0
NEARBY_MIN_RADIUS_M, NEARBY_MAX_RADIUS_M = 1.0, 50_000.0
NEARBY_DEFAULT_LIMIT = 20
NEARBY_MAX_LIMIT = 100


@dataclass(frozen=True)
class VenueInput:
    """A venue as the merchant described it; absent optional fields are None."""

    name: str
    location: Any
    category: str | None = None
    address: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    geofence: Any = None
    radius_m: float | None = None
    checkin_cooldown_minutes: int = DEFAULT_COOLDOWN_MINUTES
    max_accuracy_m: float = DEFAULT_MAX_ACCURACY_M
    tap_radius_m: float = DEFAULT_TAP_RADIUS_M


def check_timezone(name: str) -> ZoneInfo:
    """The zone of an IANA time zone name (`timezone_names`), or `ValidationError`."""
    if name not in _timezones():
        raise ValidationError(
            f"timezone {name!r} is not an IANA time zone name (e.g. 'Europe/Helsinki')",
            errors={"timezone": ["not an IANA time zone name, e.g. 'Europe/Helsinki'"]},
        )
    return ZoneInfo(name)


VenueView = dict[str, Any]


def venue_view(venue: Venue) -> VenueView:
    """The venue as the API shows it."""
    return {
        "id": venue.id,
        "name": venue.name,
        "category": venue.category,
        "address": venue.address,
        "timezone": venue.timezone,
        "location": to_geojson(venue_point(venue)),
        "geofence": to_geojson(venue_fence(venue)),
        "radius_m": venue.radius_m,
        "checkin_cooldown_minutes": venue.checkin_cooldown_minutes,
        "max_accuracy_m": venue.max_accuracy_m,
        "tap_radius_m": venue.tap_radius_m,
        "created_at": venue.created_at,
        "updated_at": venue.updated_at,
    }


def create_venue(
    uow: UnitOfWork, actor: audit.Actor, merchant_id: uuid.UUID, data: VenueInput
) -> VenueView:
    """Register a venue with a polygon fence or a circle around its location."""
    check_timezone(data.timezone)
    location = parse_point(data.location)
    fence = geofence_for(location, data.geofence, data.radius_m)
    with uow:
        venue = Venue(
            merchant_id=merchant_id,
            name=data.name,
            category=data.category,
            address=data.address,
            timezone=data.timezone,
            location=_geography(location),
            geofence=from_shape(fence, srid=4326),
            radius_m=None if data.geofence is not None else (data.radius_m or DEFAULT_RADIUS_M),
            checkin_cooldown_minutes=data.checkin_cooldown_minutes,
            max_accuracy_m=data.max_accuracy_m,
            tap_radius_m=data.tap_radius_m,
            presence_secret=presence.new_secret(),
        )
        uow.session.add(venue)
        uow.session.flush()
        view = venue_view(venue)
        audit.record(
            uow.session, merchant_id, actor, "venue.create", venue.id, audit.diff(None, view)
        )
        uow.commit()
        return view


def get_venue(
    session: Session, merchant_id: uuid.UUID, venue_id: uuid.UUID, *, lock: bool = False
) -> Venue:
    """The merchant's live venue; with `lock`, its row is locked until the commit."""
    query = select(Venue).where(
        Venue.id == venue_id, Venue.merchant_id == merchant_id, Venue.deleted_at.is_(None)
    )
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    venue = session.scalar(query)
    if venue is None:
        raise NotFoundError("no such venue")
    return venue


def get_live_venue(session: Session, venue_id: uuid.UUID) -> Venue:
    """Any merchant's live venue (for mobile users, who check in anywhere)."""
    venue = session.scalar(select(Venue).where(Venue.id == venue_id, Venue.deleted_at.is_(None)))
    if venue is None:
        raise NotFoundError("no such venue")
    return venue


def list_venues(session: Session, merchant_id: uuid.UUID) -> list[Venue]:
    return list(
        session.scalars(
            select(Venue)
            .where(Venue.merchant_id == merchant_id, Venue.deleted_at.is_(None))
            .order_by(Venue.created_at, Venue.id)
        )
    )


def update_venue(
    uow: UnitOfWork,
    actor: audit.Actor,
    merchant_id: uuid.UUID,
    venue_id: uuid.UUID,
    changes: dict[str, Any],
) -> VenueView:
    """Apply a partial update. A new location moves a circular fence with it."""
    if "timezone" in changes:
        check_timezone(changes["timezone"])
    with uow:
        venue = get_venue(uow.session, merchant_id, venue_id, lock=True)
        before = audit.jsonable(venue_view(venue))
        for field in (
            "name",
            "category",
            "address",
            "timezone",
            "checkin_cooldown_minutes",
            "max_accuracy_m",
            "tap_radius_m",
        ):
            if field in changes:
                setattr(venue, field, changes[field])
        if changes.keys() & {"location", "geofence", "radius_m"}:
            location = (
                parse_point(changes["location"]) if "location" in changes else venue_point(venue)
            )
            if changes.keys() & {"geofence", "radius_m"}:
                geofence, radius = changes.get("geofence"), changes.get("radius_m")
            elif venue.radius_m is not None:
                geofence, radius = None, venue.radius_m
            else:
                geofence, radius = to_geojson(venue_fence(venue)), None
            fence = geofence_for(location, geofence, radius)
            venue.location = _geography(location)
            venue.geofence = from_shape(fence, srid=4326)
            venue.radius_m = None if geofence is not None else (radius or DEFAULT_RADIUS_M)
        venue.updated_at = datetime.now(UTC)
        uow.session.flush()
        view = venue_view(venue)
        audit.record(
            uow.session, merchant_id, actor, "venue.update", venue.id, audit.diff(before, view)
        )
        uow.commit()
        return view


def delete_venue(
    uow: UnitOfWork, actor: audit.Actor, merchant_id: uuid.UUID, venue_id: uuid.UUID
) -> None:
    """Soft delete: the venue disappears from every listing, its history stays for analytics."""
    with uow:
        venue = get_venue(uow.session, merchant_id, venue_id, lock=True)
        before = venue_view(venue)
        venue.deleted_at = datetime.now(UTC)
        uow.session.flush()
        audit.record(
            uow.session, merchant_id, actor, "venue.delete", venue_id, audit.diff(before, None)
        )
        uow.commit()


def presence_code(
    session: Session, merchant_id: uuid.UUID, venue_id: uuid.UUID, now: datetime
) -> tuple[str, datetime]:
    venue = get_venue(session, merchant_id, venue_id)
    return presence.current_code(venue.presence_secret, now)


def venue_point(venue: Venue) -> Point:
    return cast(Point, to_shape(venue.location))


def venue_fence(venue: Venue) -> MultiPolygon:
    return cast(MultiPolygon, to_shape(venue.geofence))


# Nearby's whole answer is rendered by PostgreSQL and passed through as bytes (issue 21): the
# view does no per-venue or per-offer work in Python. Each offer's JSON is ready in
# `offers.listing`, rendered by a trigger whenever the offer is written (migration 0019); the
# statement adds the venues around them. It is what the marshmallow schemas
# (`api.schemas.NearbySchema`) would give for the same rows: the same fields in the same order,
# the same values (`tests/integration/test_venues.py` checks it against each offer's own view and
# `offers.rules.describe_rule`). Where the text differs, the values do not: PostgreSQL writes
# `12.30` for Python's `12.3`, `25` for `25.0`, UTF-8 where Flask writes `\u00e4`, and spaces
# around `:`. `distance_m` is rounded as a decimal (half away from zero) where Python rounded
# the binary double (half to even): they can differ in the last digit only when the distance
# is within about 1e-12 m of a half centimetre.
#
# Nearby is exact: the `limit` live venues nearest on the spheroid within the radius, nearest
# first and by id among equals. Two lookups on the partial GiST index of live venues' locations,
# each reading about `limit` venues whatever the radius or the density:
#
# 1. `near`, a KNN walk: the index scan yields venues in distance order (`<->`, its `Order By`)
#    and stops at `limit`. That order is PostGIS's sphere, not the spheroid (they disagree by up
#    to 0.56%), so these are not always the answer: a venue due north just inside the radius can
#    be behind `limit` venues due east just outside it. But they bound it: with D the largest
#    spheroid distance among them, a venue farther than D is behind all `limit` of them, so
#    every venue of the answer is within min(D, radius) (and when fewer than `limit` venues are
#    live, `near` is all of them and so is the bound).
# 2. `found`, the live venues within that bound on the spheroid (`ST_DWithin`: an index lookup
#    of the bound's box, which PostGIS widens by 1% to hold spheroid distances, then the exact
#    test; about `limit` venues), those within the radius, ordered and cut to `limit`. The bound
#    has a millimetre to spare: `ST_Distance` is rounded to 10 nm, `ST_DWithin` compares the
#    unrounded distance.
#
# The radius is never the index lookup's bound: PostgreSQL's estimate of how many venues
# `ST_DWithin` keeps is far too low in a dense city, so with the radius next to the KNN order it
# fetched every venue in the radius and sorted them (235 ms at 50 km among 100k venues). The
# query point is written out where it is used, not taken from a CTE (an index scan can be ordered
# only by a constant, not by a column of a materialised CTE).
#
# It answers one row: `body`, the response's JSON text, and `listed`, when `:pairs` (a user is
# asking, whose impressions are recorded), `[[venue id, [offer ids]], ...]`.
_POINT = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography"
_NEARBY_SQL = text(
    f"""
    WITH near AS (
        SELECT v.location
        FROM venues v
        WHERE v.deleted_at IS NULL
        ORDER BY v.location <-> {_POINT}
        LIMIT :limit
    ), found AS (
        SELECT v.id, v.name, v.category, ST_Distance(v.location, {_POINT}) AS distance_m,
               ST_X(v.location::geometry) AS lon, ST_Y(v.location::geometry) AS lat
        FROM venues v
        WHERE v.deleted_at IS NULL
          AND ST_DWithin(v.location, {_POINT}, LEAST(
                  (SELECT max(ST_Distance(n.location, {_POINT})) FROM near n), :radius) + 0.001)
          AND ST_Distance(v.location, {_POINT}) <= :radius
        ORDER BY distance_m, v.id
        LIMIT :limit
    )
    SELECT json_build_object('venues', COALESCE(json_agg(json_build_object(
               'id', id, 'name', name, 'category', category,
               'distance_m', round(distance_m::numeric, 2),
               'location', json_build_object('type', 'Point',
                                             'coordinates', json_build_array(lon, lat)),
               'offers', COALESCE(offers, '[]'::json))
               ORDER BY distance_m, id), '[]'::json))::text AS body,
           json_agg(json_build_array(id, offer_ids) ORDER BY distance_m, id)
               FILTER (WHERE :pairs AND offer_ids IS NOT NULL) AS listed
    FROM found n
    LEFT JOIN LATERAL (
        SELECT json_agg(f.listing ORDER BY f.created_at, f.id) AS offers,
               array_agg(f.id ORDER BY f.created_at, f.id) AS offer_ids
        FROM offer_venues ov JOIN offers f ON f.id = ov.offer_id
        WHERE ov.venue_id = n.id AND f.status = 'active'
          AND (f.starts_at IS NULL OR f.starts_at <= now())
          AND (f.ends_at IS NULL OR f.ends_at > now())
    ) o ON true
    """
)


@dataclass(frozen=True)
class Nearby:
    """Nearby's answer: `body`, the JSON text of `{"venues": [...]}`, and, when asked for, the
    (venue id, offer id) pairs it lists (as text)."""

    body: str
    listed: list[tuple[str, str]]


def nearby(
    conn: Session | Connection,
    lat: float,
    lon: float,
    radius_m: float,
    limit: int,
    *,
    pairs: bool = False,
) -> Nearby:
    row = conn.execute(
        _NEARBY_SQL,
        {"lat": lat, "lon": lon, "radius": radius_m, "limit": limit, "pairs": pairs},
    ).one()
    listed = [(venue, offer) for venue, offers in row.listed or () for offer in offers]
    return Nearby(row.body, listed)


def _geography(point: Point) -> Any:
    return from_shape(point, srid=4326)


def timezone_names() -> list[str]:
    """The IANA time zone names a venue may take, sorted (for pickers)."""
    return sorted(_timezones())


@cache
def _timezones() -> frozenset[str]:
    """The IANA zone and link names zoneinfo can load here, without what is not a time zone of a
    place: `localtime` (a copy of the server's own zone), `posixrules`, `Factory` (a zone whose
    abbreviation says "local time is unknown") and anything else not spelled like an IANA name,
    each part of which starts with an upper-case ASCII letter ("Europe/Helsinki", "Etc/GMT+2")."""
    return frozenset(
        name
        for name in available_timezones()
        if name != "Factory"
        and all(part[:1].isascii() and part[:1].isupper() for part in name.split("/"))
    )
