"""Small-distance geodesy for the simulated phone: a sphere is plenty at the scale of a walk.

Positions are `LatLon` (latitude first, as phones and the check-in call take them); GeoJSON is
the other way round, `[lon, lat]`. Over a few kilometres the spherical distance differs from the
server's WGS 84 geodesic by well under 1%, far less than GPS noise.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import NamedTuple

EARTH_RADIUS_M = 6_371_008.8  # the mean radius


class LatLon(NamedTuple):
    lat: float
    lon: float


def distance_m(a: LatLon, b: LatLon) -> float:
    """Great-circle metres between two positions (haversine)."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi = phi2 - phi1
    dlam = math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def offset(origin: LatLon, east_m: float, north_m: float) -> LatLon:
    """The position `east_m` east and `north_m` north of `origin` (flat locally)."""
    lat = origin.lat + math.degrees(north_m / EARTH_RADIUS_M)
    lon = origin.lon + math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(origin.lat))))
    return LatLon(lat, lon)


def towards(a: LatLon, b: LatLon, metres: float) -> LatLon:
    """The position `metres` along the straight line from `a` to `b` (b itself if it is closer)."""
    total = distance_m(a, b)
    if total <= metres or total == 0:
        return b
    f = metres / total
    return LatLon(a.lat + (b.lat - a.lat) * f, a.lon + (b.lon - a.lon) * f)


def path_length_m(points: list[LatLon]) -> float:
    return sum(distance_m(p, q) for p, q in pairwise(points))
