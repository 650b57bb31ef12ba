"""The dashboard's map as a merchant finding their shop (issue 20, point 3), in Chromium at
1280 x 800 and 390 x 844: street names, building outlines and place labels on the offline
basemap; a search box that finds venues by name or address, and streets, places and addresses of
the offline data, and moves the map; venues' addresses, and categories in words, wherever venues
are shown or chosen; the drawing tools on a phone.

`DASHBOARD_SCREENSHOTS=/some/dir` saves a screenshot of each state there.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from mobile_stub.client import Client
from tests.e2e.test_dashboard import (
    AXE,
    DESKTOP,
    PHONE,
    active_offer,
    browser,
    merchant,
    new_page,
    ready,
    shot,
    sign_in,
    verified_visit,
)

pytestmark = pytest.mark.e2e
__all__ = ["browser", "new_page"]  # fixtures, used by name

WIDTHS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]
# Two shops of one name, told apart by their address; one with an OSM tag as its category.
TWINS = [
    ("Kahvila Sointu", "Aleksanterinkatu 52, Helsinki", "amenity=cafe", (60.16885, 24.94225)),
    ("Kahvila Sointu", "Mannerheimintie 5, Helsinki", "cafe", (60.16776, 24.94104)),
    ("Kirjakauppa Lumo", None, "shop:books", (60.17075, 24.94480)),
]


def add_twins(owner: Client) -> list[dict[str, Any]]:
    return [
        dict(
            owner.create_venue(
                {
                    "name": name,
                    "address": address,
                    "category": category,
                    "timezone": "Europe/Helsinki",
                    "location": {"type": "Point", "coordinates": [lon, lat]},
                    "radius_m": 25,
                }
            )
        )
        for name, address, category, (lat, lon) in TWINS
    ]


def view(page: Any, selector: str = "#map") -> tuple[float, float, float]:
    lat, lon, zoom = page.get_attribute(selector, "data-view").split(",")
    return float(lat), float(lon), float(zoom)


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    k = math.cos(math.radians(a[0]))
    return math.hypot(a[0] - b[0], (a[1] - b[1]) * k) * 111_320


def axe_violations(page: Any) -> list[str]:
    page.add_script_tag(content=AXE.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} [{v['impact']}] {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
        for v in result["violations"]
    ]


def overlapping(boxes: list[dict[str, float]]) -> list[tuple[int, int]]:
    return [
        (i, j)
        for i, a in enumerate(boxes)
        for j, b in enumerate(boxes[i + 1 :], i + 1)
        if a["x"] < b["x"] + b["width"] - 1
        and b["x"] < a["x"] + a["width"] - 1
        and a["y"] < b["y"] + b["height"] - 1
        and b["y"] < a["y"] + a["height"] - 1
    ]


@pytest.mark.parametrize("viewport", WIDTHS)
def test_the_basemap_shows_buildings_street_names_and_places_without_clutter(
    live_api: Client, new_page: Any, viewport: dict[str, int]
) -> None:
    m = merchant(live_api, "Basemap Cafe")
    page = new_page(m["owner_key"], viewport)
    page.goto("/dashboard/venues")
    ready(page)  # no venues: the map stays at the city centre, zoom 15
    page.wait_for_selector(".map-label-suburb, .map-label-neighbourhood")
    # Buildings: OSM outlines drawn in the basemap's pane.
    assert page.locator(".leaflet-basemap-pane path").count() > 300
    # Zoom in: street names along the streets, squares and parks, never on top of each other.
    for _ in range(2):
        page.click(".leaflet-control-zoom-in")
        page.wait_for_timeout(400)
    assert view(page)[2] >= 16
    page.wait_for_selector(".map-label-street")
    streets = page.locator(".map-label-street").all_inner_texts()
    assert len(streets) >= 4, streets
    # Horizontal labels must not overlap; slanted ones are tested on their axis by the page.
    flat = [
        page.locator(".map-label").nth(i).bounding_box()
        for i in range(page.locator(".map-label").count())
        if "rotate(0deg)" in (page.locator(".map-label").nth(i).get_attribute("style") or "")
    ]
    assert not overlapping([b for b in flat if b]), "labels overlap"
    # And none is cut by the map's edge.
    box = page.locator("#map").bounding_box()
    for i in range(page.locator(".map-label").count()):
        label = page.locator(".map-label").nth(i).bounding_box()
        assert box["x"] <= label["x"] and label["x"] + label["width"] <= box["x"] + box["width"]
        assert box["y"] <= label["y"] and label["y"] + label["height"] <= box["y"] + box["height"]
    # The labels are decoration for the eye: the screen reader gets the search and the lists.
    assert page.get_attribute(".leaflet-labels-pane", "aria-hidden") == "true"
    assert "OpenStreetMap" in page.inner_text(".leaflet-control-attribution")
    shot(page, f"state-map-labels-z16-{viewport['width']}")
    for _ in range(2):
        page.click(".leaflet-control-zoom-in")
        page.wait_for_timeout(400)
    page.wait_for_timeout(300)
    shot(page, f"state-map-labels-z18-{viewport['width']}")
    # A square gets its name: the search takes the map there.
    page.fill("#map-search", "Rautatientori")
    page.click("#map-search-results [role=option] >> text=Square")
    page.wait_for_selector(".map-label-square >> text=Rautatientori")


@pytest.mark.parametrize("viewport", WIDTHS)
def test_search_finds_venues_by_address_and_streets_and_moves_the_map(
    live_api: Client, new_page: Any, viewport: dict[str, int]
) -> None:
    m = merchant(live_api, "Search Cafe")
    twins = add_twins(m["owner"])
    page = new_page(m["owner_key"], viewport)
    page.goto("/dashboard/venues")
    ready(page)

    # The list tells the twins apart by address and shows categories in words.
    items = page.locator("#venue-list li").all_inner_texts()
    assert any("Aleksanterinkatu 52" in t for t in items)
    assert any("Mannerheimintie 5" in t for t in items)
    text = " ".join(items)
    assert "Café" in text and "Bookshop" in text
    assert "amenity=cafe" not in text and "shop:books" not in text

    # A venue by its address, with the keyboard only.
    page.focus("#map-search")
    page.keyboard.type("mannerheimintie 5")
    page.wait_for_selector("#map-search-results [role=option]")
    assert page.get_attribute("#map-search", "aria-expanded") == "true"
    first = page.locator("#map-search-results [role=option]").first.inner_text()
    assert "Kahvila Sointu" in first and "Your venue" in first
    page.keyboard.press("ArrowDown")
    assert page.get_attribute("#map-search", "aria-activedescendant") == "map-search-results-0"
    page.keyboard.press("Enter")
    page.wait_for_selector("#map-search-results", state="hidden")
    lat, lon, zoom = view(page)
    assert metres((lat, lon), TWINS[1][3]) < 30 and zoom >= 18
    assert "Map moved to Kahvila Sointu" in page.inner_text("#map-search-status")
    assert page.locator("path.search-mark").count() == 1
    shot(page, f"state-map-search-venue-{viewport['width']}")

    # An address of the offline data (no diacritics typed), then a street.
    page.fill("#map-search", "")
    page.keyboard.type("Lonnrotinkatu")
    page.wait_for_selector("#map-search-results [role=option] >> text=Lönnrotinkatu")
    options = page.locator("#map-search-results [role=option]").all_inner_texts()
    assert any("Street" in o for o in options), options
    shot(page, f"state-map-search-list-{viewport['width']}")
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    page.click("#map-search-results [role=option] >> text=Street")
    lat, lon, _ = view(page)
    assert metres((lat, lon), (60.1652, 24.9363)) < 500  # Lönnrotinkatu, south-west of the centre
    page.fill("#map-search", "")
    page.keyboard.type("Senaatintori")
    page.wait_for_selector("#map-search-results [role=option] >> text=Square")
    page.keyboard.press("Enter")
    lat, lon, _ = view(page)
    assert metres((lat, lon), (60.16951, 24.95287)) < 60
    # Escape closes the list, then clears the box; nothing found says so.
    page.keyboard.type("zzzz")
    page.wait_for_selector("#map-search-status >> text=Nothing found")
    page.keyboard.press("Escape")
    assert page.input_value("#map-search") == ""

    # The form: the address is a field; the category shows in words and is kept as stored.
    page.click(f"button[data-venue='{twins[0]['id']}']")
    assert page.input_value("#address") == "Aleksanterinkatu 52, Helsinki"
    assert page.input_value("#category") == "Café"
    page.fill("#address", "Aleksanterinkatu 52 B, Helsinki")
    page.click("#save-venue")
    page.wait_for_selector("#status >> text=Saved Kahvila Sointu.")
    saved = m["owner"].get_venue(twins[0]["id"])
    assert saved["address"] == "Aleksanterinkatu 52 B, Helsinki"
    assert saved["category"] == "amenity=cafe"  # untouched words keep the stored tag


def test_the_offer_forms_picker_and_the_selects_tell_twins_apart(
    live_api: Client, new_page: Any
) -> None:
    m = merchant(live_api, "Picker Twins")
    twins = add_twins(m["owner"])
    page = new_page(m["owner_key"], PHONE)
    page.goto("/dashboard/offers/new")
    ready(page)
    labels = page.locator("#venue-choices label").all_inner_texts()
    assert sum("Kahvila Sointu" in t for t in labels) == 2
    assert any("Aleksanterinkatu 52" in t for t in labels)
    assert any("Mannerheimintie 5" in t for t in labels)
    assert any("Bookshop" in t for t in labels) and not any("shop:books" in t for t in labels)
    # Finding by address keeps one of the twins.
    page.fill("#venue-search", "mannerheim")
    visible = [t for t in labels if "Mannerheimintie" in t]
    assert page.locator("#venue-choices label:visible").count() == len(visible) == 1
    page.fill("#venue-search", "")
    # The picker's map has the search box too.
    page.click("#venue-map-toggle")
    page.wait_for_selector("#venue-map-box[data-ready=true]")
    page.fill("#picker-map-search", "Aleksanterinkatu 52")
    page.wait_for_selector("#picker-map-search-results [role=option]")
    page.keyboard.press("Enter")
    lat, lon, _ = view(page, "#venue-map")
    assert metres((lat, lon), TWINS[0][3]) < 30
    shot(page, "state-map-picker-search-390")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # An offer for both twins names each by its address in the offers list.
    m["owner"].create_offer(
        {
            "venue_ids": [t["id"] for t in twins[:2]],
            "title": "Twin latte",
            "rule": {"kind": "every_checkin"},
        }
    )
    page.goto("/dashboard/offers")
    ready(page)
    card = page.locator("article.offer-card").first.inner_text()
    assert "Kahvila Sointu — Aleksanterinkatu 52, Helsinki" in card, card
    assert "Kahvila Sointu — Mannerheimintie 5, Helsinki" in card, card
    # A <select> of venues (the NFC tags page) names the address too.
    page.goto("/dashboard/nfc-tags")
    options = page.locator("select option").all_inner_texts()
    assert "Kahvila Sointu — Aleksanterinkatu 52, Helsinki" in options, options
    assert twins


def test_lists_of_visits_name_the_twin_by_its_address(live_api: Client, new_page: Any) -> None:
    """Feedback, redemptions by venue and paired devices carry only a venue's id and name; the
    pages show each twin's address, so the owner knows which shop is meant."""
    m = merchant(live_api, "Twin Lists")
    twins = add_twins(m["owner"])
    active_offer(m["owner"], [twins[0]["id"], twins[1]["id"]], "Twin bun")
    for twin in twins[:2]:
        user, visit = verified_visit(live_api, twin)
        user.give_feedback(visit["id"], 4)
        m["owner"].redeem(visit["unlocks"][0]["code"], twin["id"])
    m["owner"].pair_device(m["owner"].create_pairing(twins[1]["id"], "Back till")["code"])
    first, second = (f"Kahvila Sointu — {t[1]}" for t in TWINS[:2])
    page = new_page(m["owner_key"])

    page.goto("/dashboard/feedback")
    ready(page)
    titles = page.locator(".feedback-card h2").all_inner_texts()
    assert sorted(t.split(" ", 1)[1] for t in titles) == sorted([first, second]), titles

    page.goto("/dashboard/analytics")
    ready(page)
    page.wait_for_selector("#venue-table td")
    venues = page.locator("#venue-table tbody th, #venue-table tbody td").all_inner_texts()
    assert first in venues and second in venues, venues

    page.goto("/dashboard/settings/devices")
    ready(page)
    assert second in page.locator("#devices").inner_text()


