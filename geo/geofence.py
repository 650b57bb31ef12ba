"""Geofences: GeoJSON in, validated Shapely geometry out (x is longitude, WGS 84).

A venue is fenced either by a polygon the merchant draws or by a circle around its location.
Everything a person could get wrong is refused here with a message they can act on: the error
says which ring or position is at fault and what a valid value looks like.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer
from shapely import make_valid
from shapely.affinity import translate
from shapely.geometry import MultiPolygon, Point, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from core.errors import InvalidGeometryError

WGS84 = Geod(ellps="WGS84")
GEOGRAPHIC = CRS.from_epsg(4326)

MIN_RADIUS_M = 10.0
MAX_RADIUS_M = 10_000.0
DEFAULT_RADIUS_M = 50.0
MIN_AREA_M2 = 1.0
# The largest plausible venue (an airport, a theme park). Anything bigger is a mistake.
MAX_AREA_M2 = 50_000_000.0
MAX_POSITIONS = 5_000
# A fence must contain its venue's location or lie within this distance of it.
MAX_LOCATION_OFFSET_M = 1_000.0
CIRCLE_SEGMENTS = 64


def parse_point(value: Any, field: str = "location") -> Point:
    """A GeoJSON Point as a Shapely point, or `InvalidGeometryError`."""
    if not isinstance(value, dict) or value.get("type") != "Point":
        raise _error(field, 'must be a GeoJSON Point: {"type": "Point", "coordinates": [lon, lat]}')
    return Point(_position(value.get("coordinates"), field))


def parse_polygonal(value: Any, field: str = "geofence") -> MultiPolygon:
    """A GeoJSON Polygon or MultiPolygon as a valid MultiPolygon, or `InvalidGeometryError`."""
    if not isinstance(value, dict) or value.get("type") not in ("Polygon", "MultiPolygon"):
        raise _error(field, "must be a GeoJSON Polygon or MultiPolygon")
    coords = value.get("coordinates")
    if value["type"] == "Polygon":
        polygons = [_polygon(coords, field)]
    else:
        if not isinstance(coords, list) or not coords:
            raise _error(field, "a MultiPolygon needs a non-empty list of polygons")
        polygons = [_polygon(p, f"{field} polygon {i}") for i, p in enumerate(coords)]
    shape = MultiPolygon(polygons)
    if sum(len(p.exterior.coords) + sum(len(r.coords) for r in p.interiors) for p in polygons) > (
        MAX_POSITIONS
    ):
        raise _error(field, f"has more than {MAX_POSITIONS} positions; simplify it")
    if not shape.is_valid:
        raise _error(
            field,
            f"is not a valid shape ({explain_validity(shape)}); "
            "rings must not cross themselves or each other",
        )
    for polygon in polygons:
        west, _, east, _ = polygon.bounds
        if east - west > 180:
            raise _error(
                field,
                "spans more than 180 degrees of longitude; a fence that crosses the antimeridian "
                "must be split there into a MultiPolygon (RFC 7946, section 3.1.9)",
            )
    _check_area(shape, field)
    return shape


def circle(center: Point, radius_m: float, field: str = "radius_m") -> MultiPolygon:
    """A geodesic circle as a polygon of `CIRCLE_SEGMENTS` sides, split at the antimeridian."""
    if not math.isfinite(radius_m) or not MIN_RADIUS_M <= radius_m <= MAX_RADIUS_M:
        raise _error(field, f"must be between {MIN_RADIUS_M:g} and {MAX_RADIUS_M:g} metres")
    azimuths = [i * 360.0 / CIRCLE_SEGMENTS for i in range(CIRCLE_SEGMENTS)]
    lons, lats, _ = WGS84.fwd(
        [center.x] * CIRCLE_SEGMENTS,
        [center.y] * CIRCLE_SEGMENTS,
        azimuths,
        [radius_m] * CIRCLE_SEGMENTS,
    )
    if max(abs(lat) for lat in lats) >= 89.9:
        raise _error(field, "a circle this close to a pole is not supported; draw a polygon")
    # Unwrap longitudes around the centre so the ring is continuous, then fold back into range.
    ring = [(center.x + _wrap(lon - center.x), lat) for lon, lat in zip(lons, lats, strict=True)]
    return _fold_antimeridian(Polygon(ring))


def geofence_for(location: Point, geofence: Any, radius_m: float | None) -> MultiPolygon:
    """The fence of a venue: the polygon given, or else a circle of `radius_m` (default 50 m)."""
    if geofence is not None and radius_m is not None:
        raise _error("geofence", "send either geofence or radius_m, not both")
    if geofence is not None:
        shape = parse_polygonal(geofence)
        if distance_m(location, shape) > MAX_LOCATION_OFFSET_M:
            raise _error(
                "geofence",
                f"is more than {MAX_LOCATION_OFFSET_M:g} m from the venue's location; "
                "check that positions are [longitude, latitude]",
            )
        return shape
    return circle(location, DEFAULT_RADIUS_M if radius_m is None else radius_m)


def distance_m(point: Point, shape: BaseGeometry) -> float:
    """Geodesic distance in metres from a point to a shape (0 inside it).

    The shape is projected into an azimuthal equidistant projection centred on the point, where
    distances from the centre are true geodesic distances: right at high latitudes and across
    the antimeridian, where degrees would be wrong.
    """
    if shape.covers(point):
        return 0.0
    return float(local_projection(point, shape).distance(Point(0.0, 0.0)))


def local_projection(center: Point, shape: BaseGeometry) -> BaseGeometry:
    """`shape` in metres, in an azimuthal equidistant projection centred on `center`."""
    crs = CRS.from_proj4(
        f"+proj=aeqd +lat_0={center.y!r} +lon_0={center.x!r} +datum=WGS84 +units=m +no_defs"
    )
    to_local = Transformer.from_crs(GEOGRAPHIC, crs, always_xy=True)

    def project(coords: np.ndarray) -> np.ndarray:
        x, y = to_local.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(shape, project)


def area_m2(shape: BaseGeometry) -> float:
    area, _ = WGS84.geometry_area_perimeter(shape)
    return abs(float(area))


def to_geojson(shape: BaseGeometry) -> dict[str, Any]:
    """GeoJSON for a point or a (multi)polygon; one polygon is answered as a Polygon."""
    if isinstance(shape, MultiPolygon) and len(shape.geoms) == 1:
        shape = shape.geoms[0]
    if isinstance(shape, Point):
        return {"type": "Point", "coordinates": [shape.x, shape.y]}
    if isinstance(shape, Polygon):
        return {"type": "Polygon", "coordinates": _polygon_coords(shape)}
    if isinstance(shape, MultiPolygon):
        return {"type": "MultiPolygon", "coordinates": [_polygon_coords(p) for p in shape.geoms]}
    raise TypeError(f"no GeoJSON for {shape.geom_type}")


def _polygon_coords(polygon: Polygon) -> list[list[list[float]]]:
    rings = [polygon.exterior, *polygon.interiors]
    return [[[x, y] for x, y, *_ in ring.coords] for ring in rings]


def _position(value: Any, field: str) -> tuple[float, float]:
    if (
        not isinstance(value, list | tuple)
        or len(value) not in (2, 3)
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise _error(field, "a position is [longitude, latitude] (two numbers)")
    lon, lat = float(value[0]), float(value[1])
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise _error(field, "coordinates must be finite numbers")
    if not -180.0 <= lon <= 180.0:
        raise _error(field, f"longitude {lon:g} is out of range (-180 to 180)")
    if not -90.0 <= lat <= 90.0:
        raise _error(field, f"latitude {lat:g} is out of range (-90 to 90)")
    return lon, lat


def _polygon(value: Any, field: str) -> Polygon:
    if not isinstance(value, list) or not value:
        raise _error(field, "a polygon is a non-empty list of linear rings")
    rings: list[list[tuple[float, float]]] = []
    for i, ring in enumerate(value):
        name = "the outer ring" if i == 0 else f"hole {i}"
        if not isinstance(ring, list) or len(ring) < 4:
            raise _error(field, f"{name} needs at least 4 positions (a closed triangle)")
        if len(ring) > MAX_POSITIONS:
            raise _error(field, f"{name} has more than {MAX_POSITIONS} positions; simplify it")
        positions = [_position(p, field) for p in ring]
        if positions[0] != positions[-1]:
            raise _error(field, f"{name} is not closed: its last position must equal its first")
        if len(set(positions)) < 3:
            raise _error(field, f"{name} needs at least 3 distinct positions")
        rings.append(positions)
    return Polygon(rings[0], rings[1:])


def _check_area(shape: BaseGeometry, field: str) -> None:
    area = area_m2(shape)
    if area < MIN_AREA_M2:
        raise _error(field, "encloses no area; a fence needs at least 1 square metre")
    if area > MAX_AREA_M2:
        raise _error(
            field,
            f"encloses {area / 1e6:,.0f} km², more than the {MAX_AREA_M2 / 1e6:g} km² a venue "
            "can cover; check that positions are [longitude, latitude]",
        )


def _wrap(delta: float) -> float:
    return (delta + 180.0) % 360.0 - 180.0


def _fold_antimeridian(polygon: Polygon) -> MultiPolygon:
    world = box(-180.0, -90.0, 180.0, 90.0)
    parts = [polygon.intersection(world)]
    for shift in (-360.0, 360.0):
        spill = polygon.intersection(box(-180.0 - shift, -90.0, 180.0 - shift, 90.0))
        if not spill.is_empty:
            parts.append(translate(spill, xoff=shift))
    polygons: list[Polygon] = []
    for part in parts:
        part = make_valid(part) if not part.is_valid else part
        if isinstance(part, Polygon) and not part.is_empty:
            polygons.append(part)
        elif isinstance(part, MultiPolygon):
            polygons.extend(part.geoms)
    return MultiPolygon(polygons)


def _error(field: str, message: str) -> InvalidGeometryError:
    return InvalidGeometryError(f"{field} {message}", errors={field.split()[0]: [message]})
