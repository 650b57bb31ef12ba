"""The owner's summary in a real browser (issue 20, item 5): the analytics page first answers
"is it working?" with the period's figures beside the previous period's, filtered by venue and
by dates of the owner's choice; offers compare side by side; each offer card shows its
redemptions and opens its funnel. At 1280x800 and 390x844, with axe-core and the keyboard."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mobile_stub.client import Client
from tests.e2e.test_dashboard import (
    AXE,
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
__all__ = ["browser", "new_page"]  # fixtures used by name


def visit(live_api: Client, venue: dict[str, Any]) -> dict[str, str]:
    """A new user's verified check-in at the venue: the codes it unlocked, by offer title."""
    user = live_api.with_token(
        live_api.create_user(f"s_{secrets.token_hex(5)}", "correct horse")["token"]
    )
    lon, lat = venue["location"]["coordinates"]
    checkin = user.check_in(venue["id"], lat, lon, 8, datetime.now(UTC).isoformat())
    assert checkin["status"] == "verified", checkin["reasons"]
    return {u["title"]: u["code"] for u in checkin["unlocks"]}


@pytest.fixture
def cafe(live_api: Client) -> dict[str, Any]:
    """Two venues; coffee at A (2.50 a redemption), buns at A and B. Three visitors, five
    unlocks, three redemptions: two coffees at A and a bun at B."""
    m = merchant(live_api, "Summary Cafe")
    owner: Client = m["owner"]
    a = circle_venue(owner, "Harbour A", *HELSINKI)
    b = circle_venue(owner, "Square B", HELSINKI[0] + 0.01, HELSINKI[1])
    coffee = active_offer(owner, [a["id"]], "Free coffee", value_per_redemption=2.5)
    bun = active_offer(owner, [a["id"], b["id"]], "Cinnamon bun")
    for _ in range(2):
        owner.redeem(visit(live_api, a)["Free coffee"], a["id"])
    owner.redeem(visit(live_api, b)["Cinnamon bun"], b["id"])
    return {**m, "a": a, "b": b, "coffee": coffee, "bun": bun}


def top_shot(page: Any, name: str) -> None:
    """What the screen shows first (the full-page shots of this page are very tall)."""
    directory = os.environ.get("DASHBOARD_SCREENSHOTS")
    if directory:
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=f"{directory}/{name}-top.png")


def tile(page: Any, measure: str) -> tuple[str, str]:
    box = page.locator(f".kpi[data-measure={measure}]")
    return box.locator(".kpi-value").inner_text(), box.locator(".kpi-change").inner_text()


def compare_column(page: Any, title: str) -> list[str]:
    """The comparison table's cells of one offer, top to bottom."""
    headers = page.locator("#compare-table thead th").all_inner_texts()
    index = next(i for i, h in enumerate(headers) if h.startswith(title))
    return [
        row.locator("th, td").nth(index).inner_text()
        for row in page.locator("#compare-table tbody tr").all()
    ]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_summary_says_whether_it_works_by_venue_and_dates(
    live_api: Client, new_page: Any, cafe: dict[str, Any], viewport: dict[str, int]
) -> None:
    width = viewport["width"]
    page = new_page(cafe["analyst_key"], viewport)
    page.goto("/dashboard/analytics")
    ready(page)
    # The summary comes first, above the funnel.
    headings = page.locator("main h2").all_inner_texts()
    assert headings[:3] == ["Is it working?", "Offers side by side", "Funnel"]
    assert tile(page, "visitors") == ("3", "Up 3 from 0")
    assert tile(page, "verified_checkins")[0] == "3"
    assert tile(page, "unlocks")[0] == "5"
    assert tile(page, "redemptions") == ("3", "Up 3 from 0")
    assert tile(page, "redemption_rate")[0] == "60.0%"
    assert tile(page, "lift") == (
        "\u2013",
        "Nothing to compare with before",
    )  # an en dash: no figure
    # Coffee costs 2.50 a redemption: 5.00 over three verified visits.
    assert tile(page, "cost_per_verified_visit")[0] == "1.67"
    assert (
        "5.00 in all, over 3 verified visits"
        in page.locator(".kpi[data-measure=cost_per_verified_visit]").inner_text()
    )
    assert "Needs an offer with a holdout" in page.locator(".kpi[data-measure=lift]").inner_text()
    assert "compared with the 30 days before" in page.locator("#summary-note").inner_text()
    # Both offers side by side (the three busiest are chosen at first).
    assert compare_column(page, "Free coffee")[0:4] == ["Active", "2", "2", "2"]
    assert compare_column(page, "Cinnamon bun")[0:4] == ["Active", "3", "3", "1"]
    assert compare_column(page, "Free coffee")[-1] == "5.00"
    assert compare_column(page, "Cinnamon bun")[-1] == "No value set"
    shot(page, f"summary-{width}")
    top_shot(page, f"summary-{width}")

    # One venue: B saw one visitor, one unlock, one redemption.
    page.select_option("#venue", cafe["b"]["id"])
    page.wait_for_selector("#status >> text=at Square B")
    assert tile(page, "visitors")[0] == "1"
    assert tile(page, "redemptions")[0] == "1"
    assert compare_column(page, "Free coffee")[3] == "0"
    assert "at Square B" in page.locator("#summary-note").inner_text()
    assert page.locator("#venue-table").inner_text().count("Square B") == 1

    # Dates of one's choice: backwards dates are refused on the fields; a past week is empty.
    page.select_option("#venue", "")
    page.wait_for_selector("#status >> text=at all venues")
    page.select_option("#period", "custom")
    assert page.evaluate("document.activeElement.id") == "from-date"
    today = date.today()
    page.fill("#from-date", today.isoformat())
    page.fill("#to-date", (today - timedelta(days=3)).isoformat())
    page.click("#apply-dates")
    assert "must not be before" in page.locator("#dates-error").inner_text()
    assert page.locator("#to-date").get_attribute("aria-invalid") == "true"
    page.fill("#from-date", (today - timedelta(days=20)).isoformat())
    page.fill("#to-date", (today - timedelta(days=14)).isoformat())
    page.press("#to-date", "Enter")  # the keyboard: Enter in a date shows the period
    page.wait_for_selector("#status >> text=from ")
    assert page.locator("#dates-error").is_hidden()
    assert tile(page, "redemptions") == ("0", "Same as before (0)")
    assert "compared with the 7 days before" in page.locator("#summary-note").inner_text()
    shot(page, f"summary-dates-{width}")
    top_shot(page, f"summary-dates-{width}")

    # Today alone, chosen by dates, holds everything again.
    page.fill("#from-date", today.isoformat())
    page.fill("#to-date", today.isoformat())
    page.click("#apply-dates")
    page.wait_for_selector(f"#status >> text=on {today.isoformat()}")
    assert tile(page, "redemptions")[0] == "3"


