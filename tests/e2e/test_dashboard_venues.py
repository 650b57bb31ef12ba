"""Venues on the dashboard's map in a real browser (Chromium, Playwright), at 1280 x 800 and
390 x 844: what the outside trial broke.

Drawing a new venue with its first corner inside another venue's fence (easy in a city centre,
where fences overlap) switched the form to editing that venue and saving overwrote its fence; a
venue's name went into the map's tooltip as HTML. Here drawing never edits another venue,
replacing a fence that a live offer uses asks first, and names are text.

`DASHBOARD_SCREENSHOTS=/some/dir` saves a screenshot of each state there.
"""

from __future__ import annotations

from typing import Any

import pytest

from mobile_stub.client import Client
from tests.e2e.test_dashboard import (
    DESKTOP,
    HELSINKI,
    PHONE,
    active_offer,
    browser,
    circle_venue,
    merchant,
    new_page,
    ready,
    shot,
)

pytestmark = pytest.mark.e2e
__all__ = ["browser", "new_page"]  # fixtures, used by name

WIDTHS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]


def map_centre(page: Any) -> tuple[float, float]:
    box = page.locator("#map").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def answer_dialogs(page: Any, accept: list[bool]) -> list[str]:
    """Answer the page's confirm() dialogs in turn (accept or dismiss); their messages."""
    seen: list[str] = []

    def on_dialog(dialog: Any) -> None:
        seen.append(dialog.message)
        if accept and accept.pop(0):
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


@pytest.mark.parametrize("viewport", WIDTHS)
def test_drawing_a_new_venue_inside_another_fence_never_edits_it(
    live_api: Client, new_page: Any, viewport: dict[str, int]
) -> None:
    m = merchant(live_api, "Overlap Cafe")
    old = circle_venue(m["owner"], "Old Fence", *HELSINKI)
    active_offer(m["owner"], [old["id"]], "Free latte")
    page = new_page(m["owner_key"], viewport)
    answers: list[bool] = []
    dialogs = answer_dialogs(page, answers)
    page.goto("/dashboard/venues")
    ready(page)
    page.wait_for_timeout(300)  # the map settles on the fence
    cx, cy = map_centre(page)

    # The name typed first, then a polygon whose first corner is inside Old Fence.
    page.click("#new-venue")
    page.fill("#name", "New Kiosk")
    page.click(".leaflet-pm-icon-polygon")
    corners = [(cx, cy), (cx + 70, cy - 40), (cx + 90, cy + 50), (cx + 10, cy + 60)]
    for x, y in corners:
        page.mouse.click(x, y)
        page.wait_for_timeout(80)
    page.mouse.click(*corners[0])
    page.wait_for_function("document.getElementById('vertices').value.split('\\n').length === 4")
    assert page.locator("#venue-form-title").inner_text() == "New venue"
    assert page.input_value("#name") == "New Kiosk"
    assert page.locator("#delete-venue").is_hidden()
    shot(page, f"state-venue-drawn-over-another-{viewport['width']}")
    page.click("#save-venue")
    page.wait_for_selector("#status.status-success")
    assert page.locator("#status").inner_text() == "Created New Kiosk."

    venues = {v["name"]: v for v in m["owner"].list_venues()}
    assert set(venues) == {"Old Fence", "New Kiosk"}
    assert venues["Old Fence"]["radius_m"] == 40  # untouched
    assert venues["Old Fence"]["geofence"] == old["geofence"]
    assert venues["New Kiosk"]["radius_m"] is None
    assert dialogs == []  # nothing to ask: no other venue was touched

    # A circle started inside Old Fence is a new venue too.
    page.click(".leaflet-pm-icon-circle")
    page.mouse.click(cx - 10, cy - 5)
    page.mouse.move(cx + 20, cy - 5, steps=4)
    page.mouse.click(cx + 20, cy - 5)
    page.wait_for_selector("#venue-form:not([hidden])")
    assert page.locator("#venue-form-title").inner_text() == "New venue"

    # Outside a drawing, a click on a fence while the new venue is unsaved asks first; no means
    # the form stays as it was.
    page.fill("#name", "Second Kiosk")
    # On a phone the form is under the map: filling it scrolled the page. Back to the map.
    page.locator("#map").scroll_into_view_if_needed()
    cx, cy = map_centre(page)
    answers.append(False)
    page.mouse.click(cx - 45, cy - 35)  # in Old Fence, outside both new shapes
    page.wait_for_timeout(200)
    assert dialogs[-1] == "Leave the new venue unsaved and edit Old Fence?"
    assert page.locator("#venue-form-title").inner_text() == "New venue"
    assert page.input_value("#name") == "Second Kiosk"
    page.click("#cancel-venue")
    assert {v["name"] for v in m["owner"].list_venues()} == {"Old Fence", "New Kiosk"}


