"""Venues: geofence validation, CRUD, nearby KNN, presence codes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from geo import presence
from mobile_stub.client import ApiError, Client
from tests.factories import HELSINKI, venue_body

SQUARE = {
    "type": "Polygon",
    "coordinates": [
        [
            [24.9380, 60.1697],
            [24.9388, 60.1697],
            [24.9388, 60.1701],
            [24.9380, 60.1701],
            [24.9380, 60.1697],
        ]
    ],
}


def test_circle_venue_with_defaults(owner: Client) -> None:
    venue = owner.create_venue({"name": "Kiosk", "location": HELSINKI})
    assert venue["timezone"] == "UTC"
    assert venue["radius_m"] == 50
    assert venue["checkin_cooldown_minutes"] == 60
    assert venue["max_accuracy_m"] == 100
    assert venue["geofence"]["type"] == "Polygon"
    assert venue["location"] == HELSINKI
    assert owner.get_venue(venue["id"]) == venue
    assert owner.list_venues() == [venue]


def test_polygon_venue_is_stored_as_drawn(owner: Client) -> None:
    venue = owner.create_venue(venue_body(geofence=SQUARE, checkin_cooldown_minutes=0))
    assert venue["geofence"] == SQUARE
    assert venue["radius_m"] is None
    assert venue["checkin_cooldown_minutes"] == 0


def test_circle_geofence_is_a_true_circle_in_postgis(owner: Client, app: Any) -> None:
    venue = owner.create_venue(venue_body(radius_m=200))
    from api import db

    with app.app_context():
        radii = (
            db.session()
            .execute(
                text(
                    "SELECT min(ST_Distance(v.location, (dp).geom::geography)),"
                    " max(ST_Distance(v.location, (dp).geom::geography))"
                    " FROM venues v, ST_DumpPoints(v.geofence) dp WHERE v.id = :id"
                ),
                {"id": venue["id"]},
            )
            .one()
        )
    assert 199.0 < radii[0] <= radii[1] < 201.0


INVALID: list[tuple[str, dict[str, Any]]] = [
    ("lat out of range", {"location": {"type": "Point", "coordinates": [24.9, 95.0]}}),
    ("lon out of range", {"location": {"type": "Point", "coordinates": [190.0, 60.0]}}),
    ("not a point", {"location": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}),
    ("no coordinates", {"location": {"type": "Point"}}),
    ("string location", {"location": "60.1,24.9"}),
    ("nan", {"location": {"type": "Point", "coordinates": ["NaN", 60.0]}}),
    ("radius too small", {"radius_m": 5}),
    ("radius too large", {"radius_m": 20_000}),
    (
        "unclosed ring",
        {
            "geofence": {
                "type": "Polygon",
                "coordinates": [
                    [[24.9380, 60.1697], [24.9388, 60.1697], [24.9388, 60.1701], [24.9380, 60.1701]]
                ],
            }
        },
    ),
    (
        "too few points",
        {
            "geofence": {
                "type": "Polygon",
                "coordinates": [[[24.938, 60.1697], [24.9388, 60.1697], [24.938, 60.1697]]],
            }
        },
    ),
    (
        "self-intersecting bow tie",
        {
            "geofence": {
                "type": "Polygon",
                "coordinates": [
                    [
                        [24.9380, 60.1697],
                        [24.9388, 60.1701],
                        [24.9388, 60.1697],
                        [24.9380, 60.1701],
                        [24.9380, 60.1697],
                    ]
                ],
            }
        },
    ),
    (
        "absurdly large",
        {
            "geofence": {
                "type": "Polygon",
                "coordinates": [[[20, 58], [30, 58], [30, 62], [20, 62], [20, 58]]],
            }
        },
    ),
    (
        "far from the location",
        {
            "geofence": {
                "type": "Polygon",
                "coordinates": [[[25.0, 60.0], [25.001, 60.0], [25.001, 60.001], [25.0, 60.0]]],
            }
        },
    ),
    ("both fence kinds", {"geofence": SQUARE, "radius_m": 100}),
    ("point as geofence", {"geofence": HELSINKI}),
]


@pytest.mark.parametrize(("case", "change"), INVALID, ids=[c for c, _ in INVALID])
def test_invalid_geometry_is_422_with_an_actionable_message(
    owner: Client, case: str, change: dict[str, Any]
) -> None:
    with pytest.raises(ApiError) as err:
        owner.create_venue(venue_body(**change))
    assert (err.value.status, err.value.code) == (422, "invalid_geometry"), case
    assert err.value.errors and err.value.detail
    assert owner.list_venues() == []


@pytest.mark.parametrize(
    "change",
    [
        {"timezone": "Mars/Olympus"},
        {"name": ""},
        {"checkin_cooldown_minutes": -1},
        {"checkin_cooldown_minutes": 1.5},
        {"max_accuracy_m": 0},
        {"colour": "blue"},
    ],
)
def test_other_invalid_venue_fields_are_422(owner: Client, change: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as err:
        owner.create_venue(venue_body(**change))
    assert err.value.status == 422
    assert err.value.code == "validation_error"
    assert owner.list_venues() == []


def test_address_is_optional_text_kept_through_create_patch_get_and_list(owner: Client) -> None:
    plain = owner.create_venue(venue_body(name="Kahvila"))
    assert plain["address"] is None
    venue = owner.create_venue(venue_body(name="Kahvila", address="Mannerheimintie 5, Helsinki"))
    assert venue["address"] == "Mannerheimintie 5, Helsinki"
    assert owner.get_venue(venue["id"])["address"] == "Mannerheimintie 5, Helsinki"
    # Two venues of the same name: the list tells them apart by address.
    assert sorted((v["name"], v["address"] or "") for v in owner.list_venues()) == [
        ("Kahvila", ""),
        ("Kahvila", "Mannerheimintie 5, Helsinki"),
    ]
    moved = owner.update_venue(venue["id"], {"address": "Aleksanterinkatu 52"})
    assert moved["address"] == "Aleksanterinkatu 52"
    assert moved["location"] == venue["location"]  # an address is text: it moves nothing
    assert owner.update_venue(venue["id"], {"address": None})["address"] is None


@pytest.mark.parametrize(
    "address",
    ["Mannerheimintie 5\nHelsinki", "Kauppatori\x00", "Esplanadi \u202e1", "x" * 301, 5],
    ids=["newline", "nul", "bidi override", "too long", "not text"],
)
def test_bad_addresses_are_422_and_change_nothing(owner: Client, address: Any) -> None:
    with pytest.raises(ApiError) as err:
        owner.create_venue(venue_body(address=address))
    assert (err.value.status, err.value.code) == (422, "validation_error")
    assert err.value.errors and "address" in err.value.errors
    venue = owner.create_venue(venue_body(address="Bulevardi 1"))
    with pytest.raises(ApiError) as err:
        owner.update_venue(venue["id"], {"address": address})
    assert err.value.status == 422
    assert owner.get_venue(venue["id"])["address"] == "Bulevardi 1"


def test_patch_moves_a_circle_and_switches_fence_kinds(owner: Client) -> None:
    venue = owner.create_venue(venue_body(radius_m=30))
    moved = owner.update_venue(
        venue["id"], {"location": {"type": "Point", "coordinates": [24.9500, 60.1700]}}
    )
    ring = moved["geofence"]["coordinates"][0]
    assert all(abs(lon - 24.95) < 0.001 for lon, _ in ring)
    assert moved["radius_m"] == 30
    back = owner.update_venue(venue["id"], {"location": HELSINKI, "geofence": SQUARE})
    assert back["geofence"] == SQUARE and back["radius_m"] is None
    renamed = owner.update_venue(venue["id"], {"name": "Renamed"})
    assert renamed["geofence"] == SQUARE and renamed["name"] == "Renamed"
    with pytest.raises(ApiError) as err:
        owner.update_venue(venue["id"], {"radius_m": 1})
    assert err.value.code == "invalid_geometry"
    assert owner.get_venue(venue["id"])["geofence"] == SQUARE


def test_delete_hides_the_venue(owner: Client) -> None:
    venue = owner.create_venue(venue_body())
    owner.delete_venue(venue["id"])
    with pytest.raises(ApiError) as err:
        owner.get_venue(venue["id"])
    assert err.value.status == 404
    assert owner.list_venues() == []
    assert owner.nearby(60.1699, 24.9384) == []


# Nearby runs on its own autocommit connection in production: these tests go through it, on
# committed data (the `committed_*` fixtures), not through the test's rolled-back session.


def test_nearby_orders_by_distance_and_respects_radius_and_limit(
    committed_api: Client, committed_owner: Client
) -> None:
    api, owner = committed_api, committed_owner
    # Venues 0, 100, 200, ... 900 m east of the query point along the parallel.
    names = []
    for i in range(10):
        lon = 24.9384 + i * 100 / 55_500  # ~55.5 km per degree of longitude at 60.17 N
        owner.create_venue(
            {"name": f"v{i}", "location": {"type": "Point", "coordinates": [lon, 60.1699]}}
        )
        names.append(f"v{i}")
    found = api.nearby(60.1699, 24.9384, radius_m=450, limit=50)
    assert [v["name"] for v in found] == names[:5]
    distances = [v["distance_m"] for v in found]
    assert distances == sorted(distances)
    assert abs(distances[3] - 300) < 5
    assert [v["name"] for v in api.nearby(60.1699, 24.9384, radius_m=5_000, limit=3)] == names[:3]


def test_nearby_lists_only_live_offers_and_never_codes(
    committed_api: Client, committed_owner: Client
) -> None:
    api, owner = committed_api, committed_owner
    venue = owner.create_venue(venue_body())
    live = owner.create_offer(
        {
            "venue_ids": [venue["id"]],
            "title": "Live",
            "rule": {"kind": "nth_visit", "visits": 3},
            "starts_at": "2020-01-01T00:00:00+02:00",
            "ends_at": "2099-01-01T00:00:00Z",
        }
    )
    owner.activate_offer(live["id"])
    owner.create_offer(
        {"venue_ids": [venue["id"]], "title": "Draft", "rule": {"kind": "every_checkin"}}
    )
    future = owner.create_offer(
        {
            "venue_ids": [venue["id"]],
            "title": "Later",
            "rule": {"kind": "every_checkin"},
            "starts_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        }
    )
    owner.activate_offer(future["id"])
    [listed] = api.nearby(60.1699, 24.9384)
    assert [o["title"] for o in listed["offers"]] == ["Live"]
    offer = listed["offers"][0]
    assert offer["rule"]["kind"] == "nth_visit"
    assert offer["unlock"] == "Check in 3 times"
    assert offer["starts_at"] == "2019-12-31T22:00:00+00:00"
    owner.update_offer(live["id"], {"requires_presence_code": True})
    [listed] = api.nearby(60.1699, 24.9384)
    assert listed["offers"][0]["unlock"] == "Check in 3 times, with the code shown at the venue"
    assert "code" not in offer


NEARBY_OFFER_FIELDS = [
    "id",
    "title",
    "rule",
    "unlock",
    "requires_presence_code",
    "min_proof",
    "starts_at",
    "ends_at",
    "windows",
]


def test_nearby_json_rendered_by_the_database_is_what_the_schemas_say(
    committed_api: Client, committed_owner: Client, committed_app: Any
) -> None:
    """Nearby's answer is PostgreSQL's JSON, passed through: every offer must read exactly as
    its own view (`GET /v1/offers/{id}`, marshmallow's), with the `unlock` text of
    `describe_rule`, and each venue as the venue's own view, fields in the schemas' order."""
    from offers.rules import describe_rule, rule_from_json

    api, owner = committed_api, committed_owner
    venue = owner.create_venue(
        venue_body(name='Kahvila "Ä" \\ \u00e9', category="café", location=HELSINKI)
    )
    rules = [
        {"kind": "every_checkin"},
        {"kind": "first_visit"},
        {"kind": "nth_visit", "visits": 3},
        {"kind": "nth_visit", "visits": 5, "within_days": 30, "repeat": True},
        {"kind": "nth_visit", "visits": 2, "within_days": None, "repeat": False},
        {"kind": "top_visitor"},
        {"kind": "top_visitor", "window_days": 7, "min_visits": 1},
        {"kind": "group", "min_people": 3, "within_minutes": 30},
    ]
    extras: list[dict[str, Any]] = [
        {},
        {"min_proof": "nfc_tap"},
        {"requires_presence_code": True},
        {"windows": [{"days": ["mon", "fri"], "start": "17:00", "end": "02:00"}]},
        {"starts_at": "2020-01-01T00:00:00.1234+02:00", "ends_at": "2099-01-01T00:00:00Z"},
        {"starts_at": "2020-01-01T00:00:00+02:00", "ends_at": "2099-06-30T23:59:59.999999Z"},
        {},
        {"min_proof": "presence_code"},
    ]
    created = []
    for i, (rule, extra) in enumerate(zip(rules, extras, strict=True)):
        offer = owner.create_offer(
            {"venue_ids": [venue["id"]], "title": f"Offer {i} «x»", "rule": rule, **extra}
        )
        owner.activate_offer(offer["id"])
        created.append(offer["id"])

    response = api.transport.request(
        "GET", "/v1/venues/nearby", params={"lat": 60.1699, "lon": 24.9384}
    )
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    [listed] = response.body["venues"]
    assert list(listed) == ["id", "name", "category", "distance_m", "location", "offers"]
    assert {k: listed[k] for k in ("id", "name", "category", "location")} == {
        k: venue[k] for k in ("id", "name", "category", "location")
    }
    with committed_app.app_context():
        from api import db

        exact = (
            db.connection()
            .execute(
                text(
                    "SELECT ST_Distance(location, ST_SetSRID(ST_MakePoint(24.9384, 60.1699), 4326)"
                    "::geography) FROM venues WHERE id = :id"
                ),
                {"id": venue["id"]},
            )
            .scalar_one()
        )
    assert listed["distance_m"] == round(exact, 2)
    assert [o["id"] for o in listed["offers"]] == created
    suffixes = {"nfc_tap": ", with a tap of the tag at the counter"}
    for offer in listed["offers"]:
        assert list(offer) == NEARBY_OFFER_FIELDS
        view = owner.get_offer(offer["id"])
        assert {k: offer[k] for k in NEARBY_OFFER_FIELDS if k != "unlock"} == {
            k: view[k] for k in NEARBY_OFFER_FIELDS if k != "unlock"
        }
        assert list(offer["rule"]) == list(view["rule"])
        suffix = suffixes.get(view["min_proof"]) or (
            ", with the code shown at the venue" if view["requires_presence_code"] else ""
        )
        assert offer["unlock"] == describe_rule(rule_from_json(view["rule"])) + suffix
    unlocks = [offer["unlock"] for offer in listed["offers"]]
    assert unlocks == [
        "Check in",
        "Check in for the first time, with a tap of the tag at the counter",
        "Check in 3 times, with the code shown at the venue",
        "Check in every 5 visits within 30 days",
        "Check in 2 times",
        "Be the most frequent visitor over 60 days, with at least 2 visits",
        "Be the most frequent visitor over 7 days, with at least 1 visit",
        "Check in with 3 people within 30 minutes, with the code shown at the venue",
    ]
    starts = [offer["starts_at"] for offer in listed["offers"]]
    assert starts[4:6] == ["2019-12-31T22:00:00.123400+00:00", "2019-12-31T22:00:00+00:00"]
    assert listed["offers"][5]["ends_at"] == "2099-06-30T23:59:59.999999+00:00"
    assert api.nearby(0, 0, radius_m=1) == []  # an empty answer is still a list


@pytest.mark.parametrize(
    "params",
    [
        {"lat": 91, "lon": 0},
        {"lat": 0},
        {"lat": "x", "lon": 0},
        {"lat": 0, "lon": 0, "limit": 0},
        {"lat": 0, "lon": 0, "radius_m": -5},
    ],
)
def test_nearby_validates_its_query(api: Client, params: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as err:
        api.call("GET", "/v1/venues/nearby", params=params)
    assert err.value.status == 422


@pytest.mark.parametrize("radius", [1000, 50_000])
def test_nearby_is_one_knn_query_ordered_by_the_spatial_index(
    committed_owner: Client, committed_app: Any, radius: int
) -> None:
    """Among 400 venues within 800 m, both index lookups read about `limit` venues, not every
    venue in the radius: the KNN walk (the index scan's `Order By`) stops at the limit, and the
    second lookup's bound is the walk's farthest venue, not the radius. Nothing sorts more than
    the second lookup's few venues."""
    venue = committed_owner.create_venue(venue_body())
    from api import db
    from geo.venues import _NEARBY_SQL

    limit = 20
    with committed_app.test_request_context():
        conn = db.connection()  # nearby's own autocommit connection
        conn.execute(
            text(
                "INSERT INTO venues (id, merchant_id, name, timezone, location, geofence,"
                " radius_m, checkin_cooldown_minutes, max_accuracy_m, presence_secret)"
                " SELECT gen_random_uuid(), merchant_id, 'v' || i, timezone,"
                " ST_Project(location, 800 * sqrt(random()), 2 * pi() * random()), geofence,"
                " radius_m, checkin_cooldown_minutes, max_accuracy_m, presence_secret"
                " FROM venues, generate_series(1, 400) i WHERE id = :id"
            ),
            {"id": venue["id"]},
        )
        conn.execute(text("ANALYZE venues"))
        conn.execute(text("SET enable_seqscan = off"))  # 401 venues: a scan would be cheaper
        try:
            [[[plan]]] = conn.execute(
                text("EXPLAIN (ANALYZE, FORMAT JSON) " + str(_NEARBY_SQL)),
                {"lat": 60.1699, "lon": 24.9384, "radius": radius, "limit": limit, "pairs": True},
            )
        finally:
            conn.execute(text("RESET enable_seqscan"))
    nodes = list(_plan_nodes(plan["Plan"]))
    lookups = [n for n in nodes if n.get("Index Name") == "ix_venues_location_live"]
    assert len(lookups) == 2, nodes
    walk, bounded = sorted(lookups, key=lambda n: "Order By" not in n)
    assert walk["Order By"].startswith("(location <->"), walk
    assert walk["Actual Rows"] == limit
    assert "_st_expand" in bounded["Index Cond"] and "LEAST($" in bounded["Index Cond"], bounded
    read = bounded["Actual Rows"] + bounded.get("Rows Removed by Filter", 0)
    assert limit <= read <= 3 * limit, bounded  # what the sort then orders
    assert all("<->" not in str(n.get("Sort Key")) for n in nodes), nodes


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


def test_presence_code_rotates_and_accepts_one_step_of_skew(owner: Client, app: Any) -> None:
    venue = owner.create_venue(venue_body())
    staff = owner.with_token(owner.create_key("staff")["api_key"])
    shown = staff.presence_code(venue["id"])
    valid_until = datetime.fromisoformat(shown["valid_until"])
    assert valid_until.second == 0 and valid_until.microsecond == 0
    assert timedelta(0) < valid_until - datetime.now(UTC) <= timedelta(seconds=60)
    from api import db
    from core.models import Venue

    with app.app_context():
        secret = db.session().get(Venue, venue["id"]).presence_secret  # type: ignore[union-attr]
    now = datetime.now(UTC)
    assert presence.accepts(secret, shown["code"], now)
    assert presence.accepts(secret, shown["code"], valid_until + timedelta(seconds=30))
    assert not presence.accepts(secret, shown["code"], valid_until + timedelta(seconds=61))
    assert presence.code_at(secret, now) != presence.code_at(secret, now + timedelta(minutes=1))
    analyst = owner.with_token(owner.create_key("analyst")["api_key"])
    with pytest.raises(ApiError) as err:
        analyst.presence_code(venue["id"])
    assert err.value.status == 403
