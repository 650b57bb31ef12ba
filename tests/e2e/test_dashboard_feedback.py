"""The feedback inbox in the real browser: a staff member at phone width answers the oldest
feedback first with the keyboard only, a comment that looks like HTML stays text, the customer
reads the reply, and the analytics page shows the response rate by week. The page passes axe at
both widths."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
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


def rated_visit(live_api: Client, venue: dict[str, Any], rating: int, comment: str) -> Client:
    user = live_api.with_token(
        live_api.create_user(f"g_{secrets.token_hex(5)}", "correct horse")["token"]
    )
    lon, lat = venue["location"]["coordinates"]
    checkin = user.check_in(venue["id"], lat, lon, 8, datetime.now(UTC).isoformat())
    assert checkin["status"] == "verified", checkin["reasons"]
    user.give_feedback(checkin["id"], rating, comment)
    return user


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_staff_answer_the_oldest_feedback_first_with_the_keyboard(
    live_api: Client, new_page: Any, viewport: dict[str, int]
) -> None:
    m = merchant(live_api, "Inbox Cafe")
    owner: Client = m["owner"]
    venue = circle_venue(owner, "Harbour Kiosk", *HELSINKI)
    active_offer(owner, [venue["id"]], "Free bun")
    first = rated_visit(live_api, venue, 2, "<b>Cold</b> coffee <script>alert(1)</script>")
    rated_visit(live_api, venue, 5, "Lovely\nsecond line")

    page = new_page(m["staff_key"], viewport)
    page.goto("/dashboard/feedback")
    ready(page)
    cards = page.locator("[data-feedback]")
    assert cards.count() == 2
    oldest = cards.nth(0)
    # the comment is shown as typed, as text: no element was made of it
    assert oldest.locator(".comment").inner_text() == (
        "<b>Cold</b> coffee <script>alert(1)</script>"
    )
    assert oldest.locator(".comment b, .comment script").count() == 0
    assert "2 of 5 stars" in (oldest.locator(".stars").get_attribute("aria-label") or "")
    assert "Free bun (unlocked)" in oldest.inner_text()
    assert "Harbour Kiosk" in oldest.inner_text()
    assert "waiting" in oldest.inner_text()
    scroll = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert scroll <= 0, "the inbox is wider than the screen"
    shot(page, f"feedback-inbox-{viewport['width']}")

    # keyboard only: Tab to the first reply box, type, Ctrl+Enter sends
    page.locator("#filter-rating").focus()
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.tagName") == "TEXTAREA":
            break
    assert page.evaluate("document.activeElement.closest('[data-feedback]').dataset.feedback") == (
        oldest.get_attribute("data-feedback")
    )
    oldest_id = oldest.get_attribute("data-feedback")
    page.keyboard.type("Sorry about that, the next coffee is on us.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#status.status-success")
    # the answered feedback left the unanswered list; focus moved to the next one's reply box
    # (locator waits: a string predicate would need eval, which the page's CSP forbids)
    page.locator(f'[data-feedback="{oldest_id}"]').wait_for(state="detached")
    assert cards.count() == 1
    assert page.evaluate("document.activeElement.tagName") == "TEXTAREA"
    [reply] = first.my_feedback()[0]["replies"]
    assert reply["body"] == "Sorry about that, the next coffee is on us."

    # the answered list shows the reply and how long the first one took
    page.select_option("#filter-status", "answered")
    answered = page.locator(f'[data-feedback="{oldest_id}"]')
    answered.locator(".replies").wait_for()
    assert cards.count() == 1
    assert "Sorry about that" in answered.locator(".replies").inner_text()
    assert "answered in" in answered.inner_text()


def test_the_inbox_and_the_analytics_section_pass_axe(live_api: Client, new_page: Any) -> None:
    m = merchant(live_api, "Axe Feedback Cafe")
    owner: Client = m["owner"]
    venue = circle_venue(owner, "Axe Kiosk", *HELSINKI)
    rated_visit(live_api, venue, 4, "Fine")
    [item] = owner.list_feedback()
    owner.reply_to_feedback(item["id"], "Thanks!")
    rated_visit(live_api, venue, 1, "Bad")
    axe = AXE.read_text()
    for viewport in (DESKTOP, PHONE):
        page = new_page(m["owner_key"], viewport, bypass_csp=True)
        for path in ("/dashboard/feedback", "/dashboard/analytics"):
            page.goto(path)
            ready(page)
            page.wait_for_load_state("networkidle")
            page.add_script_tag(content=axe)
            result = page.evaluate(
                "async () => await axe.run(document, {resultTypes: ['violations']})"
            )
            assert result["violations"] == [], (path, viewport, result["violations"])
        # the analytics page's responsiveness section: this week's row and the benchmarks
        page.wait_for_selector("#responsiveness-table tbody tr")
        last = page.locator("#responsiveness-table tbody tr").last.inner_text()
        assert "\t2\t1\t1\t0\t100.0%" in last, last  # 2 given, 1 answered, 1 pending
        assert "Facebook" in page.locator("#facebook-benchmark").inner_text()