def test_on_a_phone_the_drawing_tools_leave_the_map_free_and_a_tap_keeps_the_drawing(
    live_api: Client, new_page: Any
) -> None:
    m = merchant(live_api, "Phone Draw")
    page = new_page(m["owner_key"], PHONE)
    page.goto("/dashboard/venues")
    ready(page)
    map_box = page.locator("#map").bounding_box()
    toolbar = page.locator(".leaflet-pm-toolbar").first.bounding_box()
    zoom = page.locator(".leaflet-control-zoom").bounding_box()
    # The tools sit on the map's edge, away from the zoom buttons, and cover little of it.
    assert toolbar["width"] * toolbar["height"] < 0.06 * map_box["width"] * map_box["height"]
    assert not overlapping([toolbar, zoom])
    shot(page, "state-map-phone-tools-390")
    # While drawing, nothing of the drawing's own lies on the map: Geoman's action bar and the
    # tool buttons (a tap on them ended the drawing) step aside, and the actions are under it.
    page.click(".leaflet-pm-icon-polygon")
    assert page.locator(".leaflet-pm-actions-container").first.is_hidden()
    assert page.locator("#draw-actions").is_visible()
    assert page.locator("#map").bounding_box() == map_box  # nothing above the map moved
    # A corner tapped where the polygon tool's button was is a corner, not the end of it.
    corners = [
        (toolbar["x"] + toolbar["width"] / 2, toolbar["y"] + 10),
        (map_box["x"] + 200, map_box["y"] + 60),
        (map_box["x"] + 220, map_box["y"] + 200),
        (map_box["x"] + 120, map_box["y"] + 260),
    ]
    for x, y in corners:
        page.mouse.click(x, y)
        page.wait_for_timeout(80)
    shot(page, "state-map-phone-drawing-390")
    page.click("#draw-actions >> text=Undo corner")
    page.click("#draw-actions >> text=Finish")
    page.wait_for_selector("#draw-actions", state="hidden")
    page.wait_for_function("document.getElementById('vertices').value.split('\\n').length === 3")
    assert page.locator(".leaflet-pm-toolbar").first.is_visible()
    # Stop drawing ends a drawing.
    page.click(".leaflet-pm-icon-circle")
    page.click("#draw-actions >> text=Stop drawing")
    page.wait_for_selector("#draw-actions", state="hidden")