def test_offers_compare_side_by_side_with_the_keyboard_and_cards_open_their_funnel(
    new_page: Any, cafe: dict[str, Any]
) -> None:
    page = new_page(cafe["owner_key"])
    page.goto("/dashboard/offers")
    ready(page)
    card = page.locator(f"[data-offer='{cafe['coffee']['id']}']")
    assert card.locator("[data-redemptions] dd").inner_text() == "2 (2 in 30 days)"
    bun = page.locator(f"[data-offer='{cafe['bun']['id']}']")
    assert bun.locator("[data-redemptions] dd").inner_text() == "1 (1 in 30 days)"
    shot(page, "offers-with-redemptions-1280")
    bun.locator("a", has_text="Funnel").click()
    page.wait_for_url("**/dashboard/analytics?offer=*")
    ready(page)
    assert page.locator("#offer").input_value() == cafe["bun"]["id"]
    assert page.evaluate("document.activeElement.id") == "funnel-title"
    cells = page.locator("#funnel-table tr:has(th:text-is('Unlocks')) td").first
    assert cells.inner_text() == "3"

    # Choosing offers with the keyboard: None, then Space on one checkbox.
    page.focus("#compare-none")
    page.keyboard.press("Enter")
    assert "Choose offers to compare." in page.locator("#compare-table").inner_text()
    page.focus(f"input[data-compare='{cafe['coffee']['id']}']")
    page.keyboard.press("Space")
    headers = page.locator("#compare-table thead th").all_inner_texts()
    assert [h.split("\n")[0] for h in headers] == ["Measure", "Free coffee"]
    # The column's Funnel link shows that offer's funnel in place.
    page.click(f"#compare-table a[data-funnel='{cafe['coffee']['id']}']")
    page.wait_for_selector("#funnel-title:focus")
    assert page.locator("#offer").input_value() == cafe["coffee"]["id"]
    page.wait_for_selector("#funnel-table tr:has(th:text-is('Redemptions')) td:text-is('2')")
    with page.expect_download() as download:
        page.click("#compare-csv")
    text = Path(download.value.path()).read_text()
    assert "Free coffee" in text and "Cinnamon bun" in text


def test_the_summary_passes_axe_at_both_widths(new_page: Any, cafe: dict[str, Any]) -> None:
    axe = AXE.read_text()
    for viewport in (DESKTOP, PHONE):
        page = new_page(cafe["owner_key"], viewport, bypass_csp=True)
        for path in ("/dashboard/analytics", "/dashboard/offers"):
            page.goto(path)
            ready(page)
            if path.endswith("analytics"):
                page.select_option("#period", "custom")  # the date fields shown too
            page.add_script_tag(content=axe)
            result = page.evaluate(
                "async () => await axe.run(document, {resultTypes: ['violations']})"
            )
            assert result["violations"] == [], (path, viewport, result["violations"])
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            wide = page.evaluate(
                """() => [...document.querySelectorAll('main *')]
                  .filter((n) => n.getBoundingClientRect().right > innerWidth + 1)
                  .slice(0, 5).map((n) => n.tagName + '#' + n.id + '.' + n.className)"""
            )
            assert overflow <= 0, (path, viewport, overflow, wide)
