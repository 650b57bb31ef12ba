"""The smaller things the outside trial found on the dashboard, in Chromium at 1280 x 800 and
390 x 844: a new draft out of sight, a double tap that pauses what it activated, clipped chart
labels, charts that kept their first width, wide tables that scroll without saying so, and a cut
time-zone field.

`DASHBOARD_SCREENSHOTS=/some/dir` saves a screenshot of each state there.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
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


def element_shot(locator: Any, name: str) -> None:
    """A screenshot of one part of the page, at its real size, to look at closely."""
    directory = os.environ.get("DASHBOARD_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        locator.screenshot(path=f"{directory}/{name}.png")


WIDTHS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]


@pytest.mark.parametrize("viewport", WIDTHS)
def test_a_new_draft_comes_first_highlighted_and_a_double_tap_does_not_pause_it(
    live_api: Client, new_page: Any, viewport: dict[str, int]
) -> None:
    m = merchant(live_api, "Draft Cafe")
    venue = circle_venue(m["owner"], "Draft Bar", *HELSINKI)
    for n in range(6):  # enough active offers to push a draft below the fold
        active_offer(m["owner"], [venue["id"]], f"Active offer {n}")
    page = new_page(m["owner_key"], viewport)
    page.goto("/dashboard/offers/new")
    ready(page)
    page.fill("#title", "Zesty new draft")
    page.check(f"input[name=venue][value='{venue['id']}']")
    page.click("#save-offer")
    page.wait_for_url("**/dashboard/offers")
    ready(page)

    first = page.locator("article.offer-card").first
    assert first.locator("h2").inner_text() == "Zesty new draft"
    assert "just-saved" in (first.get_attribute("class") or "")
    assert first.locator(".just-saved-note").inner_text() == "Just saved"
    assert page.evaluate("document.activeElement.textContent") == "Zesty new draft"
    box = first.bounding_box()
    assert box["y"] >= 0 and box["y"] + 60 < viewport["height"]  # in sight without scrolling
    shot(page, f"state-offers-new-draft-{viewport['width']}")

    # Activate, and the second tap of a double tap lands where Activate was: Pause is there now,
    # and it must not pause the offer.
    activate = first.locator("button[data-move=activate]")
    target = activate.bounding_box()
    x, y = target["x"] + target["width"] / 2, target["y"] + target["height"] / 2
    page.mouse.click(x, y)
    page.wait_for_selector("#status >> text=is now active")
    pause = page.locator("article.offer-card").first.locator("button[data-move=pause]")
    under = pause.bounding_box()
    assert under["x"] <= x <= under["x"] + under["width"]  # the finger is on Pause
    page.mouse.click(x, y)
    page.wait_for_timeout(400)
    [offer] = [o for o in m["owner"].list_offers() if o["title"] == "Zesty new draft"]
    assert offer["status"] == "active"
    assert "is now active" in page.locator("#status").inner_text()
    # A moment later Pause works as a deliberate tap.
    pause.click()
    page.wait_for_selector("#status >> text=is now paused")
    assert m["owner"].get_offer(offer["id"])["status"] == "paused"


def rejected_checkins(live_api: Client, venue: dict[str, Any]) -> None:
    """Check-ins rejected for several reasons, so the leak report has a chart of them."""
    user = live_api.with_token(
        live_api.create_user(f"u_{secrets.token_hex(5)}", "correct horse")["token"]
    )
    lon, lat = venue["location"]["coordinates"]
    now = datetime.now(UTC).isoformat()
    user.check_in(venue["id"], lat + 0.01, lon, accuracy_m=8, observed_at=now)
    user.check_in(venue["id"], lat, lon, accuracy_m=900, observed_at=now)
    user.check_in(venue["id"], lat, lon, accuracy_m=8, observed_at=now, mock_location=True)
    user.check_in(venue["id"], lat, lon, accuracy_m=8, observed_at=now, presence_code="000000")


CHART_TEXT_INSIDE = """(selector) => [...document.querySelectorAll(selector + ' svg text')].map((t) => {
    const svg = t.ownerSVGElement.getBoundingClientRect();
    const r = t.getBoundingClientRect();
    return {text: t.textContent, left: r.left - svg.left, right: svg.right - r.right};
})"""


@pytest.mark.parametrize("viewport", WIDTHS)
def test_charts_fit_their_labels_redraw_on_resize_and_wide_tables_say_they_scroll(
    live_api: Client, new_page: Any, viewport: dict[str, int]
) -> None:
    m = merchant(live_api, "Chart Cafe")
    venue = circle_venue(m["owner"], "Chart Bar with a rather long venue name", *HELSINKI)
    active_offer(m["owner"], [venue["id"]], "Cinnamon bun")
    rejected_checkins(live_api, venue)
    page = new_page(m["owner_key"], viewport)
    page.goto("/dashboard/analytics")
    ready(page)
    page.wait_for_selector("#rejections-chart svg")

    # No chart text runs past its chart's edges (the first trial clipped the first label).
    for chart in ("#rejections-chart", "#funnel-chart", "#venue-chart"):
        for t in page.evaluate(CHART_TEXT_INSIDE, chart):
            assert t["left"] >= -0.5 and t["right"] >= -0.5, (chart, t)
    labels = page.locator("#rejections-chart svg text.chart-label").all_text_contents()
    assert "outside geofence" in labels and "presence code invalid" in labels
    shot(page, f"state-analytics-rejections-{viewport['width']}")
    element_shot(page.locator("#leaks"), f"state-analytics-leaks-{viewport['width']}")

    # Wide tables: at phone width they scroll and say so; on a desktop they fit and say nothing.
    health = page.locator(".table-scroll:has(#health-table)")
    hint = page.locator("p.scroll-hint:has(+ .table-scroll #health-table)")
    if viewport == PHONE:
        assert health.get_attribute("data-scrolls") == "true"
        assert hint.is_visible()
        assert hint.inner_text() == "Scroll sideways to see every column →"
        element_shot(health.locator("xpath=.."), "state-analytics-wide-table-390")
    else:
        assert health.get_attribute("data-scrolls") == "false"
        assert hint.is_hidden()

    # Charts take the new width when the window changes (a phone turned, a window resized).
    before = page.locator("#time-chart svg").get_attribute("viewBox")
    other = {"width": 900, "height": 800} if viewport == PHONE else {"width": 600, "height": 800}
    page.set_viewport_size(other)
    page.wait_for_selector(f"body[data-charts-width='{other['width']}']", state="attached")
    after = page.locator("#time-chart svg").get_attribute("viewBox")
    assert before != after
    svg_width = float(after.split()[2])
    shown = page.locator("#time-chart").bounding_box()["width"]
    assert abs(svg_width - shown) <= 2, (svg_width, shown)
    # The hint follows the width too.
    assert health.get_attribute("data-scrolls") == ("false" if viewport == PHONE else "true")


@pytest.mark.parametrize("viewport", WIDTHS)
def test_the_venue_forms_time_zone_shows_whole(
    live_api: Client, new_page: Any, viewport: dict[str, int]
) -> None:
    m = merchant(live_api, "Zone Cafe")
    page = new_page(m["owner_key"], viewport)
    page.goto("/dashboard/venues")
    ready(page)
    page.click("#new-venue")
    for zone in ("Europe/Helsinki", "America/Argentina/Buenos_Aires"):
        page.fill("#timezone", zone)
        scroll, client = page.evaluate(
            "() => { const i = document.getElementById('timezone');"
            " return [i.scrollWidth, i.clientWidth]; }"
        )
        assert scroll <= client, (zone, scroll, client)
    shot(page, f"state-venue-form-zone-{viewport['width']}")