@pytest.mark.parametrize("viewport", WIDTHS)
def test_the_search_list_the_drawing_bar_and_the_pickers_map_pass_axe(
    live_api: Client, new_page: Any, viewport: dict[str, int]
) -> None:
    m = merchant(live_api, "Axe Map")
    add_twins(m["owner"])
    page = new_page(None, viewport, bypass_csp=True)  # to inject axe-core, a test tool
    sign_in(page, m["owner_key"])
    page.goto("/dashboard/venues")
    ready(page)
    page.fill("#map-search", "Kahvila")
    page.wait_for_selector("#map-search-results [role=option]")
    page.keyboard.press("ArrowDown")
    page.click(".leaflet-pm-icon-polygon")  # the drawing bar (a phone's) is on screen too
    page.focus("#map-search")
    page.keyboard.press("ArrowDown")
    assert page.get_attribute("#map-search", "aria-expanded") == "true"
    failures = [f"venues: {v}" for v in axe_violations(page)]
    page.goto("/dashboard/offers/new")
    ready(page)
    page.click("#venue-map-toggle")
    page.wait_for_selector("#venue-map-box[data-ready=true]")
    page.fill("#picker-map-search", "Sointu")
    page.wait_for_selector("#picker-map-search-results [role=option]")
    failures += [f"picker: {v}" for v in axe_violations(page)]
    assert not failures, "\n".join(failures)