@pytest.mark.parametrize("viewport", WIDTHS)
def test_replacing_a_fence_that_a_live_offer_uses_asks_first(
    live_api: Client, new_page: Any, viewport: dict[str, int]
) -> None:
    m = merchant(live_api, "Replace Cafe")
    used = circle_venue(m["owner"], "Busy Corner", *HELSINKI)
    idle = circle_venue(m["owner"], "Quiet Corner", 60.1710, 24.9410)
    active_offer(m["owner"], [used["id"]], "Free bun")
    page = new_page(m["owner_key"], viewport)
    answers: list[bool] = []
    dialogs = answer_dialogs(page, answers)
    page.goto("/dashboard/venues")
    ready(page)

    # No live offer: saved without a question.
    page.click("button[data-venue] >> text=Quiet Corner")
    page.fill("#radius", "55")
    page.dispatch_event("#radius", "change")
    page.click("#save-venue")
    page.wait_for_selector("#status.status-success >> text=Saved Quiet Corner.")
    assert m["owner"].get_venue(idle["id"])["radius_m"] == 55
    assert dialogs == []

    # A live offer uses it: asked, and "no" leaves the fence as it was.
    page.click("button[data-venue] >> text=Busy Corner")
    page.fill("#radius", "80")
    page.dispatch_event("#radius", "change")
    answers.append(False)
    page.click("#save-venue")
    page.wait_for_selector("#status >> text=Not saved: the fence of Busy Corner is unchanged.")
    assert dialogs[-1].startswith(
        "Replace the fence of Busy Corner? A live offer uses it: “Free bun”."
    )
    assert m["owner"].get_venue(used["id"])["radius_m"] == 40

    # "Yes" replaces it.
    answers.append(True)
    page.click("#save-venue")
    page.wait_for_selector("#status.status-success >> text=Saved Busy Corner.")
    assert m["owner"].get_venue(used["id"])["radius_m"] == 80
    assert len(dialogs) == 2

    # A change that leaves the fence alone asks nothing.
    page.click("button[data-venue] >> text=Busy Corner")
    page.fill("#category", "bakery")
    page.click("#save-venue")
    page.wait_for_selector("#venue-form", state="hidden")  # saved and closed (same message)
    assert m["owner"].get_venue(used["id"])["category"] == "bakery"
    assert len(dialogs) == 2


MARKUP_NAMES = [
    '<meta http-equiv="refresh" content="0;url=/dashboard/sign-in?phish=1">Cafe',
    "<b>x</b>",
    '<img src=x onerror="document.title=1">',
]


@pytest.mark.parametrize("viewport", WIDTHS)
def test_venue_names_with_markup_show_as_text_on_the_map_and_in_the_list(
    live_api: Client, new_page: Any, viewport: dict[str, int]
) -> None:
    m = merchant(live_api, "Markup Cafe")
    spots = [HELSINKI, (60.1712, 24.9412), (60.1690, 24.9360)]
    venues = [
        circle_venue(m["owner"], name, lat, lon)
        for name, (lat, lon) in zip(MARKUP_NAMES, spots, strict=True)
    ]
    page = new_page(m["owner_key"], viewport)
    page.goto("/dashboard/venues")
    ready(page)
    page.wait_for_timeout(300)
    for venue in venues:  # the list shows each name as it is
        item = page.locator(f"button[data-venue='{venue['id']}'] .item-title")
        assert item.inner_text() == venue["name"]
    # Each fence's tooltip (on hover) holds the name as text: no element is made from it.
    paths = page.locator("path.leaflet-interactive")
    names = set()
    for i in range(paths.count()):
        paths.nth(i).hover(force=True)
        tooltip = page.locator(".leaflet-tooltip").last
        tooltip.wait_for()
        names.add(tooltip.inner_text())
        assert tooltip.locator("*:not(span)").count() == 0
        assert (
            page.locator(".leaflet-tooltip meta, .leaflet-tooltip b, .leaflet-tooltip img").count()
            == 0
        )
    assert names == set(MARKUP_NAMES)
    shot(page, f"state-venue-markup-names-{viewport['width']}")
    page.wait_for_timeout(500)  # a refresh the markup asked for would have happened by now
    assert page.url.endswith("/dashboard/venues")
    assert page.title() != "1"
