"""Picking venues for an offer when a merchant has hundreds (issue 20, item 4): search, choose
every venue found, keep choices the search hides, choose pins on a map by pointer and by
keyboard, and every venue in view. At 1280x800 and 390x844, with axe-core."""

from __future__ import annotations

from typing import Any

import pytest

from mobile_stub.client import Client
from tests.e2e.test_dashboard import (
    AXE,
    DESKTOP,
    HELSINKI,
    PHONE,
    browser,
    merchant,
    new_page,
    ready,
    shot,
)

pytestmark = pytest.mark.e2e
__all__ = ["browser", "new_page"]  # fixtures used by name

KIOSKS = 150  # a grid of kiosks in the centre
HARBOUR = 3  # and three cafes on the harbour, far to the east


@pytest.fixture(scope="module")
def chain(live_server: str) -> dict[str, Any]:
    from mobile_stub.client import HttpTransport

    api = Client(HttpTransport(live_server))
    m = merchant(api, "Chain of Kiosks")
    owner: Client = m["owner"]

    def venue(name: str, lat: float, lon: float, category: str) -> dict[str, Any]:
        return dict(
            owner.create_venue(
                {
                    "name": name,
                    "category": category,
                    "timezone": "Europe/Helsinki",
                    "location": {"type": "Point", "coordinates": [lon, lat]},
                    "radius_m": 30,
                }
            )
        )

    kiosks = [
        venue(
            f"Kiosk {n:03}",
            HELSINKI[0] + (n // 15) * 0.0012,
            HELSINKI[1] + (n % 15) * 0.002,
            "kiosk",
        )
        for n in range(KIOSKS)
    ]
    harbour = [
        venue(f"Harbour Cafe {n}", HELSINKI[0] + 0.002 * n, HELSINKI[1] + 0.12, "cafe")
        for n in range(HARBOUR)
    ]
    return {**m, "kiosks": kiosks, "harbour": harbour}


def count(page: Any) -> str:
    return str(page.locator("#venue-count").inner_text())


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_pick_venues_by_search_select_all_and_the_map(
    chain: dict[str, Any], new_page: Any, viewport: dict[str, int]
) -> None:
    total = KIOSKS + HARBOUR
    width = viewport["width"]
    page = new_page(chain["owner_key"], viewport)
    page.goto("/dashboard/offers/new")
    ready(page)
    assert count(page) == f"0 of {total} venues chosen."

    # Search, and choose every venue found.
    page.fill("#venue-search", "harbour")
    assert count(page) == f"0 of {total} venues chosen; 3 match “harbour”."
    assert page.locator("#venue-choices label:visible").count() == HARBOUR
    assert page.locator("#venues-all").inner_text() == "Choose the 3 found"
    page.click("#venues-all")
    assert count(page) == f"3 of {total} venues chosen; 3 match “harbour”."
    page.press("#venue-search", "Enter")  # finds; does not send the form
    assert "/offers/new" in page.url
    page.fill("#venue-search", "cafe")  # the category finds them too
    assert page.locator("#venue-choices label:visible").count() == HARBOUR
    page.fill("#venue-search", "no such place")
    assert page.locator("#venue-none-found").is_visible()
    assert page.locator("#venues-all").is_disabled()
    # Hidden by a search, a choice stays.
    page.fill("#venue-search", "")
    assert count(page) == f"3 of {total} venues chosen."
    assert page.locator("#venue-choices input:checked").count() == HARBOUR
    assert "3 venues" in page.locator("#preview").inner_text() or "Harbour Cafe" in (
        page.locator("#preview").inner_text()
    )

    # The map: a pin per venue, chosen ones marked; a search moves it to the venues found.
    page.click("#venue-map-toggle")
    page.wait_for_selector("#venue-map-box[data-ready=true]")
    assert page.locator("#venue-map-toggle").get_attribute("aria-expanded") == "true"
    assert page.locator(".venue-pin").count() == total
    assert page.locator(".venue-pin.picked").count() == HARBOUR
    page.fill("#venue-search", "kiosk 00")  # the first row of ten kiosks
    pin = page.locator(".venue-pin[title='Kiosk 000']")
    assert pin.get_attribute("aria-pressed") == "false"
    pin.click()
    assert pin.get_attribute("aria-pressed") == "true"
    assert pin.get_attribute("alt") == "Kiosk 000: chosen"
    assert page.locator("input[name=venue]:checked").count() == HARBOUR + 1
    # By keyboard: a pin takes focus, Enter chooses it.
    other = page.locator(".venue-pin[title='Kiosk 009']")
    other.focus()
    page.keyboard.press("Enter")
    assert other.get_attribute("aria-pressed") == "true"
    assert count(page) == f"5 of {total} venues chosen; 10 match “kiosk 00”."
    shot(page, f"venue-picker-map-{width}")

    # Every venue in view: cleared, the search leaves the map on the first row, and every venue
    # in view is chosen (a few of the next row too, at the edge), none of the harbour's.
    page.fill("#venue-search", "")
    page.click("#venues-none")
    assert count(page) == f"0 of {total} venues chosen."
    page.click("#venues-in-view")
    chosen = page.locator("input[name=venue]:checked").evaluate_all(
        "(xs) => xs.map((x) => x.value)"
    )
    assert 10 <= len(chosen) < KIOSKS
    assert {v["id"] for v in chain["kiosks"][:10]} <= set(chosen)
    assert not {v["id"] for v in chain["harbour"]} & set(chosen)
    assert page.locator(".venue-pin.picked").count() == len(chosen)

    # Saved, the offer has exactly the venues chosen.
    page.fill("#title", f"Kiosk deal {width}")
    page.fill("#value_per_redemption", "1.5")  # what a redemption costs: the optional field
    page.click("#save-offer")
    page.wait_for_url("**/dashboard/offers*")
    [offer] = [o for o in chain["owner"].list_offers() if o["title"] == f"Kiosk deal {width}"]
    assert set(offer["venue_ids"]) == set(chosen)
    assert offer["value_per_redemption"] == 1.5


def test_the_venue_picker_passes_axe_with_its_map_open(
    chain: dict[str, Any], new_page: Any
) -> None:
    axe = AXE.read_text()
    for viewport in (DESKTOP, PHONE):
        page = new_page(chain["owner_key"], viewport, bypass_csp=True)
        page.goto("/dashboard/offers/new")
        ready(page)
        page.fill("#venue-search", "kiosk 01")
        page.click("#venue-map-toggle")
        page.wait_for_selector("#venue-map-box[data-ready=true]")
        page.add_script_tag(content=axe)
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        assert result["violations"] == [], (viewport, result["violations"])
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, (viewport, overflow)