# One grey 1x1 PNG: what the stand-in tile server answers for every tile.
TILE_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63b8b9b9f91f0007e502f6c5f1f5b80000000049454e44ae426082"
)


def test_with_a_tile_server_the_map_shows_its_tiles_and_its_attribution_as_text(
    live_api: Client, new_page: Any
) -> None:
    """MAP_TILE_URL's browser side (the server side is tests/integration/
    test_dashboard_map_settings.py): the page gets the settings as the server renders them with
    MAP_TILE_URL set (its meta tags and CSP), and a stand-in answers the tile requests."""
    m = merchant(live_api, "Tiles Cafe")
    add_twins(m["owner"])
    page = new_page(m["owner_key"], DESKTOP)
    origin = "https://tiles.example.com"
    attribution = '© <img src=x onerror="document.title=1">Tiles & Co'

    def with_tiles(route: Any) -> None:
        response = route.fetch()
        html = response.text().replace(
            '<meta name="csrf-token"',
            f'<meta name="map-tiles" content="{origin}/{{z}}/{{x}}/{{y}}.png">'
            '<meta name="map-tiles-attribution" content="'
            + attribution.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&#34;")
            + '"><meta name="csrf-token"',
        )
        headers = dict(response.headers)
        headers["content-security-policy"] = headers["content-security-policy"].replace(
            "img-src 'self' data: blob:", f"img-src 'self' data: blob: {origin}"
        )
        route.fulfill(response=response, body=html, headers=headers)

    tiles: list[str] = []

    def tile(route: Any) -> None:
        tiles.append(route.request.url)
        route.fulfill(status=200, content_type="image/png", body=TILE_PNG)

    page.route("**/dashboard/venues", with_tiles)
    page.route(f"{origin}/**", tile)
    page.goto("/dashboard/venues")
    ready(page)
    page.wait_for_selector("img.leaflet-tile-loaded")
    assert tiles and all(t.startswith(f"{origin}/") and t.endswith(".png") for t in tiles)
    # The offline basemap is not drawn, and the attribution is text, not markup.
    assert page.locator(".leaflet-basemap-pane, .map-label").count() == 0
    assert page.inner_text(".tile-attribution") == attribution
    assert page.locator(".tile-attribution img").count() == 0
    # The search still finds the merchant's venues (the offline names are the demo city's).
    page.fill("#map-search", "Sointu")
    page.wait_for_selector("#map-search-results [role=option]")
    assert page.locator("#map-search-results [role=option]").count() == 2
    shot(page, "state-map-tiles-1280")
