"""Nearby is exact (issue 21): the `limit` live venues nearest the point on the spheroid within
the radius, ordered by spheroid distance then id, whatever PostGIS's sphere (the index's order)
says.

At the equator a north-south metre is shorter on the spheroid than on PostGIS's sphere
(its radius of curvature, 6,335 km, against the sphere's 6,371 km) and an east-west one longer
(6,378 km): a venue due north looks 0.56% farther on the sphere than it is, one due east 0.11%
nearer. The first two tests build those cases by hand; the property test compares nearby with
the answer's definition, computed by brute force, on random venue sets.
"""

from __future__ import annotations

import json
import uuid
from functools import partial
from typing import Any

from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, text

from api import db
from geo.venues import nearby
from mobile_stub.client import Client
from tests.factories import venue_body

_PROJECT = text(
    "SELECT ST_X(p::geometry), ST_Y(p::geometry) FROM ST_Project("
    "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :distance, radians(:azimuth)) p"
)


def _place(app: Flask, lat: float, lon: float, distance: float, azimuth: float) -> dict[str, Any]:
    """The GeoJSON point at `distance` metres on the spheroid from (lat, lon), `azimuth` degrees
    clockwise from north."""
    with app.app_context():
        lon2, lat2 = (
            db.connection()
            .execute(_PROJECT, {"lat": lat, "lon": lon, "distance": distance, "azimuth": azimuth})
            .one()
        )
    return {"type": "Point", "coordinates": [lon2, lat2]}


def test_nearby_finds_a_venue_in_the_radius_behind_sphere_nearer_ones_outside_it(
    committed_api: Client, committed_owner: Client, committed_app: Flask
) -> None:
    """Three venues due east just outside the radius are nearer on the sphere than one due north
    just inside it: walking the index `limit` venues deep and then keeping those in the radius
    found none of them."""
    owner = committed_owner
    owner.create_venue(venue_body(name="north", location=_place(committed_app, 0, 0, 999, 0)))
    for azimuth in (89.0, 90.0, 91.0):
        location = _place(committed_app, 0, 0, 1000.5, azimuth)
        owner.create_venue(venue_body(name=f"east {azimuth}", location=location))
    found = committed_api.nearby(0, 0, radius_m=1000, limit=3)
    assert [(v["name"], v["distance_m"]) for v in found] == [("north", 999.0)]


def test_nearby_orders_by_the_spheroid_at_the_limit(
    committed_api: Client, committed_owner: Client, committed_app: Flask
) -> None:
    """The second nearest on the spheroid (due north, 501 m) is third on the sphere, behind one
    due west at 503 m: with `limit=2` the answer is the first two on the spheroid."""
    owner = committed_owner
    for name, distance, azimuth in [("east", 500, 90), ("west", 503, 270), ("north", 501, 0)]:
        location = _place(committed_app, 0, 0, distance, azimuth)
        owner.create_venue(venue_body(name=name, location=location))
    found = committed_api.nearby(0, 0, radius_m=5_000, limit=2)
    assert [(v["name"], v["distance_m"]) for v in found] == [("east", 500.0), ("north", 501.0)]
    found = committed_api.nearby(0, 0, radius_m=5_000, limit=3)
    assert [v["name"] for v in found] == ["east", "north", "west"]


# ---- nearby against its definition, on random venue sets ------------------------------------

_MERCHANT = text(
    "INSERT INTO merchants (id, name, email) VALUES (:id, 'Property', 'p@example.com')"
)
_VENUE = text(
    """
    INSERT INTO venues (id, merchant_id, name, timezone, location, geofence, radius_m,
                        checkin_cooldown_minutes, max_accuracy_m, presence_secret, deleted_at)
    SELECT :id, :merchant, 'v', 'UTC', p, ST_Multi(ST_Buffer(p::geometry, 0.0001)), 10, 0, 100,
           '\\x00', CASE WHEN :deleted THEN now() END
    FROM ST_Project(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :distance,
                    radians(:azimuth)) p
    """
)
# The answer's definition: every live venue, its spheroid distance, those within the radius,
# nearest first and by id among equals, the first `limit`.
_BRUTE_FORCE = text(
    """
    SELECT id::text, round(d::numeric, 2)::float8 FROM (
        SELECT id, ST_Distance(location, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography) d
        FROM venues WHERE deleted_at IS NULL
    ) v
    WHERE d <= :radius ORDER BY d, id LIMIT :limit
    """
)

_floats = partial(st.floats, allow_subnormal=False)  # PostgreSQL underflows on subnormals
# Directions where sphere and spheroid disagree most (north-south, east-west) and any other.
_AZIMUTH = st.one_of(st.sampled_from([0.0, 90.0, 180.0, 270.0]), _floats(0, 360))
# Distances as a share of the radius: many within a percent of it, where the two disagree. None
# below a micrometre but 0: PostGIS's KNN fails ("index returned tuples in wrong order") on a
# venue less than a nanometre from the point near the equator, where its index boxes (float4 in
# geocentric coordinates) see a distance its double arithmetic rounds to 0.
_SHARE = st.one_of(_floats(0.98, 1.02), _floats(1e-6, 1.5), st.sampled_from([0.0, 1.0]))
_VENUES = st.lists(
    st.tuples(
        _AZIMUTH,
        _SHARE,
        st.integers(1, 3),  # copies at the same point: ties, broken by id
        st.booleans() | st.just(False),  # deleted (one in four)
    ),
    max_size=15,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lat=st.sampled_from([0.0, 0.5, 45.0, 60.17, -89.0]) | _floats(-85, 85),
    lon=_floats(-180, 180),
    radius=st.sampled_from([1.0, 200.0, 1_000.0, 50_000.0]) | _floats(1, 50_000),
    limit=st.integers(1, 6),
    venues=_VENUES,
)
def test_nearby_is_the_brute_force_answer(
    engine: Engine,
    lat: float,
    lon: float,
    radius: float,
    limit: int,
    venues: list[tuple[float, float, int, bool]],
) -> None:
    with engine.connect() as conn:
        try:
            _add(conn, lat, lon, radius, venues)
            point = {"lat": lat, "lon": lon}
            expected = conn.execute(_BRUTE_FORCE, {**point, "radius": radius, "limit": limit})
            found = json.loads(nearby(conn, lat, lon, radius, limit).body)["venues"]
            assert [(v["id"], v["distance_m"]) for v in found] == [tuple(r) for r in expected]
        finally:
            conn.rollback()


def _add(
    conn: Connection,
    lat: float,
    lon: float,
    radius: float,
    venues: list[tuple[float, float, int, bool]],
) -> None:
    merchant = uuid.uuid4()
    conn.execute(_MERCHANT, {"id": merchant})
    rows = [
        {
            "id": uuid.uuid4(),
            "merchant": merchant,
            "lat": lat,
            "lon": lon,
            "distance": share * radius,
            "azimuth": azimuth,
            "deleted": deleted,
        }
        for azimuth, share, copies, deleted in venues
        for _ in range(copies)
    ]
    if rows:
        conn.execute(_VENUE, rows)
