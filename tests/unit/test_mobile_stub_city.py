"""The shipped demo city (`mobile_stub/data/helsinki.json`) and walking on its streets.

The data must carry OpenStreetMap's attribution, hold the venues the demo promises, and give
every footprint a fence that both Shapely and the API's own geofence rules accept.
"""

from __future__ import annotations

import random
import re
import statistics
from itertools import pairwise
from pathlib import Path

import pytest
from pyproj import Geod
from shapely.geometry import Point, shape

from geo.geofence import geofence_for
from mobile_stub.city import DOOR_RADIUS_M, City, Place, load_city, read_data
from mobile_stub.geodesy import distance_m

ATTRIBUTION = "© OpenStreetMap contributors, ODbL 1.0, https://www.openstreetmap.org/copyright"
DATA_DIR = Path(__file__).resolve().parents[2] / "mobile_stub" / "data"
WGS84 = Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def city() -> City:
    return load_city()


def by_name(city: City, name: str) -> Place:
    return next(p for p in city.places if p.name == name)


def test_the_attribution_and_licence_are_stated_next_to_the_data() -> None:
    assert read_data()["attribution"] == ATTRIBUTION
    readme = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    assert ATTRIBUTION in readme
    assert "ODbL" in readme and "Open Database License" in readme


def test_the_data_file_is_small() -> None:
    assert (DATA_DIR / "helsinki.json").stat().st_size < 1_000_000


def test_about_900_named_venues_of_central_helsinki(city: City) -> None:
    assert 850 <= len(city.places) <= 950
    assert len({p.osm for p in city.places}) == len(city.places)
    assert all(p.name for p in city.places)
    categories = {p.category for p in city.places}
    assert {"cafe", "restaurant", "pub", "bar", "fast_food"} <= categories
    assert sum(p.is_shop for p in city.places) > 300
    for p in city.places:  # central Helsinki
        assert 60.16 < p.position.lat < 60.18 and 24.93 < p.position.lon < 24.96


def test_the_map_data_is_osm_too_and_gives_most_venues_their_address(city: City) -> None:
    data = read_data("helsinki-map.json")
    assert data["attribution"] == ATTRIBUTION
    assert (DATA_DIR / "helsinki-map.json").stat().st_size < 400_000
    assert len(data["buildings"]) > 400 and len(data["places"]) >= 20
    with_address = [p for p in city.places if p.address]
    assert len(with_address) > 600
    # "Street number", as OSM's addr:street and addr:housenumber give it; no guesses.
    assert all(re.fullmatch(r"\S.* \S+", p.address or "") for p in with_address)
    assert set(data["venue_addresses"]) <= {p.osm for p in city.places}


def test_every_footprint_is_a_valid_fence(city: City) -> None:
    footprints = [p for p in city.places if p.footprint is not None]
    assert len(footprints) >= 20
    assert {p.fence_source for p in footprints} <= {"osm_way", "osm_relation", "building"}
    for place in footprints:
        fence = shape(place.footprint)
        assert fence.is_valid, place.name
        location = Point(place.position.lon, place.position.lat)
        assert fence.covers(location), place.name
        area, _ = WGS84.geometry_area_perimeter(fence)
        assert 1 <= abs(area) <= 50_000_000, place.name
        # The API's own rules: closed rings, valid, area, positions, near the location.
        geofence_for(location, place.footprint, None)
    assert all(p.fence_source == "none" for p in city.places if p.footprint is None)


def test_the_walking_network_is_one_connected_piece(city: City) -> None:
    streets = city.streets
    assert len(streets.nodes) > 4_000
    walking, _ = streets.dijkstra({0: 0.0})
    assert len(walking) == len(streets.nodes)


def test_a_walk_between_two_venues_follows_the_streets(city: City) -> None:
    # From the Stockmann department store to the Vltava pub, about 370 m apart as the crow flies.
    start, end = by_name(city, "Stockmann"), by_name(city, "Vltava")
    straight = distance_m(start.position, end.position)
    route = city.streets.route(start.position, end.position)

    assert route.points[0] == start.position and route.points[-1] == end.position
    assert straight <= route.length_m <= 1.6 * straight
    # Out of the door to a street nearby, not a shortcut across town.
    assert distance_m(route.points[0], route.points[1]) <= DOOR_RADIUS_M
    assert distance_m(route.points[-2], route.points[-1]) <= DOOR_RADIUS_M
    # Every other step is along an edge of the network.
    index = {node: i for i, node in enumerate(city.streets.nodes)}
    for a, b in pairwise(route.points[1:-1]):
        assert index[b] in {n for n, _, _ in city.streets.neighbours[index[a]]}
    assert route.streets  # named streets and squares on the way


def test_walks_between_any_venues_are_plausibly_long(city: City) -> None:
    rng = random.Random(1)
    ratios = []
    for _ in range(60):
        a, b = rng.sample(city.places, 2)
        straight = distance_m(a.position, b.position)
        walked = city.streets.route(a.position, b.position).length_m
        assert straight - 1e-6 <= walked <= 2.5 * straight + 100, (a.name, b.name)
        ratios.append(walked / straight)
    # City blocks: a walk is typically a fifth to a half longer than the straight line.
    assert 1.05 <= statistics.median(ratios) <= 1.5


@pytest.mark.parametrize("metres", [150, 300, 600])
def test_a_walk_can_start_a_chosen_distance_away(city: City, metres: float) -> None:
    venue = by_name(city, "Vltava").position
    start = city.streets.node_at_walking_distance(venue, metres)
    route = city.streets.route(start, venue)
    # Leaving from the start, a walk may take a street nearby that is a little shorter.
    assert metres - 2 * DOOR_RADIUS_M <= route.length_m <= metres + 10


def test_no_walk_between_disconnected_nodes_is_an_error(city: City) -> None:
    streets = type(city.streets)(city.streets.nodes[:3], [(0, 1, "")])
    with pytest.raises(ValueError):
        streets.shortest_path(0, 2)
