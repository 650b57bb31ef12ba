"""The dashboard in a real browser: Debian's Chromium driven by Playwright against `live_server`
(gunicorn, two workers, its own database).

It draws a geofence on the map, creates and activates an offer through the form, reads the
analytics charts and downloads their CSV, and runs axe-core on every page at desktop and phone
widths while timing each page's load. The till and till devices: `test_dashboard_till.py`.

`DASHBOARD_SCREENSHOTS=/some/dir` saves a screenshot of every page at both widths there.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api as playwright_sync  # a dev dependency: never skipped

from mobile_stub.client import ApiError, Client
from mobile_stub.ntag import SoftTag, random_uid

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).resolve().parents[2] / "dashboard" / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
HELSINKI = (60.1699, 24.9384)  # lat, lon: the map's default centre
LOAD_BUDGET_MS = 1000


# ---- the browser and the merchants ---------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser: Any, live_server: str) -> Iterator[Any]:
    """`new_page(key, viewport)`: a fresh browser context signed in with `key` (or not)."""
    contexts: list[Any] = []
    errors: list[str] = []

    def make(
        key: str | None = None, viewport: dict[str, int] = DESKTOP, *, bypass_csp: bool = False
    ) -> Any:
        context = browser.new_context(
            viewport=viewport, base_url=live_server, accept_downloads=True, bypass_csp=bypass_csp
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        # Refused requests are part of some tests (a bad key, a forbidden page) and Chromium
        # logs each as a console error; a missing asset is caught by its response instead.
        page.on(
            "console",
            lambda message: (
                errors.append(f"{page.url}: {message.text}")
                if message.type == "error"
                and not message.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.on(
            "response",
            lambda response: (
                errors.append(f"{response.url}: HTTP {response.status}")
                if "/dashboard/static/" in response.url and response.status >= 400
                else None
            ),
        )
        if key is not None:
            sign_in(page, key)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, "the pages logged errors:\n" + "\n".join(errors)


def sign_in(page: Any, key: str, next_path: str | None = None) -> None:
    page.goto("/dashboard/sign-in" + (f"?next={next_path}" if next_path else ""))
    page.fill("#api_key", key)
    # The form posts and the answer is a new page (the dashboard, or the form with its error):
    # wait for that one, not for the sign-in page that is already loaded (which returned at
    # once, and a loaded machine then read the old page).
    with page.expect_navigation():
        page.click("button[type=submit]")


def shot(page: Any, name: str) -> None:
    """A screenshot for people to look at, when DASHBOARD_SCREENSHOTS names a directory."""
    directory = os.environ.get("DASHBOARD_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{directory}/{name}.png", full_page=True)


def ready(page: Any) -> None:
    """The page's script has loaded its data."""
    page.wait_for_selector("body[data-ready=true]", state="attached")


def merchant(live_api: Client, name: str) -> dict[str, Any]:
    owner = live_api.with_token(
        live_api.create_merchant(name, f"{secrets.token_hex(4)}@example.com")["api_key"]
    )
    return {
        "owner": owner,
        "owner_key": owner.token,
        "staff_key": owner.create_key("staff", "till")["api_key"],
        "analyst_key": owner.create_key("analyst")["api_key"],
    }


def circle_venue(owner: Client, name: str, lat: float, lon: float) -> dict[str, Any]:
    return dict(
        owner.create_venue(
            {
                "name": name,
                "timezone": "Europe/Helsinki",
                "location": {"type": "Point", "coordinates": [lon, lat]},
                "radius_m": 40,
                "checkin_cooldown_minutes": 0,
            }
        )
    )


def active_offer(owner: Client, venue_ids: list[str], title: str, **extra: Any) -> dict[str, Any]:
    offer = owner.create_offer(
        {"venue_ids": venue_ids, "title": title, "rule": {"kind": "every_checkin"}, **extra}
    )
    return dict(owner.activate_offer(offer["id"]))


def verified_visit(live_api: Client, venue: dict[str, Any]) -> tuple[Client, dict[str, Any]]:
    """A new user checks in at the venue, standing at its centre: the user and the check-in."""
    user = live_api.with_token(
        live_api.create_user(f"u_{secrets.token_hex(5)}", "correct horse")["token"]
    )
    lon, lat = venue["location"]["coordinates"]
    checkin = user.check_in(
        venue["id"], lat, lon, accuracy_m=8, observed_at=datetime.now(UTC).isoformat()
    )
    assert checkin["status"] == "verified", checkin["reasons"]
    return user, dict(checkin)


def unlock_code(live_api: Client, venue: dict[str, Any], title: str | None = None) -> str:
    """A new user checks in at the venue and gets a code (of the offer called `title`)."""
    _, checkin = verified_visit(live_api, venue)
    [unlock] = [u for u in checkin["unlocks"] if title is None or u["title"] == title]
    return str(unlock["code"])


# ---- signing in ------------------------------------------------------------------------------


def test_each_role_sees_its_pages_and_a_bad_key_is_refused(live_api: Client, new_page: Any) -> None:
    m = merchant(live_api, "Roles Cafe")
    page = new_page()
    sign_in(page, "cok_000000000000_not-a-real-key")
    assert page.locator("#sign-in-error").inner_text() == (
        "That key is not valid, or it has been revoked."
    )
    assert page.locator("#api_key").get_attribute("aria-invalid") == "true"

    expected = {
        "owner_key": [
            "Offers",
            "Venues",
            "Till",
            "Presence code",
            "Feedback",
            "NFC tags",
            "Analytics",
            "Till devices",
            "Settings",
        ],
        "staff_key": ["Till", "Presence code", "Feedback"],
        "analyst_key": ["Analytics"],
    }
    for key_name, nav in expected.items():
        page = new_page(m[key_name])
        assert page.locator("nav[aria-label=Dashboard] a").all_inner_texts() == nav
        assert page.locator(".who-name").inner_text() == "Roles Cafe"
    staff = new_page(m["staff_key"])
    staff.goto("/dashboard/offers")
    assert staff.locator("h1").inner_text() == "Your staff key cannot open this page"

    # Signing in from a deep link returns there; signing out ends the session.
    page = new_page()
    page.goto("/dashboard/analytics")
    assert "/dashboard/sign-in?next=" in page.url
    page.fill("#api_key", m["analyst_key"])
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/analytics")
    # Its figures loaded first: a request still in flight when the session ends answers 401,
    # and the page then (rightly) goes to the sign-in page with `next`, not `signed_out`.
    ready(page)
    page.click("text=Sign out")
    page.wait_for_url("**/dashboard/sign-in?signed_out=1", wait_until="commit")
    page.goto("/dashboard/analytics")
    assert "/dashboard/sign-in" in page.url

    # A revoked key ends its sessions at once.
    analyst = new_page(m["analyst_key"])
    [key] = [k for k in m["owner"].list_keys() if k["role"] == "analyst"]
    m["owner"].revoke_key(key["id"])
    analyst.goto("/dashboard/analytics")
    assert "/dashboard/sign-in" in analyst.url


# ---- venues: drawing geofences ---------------------------------------------------------------


def test_draw_a_polygon_and_a_circle_geofence_and_see_the_apis_validation_errors(
    live_api: Client, new_page: Any
) -> None:
    m = merchant(live_api, "Draw Cafe")
    page = new_page(m["owner_key"])
    page.goto("/dashboard/venues")
    ready(page)
    box = page.locator("#map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    # A polygon: the tool, four corners, and the first corner again to close it.
    page.click(".leaflet-pm-icon-polygon")
    corners = [(cx - 60, cy - 40), (cx + 60, cy - 50), (cx + 70, cy + 40), (cx - 50, cy + 50)]
    for x, y in corners:
        page.mouse.click(x, y)
        page.wait_for_timeout(80)
    page.mouse.click(*corners[0])
    page.wait_for_selector("#venue-form:not([hidden])")
    assert len(page.input_value("#vertices").splitlines()) == 4
    shot(page, "state-venue-drawn")
    page.fill("#name", "Kiosk Polygon")
    page.fill("#category", "kiosk")
    page.fill("#timezone", "Europe/Helsinki")
    page.click("#save-venue")
    page.wait_for_selector("#status.status-success")
    assert page.locator("#status").inner_text() == "Created Kiosk Polygon."

    [polygon] = m["owner"].list_venues()
    assert polygon["geofence"]["type"] in ("Polygon", "MultiPolygon")
    assert polygon["radius_m"] is None
    lon, lat = polygon["location"]["coordinates"]
    assert abs(lat - HELSINKI[0]) < 0.01 and abs(lon - HELSINKI[1]) < 0.01

    # A circle: centre, then a point on its edge.
    page.click(".leaflet-pm-icon-circle")
    page.mouse.click(cx - 150, cy)
    page.mouse.move(cx - 120, cy, steps=4)
    page.mouse.click(cx - 120, cy)
    page.wait_for_selector("#venue-form:not([hidden])")
    radius = float(page.input_value("#radius"))
    assert 20 < radius < 200
    page.fill("#name", "Kiosk Circle")
    page.click("#save-venue")
    page.wait_for_selector("#status.status-success")
    circle = next(v for v in m["owner"].list_venues() if v["name"] == "Kiosk Circle")
    assert circle["radius_m"] == pytest.approx(radius, abs=0.1)

    # The API's validation errors appear on the form's fields.
    page.click("#new-venue")
    page.fill("#name", "Bow tie")
    page.check("input[name=fence_kind][value=polygon]")
    page.fill("#vertices", "60.170, 24.930\n60.171, 24.932\n60.170, 24.932\n60.171, 24.930")
    page.dispatch_event("#vertices", "change")
    page.click("#save-venue")
    page.wait_for_selector("#vertices-error")
    assert "intersect" in page.locator("#vertices-error").inner_text().lower()
    assert page.locator("#vertices").get_attribute("aria-invalid") == "true"
    assert page.evaluate("document.activeElement.classList.contains('error-summary')")
    shot(page, "state-venue-invalid-geometry")

    page.check("input[name=fence_kind][value=circle]")
    page.fill("#lat", "60.17")
    page.fill("#lon", "24.94")
    page.fill("#radius", "5")
    page.click("#save-venue")
    page.wait_for_selector("#radius-error")
    assert "10" in page.locator("#radius-error").inner_text()
    assert page.locator("#vertices-error").count() == 0
    assert [v["name"] for v in m["owner"].list_venues()].count("Bow tie") == 0

    # Editing a venue: choose it in the list, move its circle by typing, save.
    page.click("#cancel-venue")
    page.click("button[data-venue] >> text=Kiosk Circle")
    page.fill("#radius", "75")
    page.dispatch_event("#radius", "change")
    page.click("#save-venue")
    page.wait_for_selector("#status.status-success >> text=Saved Kiosk Circle.")
    assert m["owner"].get_venue(circle["id"])["radius_m"] == 75


# ---- offers ----------------------------------------------------------------------------------


def test_create_an_nth_visit_offer_with_a_schedule_in_the_venues_zone_and_activate_it(
    live_api: Client, new_page: Any
) -> None:
    m = merchant(live_api, "Offer Cafe")
    venue = circle_venue(m["owner"], "Cafe Aalto", *HELSINKI)
    page = new_page(m["owner_key"])
    page.goto("/dashboard/offers/new")
    ready(page)
    page.fill("#title", "Every 3rd coffee free")
    page.check(f"input[name=venue][value='{venue['id']}']")
    page.select_option("#rule_kind", "nth_visit")
    page.fill("#rule_visits", "3")
    page.fill("#rule_within_days", "30")
    page.check("#rule_repeat")
    page.select_option("#min_proof", "nfc_tap")
    page.fill("#starts_at", "2030-07-01T09:00")  # summer time in Helsinki: UTC+3
    page.fill("#ends_at", "2030-12-01T09:00")  # winter time: UTC+2
    page.click("#add-window")
    page.fill("#total_cap", "500")
    page.fill("#holdout_pct", "80")

    preview = page.locator("#preview").inner_text()
    assert "Unlocks on every 3rd verified visit of a customer at Cafe Aalto." in preview
    assert "Only visits in the last 30 days count." in preview
    assert "Mon\u2013Fri 17:00\u201319:00" in preview and "(Europe/Helsinki time)" in preview
    assert "must also tap the venue's NFC tag" in preview
    assert "At most 500 codes in all, one per customer" in preview

    # The API refuses a holdout over 50%: its message is shown on the field.
    shot(page, "state-offer-form-filled")
    page.click("#save-offer")
    page.wait_for_selector("#holdout_pct-error")
    shot(page, "state-offer-form-error")
    assert "50" in page.locator("#holdout_pct-error").inner_text()
    assert page.locator(".error-summary a[href='#holdout_pct']").count() == 1

    page.fill("#holdout_pct", "10")
    page.click("#save-offer")
    page.wait_for_url("**/dashboard/offers")
    ready(page)
    assert page.locator("#status").inner_text() == "Saved “Every 3rd coffee free” (draft)."
    [offer] = m["owner"].list_offers()
    assert offer["status"] == "draft"
    assert offer["rule"] == {"kind": "nth_visit", "visits": 3, "within_days": 30, "repeat": True}
    assert offer["starts_at"] == "2030-07-01T06:00:00+00:00"
    assert offer["ends_at"] == "2030-12-01T07:00:00+00:00"
    assert offer["windows"] == [
        {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "17:00", "end": "19:00"}
    ]
    assert (offer["total_cap"], offer["holdout_pct"], offer["min_proof"]) == (500, 10, "nfc_tap")
    assert offer["requires_presence_code"] is True

    page.click("button[aria-label='Activate Every 3rd coffee free']")
    page.wait_for_selector("#status >> text=is now active")
    assert m["owner"].get_offer(offer["id"])["status"] == "active"
    card = page.locator(f"[data-offer='{offer['id']}']")
    assert card.locator(".badge").inner_text() == "Active"
    card.locator("button", has_text="Pause").click()
    page.wait_for_selector("#status >> text=is now paused")
    assert m["owner"].get_offer(offer["id"])["status"] == "paused"

    # Editing shows the schedule in the venue's zone again, and saves a change.
    page.goto(f"/dashboard/offers/{offer['id']}/edit")
    ready(page)
    assert page.input_value("#starts_at") == "2030-07-01T09:00"
    assert page.input_value("#ends_at") == "2030-12-01T09:00"
    assert page.input_value("#rule_visits") == "3"
    page.fill("#title", "Every 3rd coffee on us")
    page.click("#save-offer")
    page.wait_for_url("**/dashboard/offers")
    assert m["owner"].get_offer(offer["id"])["title"] == "Every 3rd coffee on us"
    assert m["owner"].get_offer(offer["id"])["starts_at"] == "2030-07-01T06:00:00+00:00"


def test_every_rule_kind_can_be_created_from_the_form(live_api: Client, new_page: Any) -> None:
    m = merchant(live_api, "Kinds Cafe")
    venue = circle_venue(m["owner"], "Kinds", *HELSINKI)
    page = new_page(m["owner_key"])
    kinds: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
        "every_checkin": ({}, ("Unlocks on every verified check-in at Kinds.",)),
        "first_visit": ({}, ("Unlocks on a customer's first verified visit at Kinds.",)),
        "nth_visit": (
            {"#rule_visits": "4"},
            ("Unlocks on a customer's 4th verified visit at Kinds.", "It unlocks once."),
        ),
        "top_visitor": (
            {"#rule_window_days": "14", "#rule_min_visits": "3"},
            (
                "with the most verified check-ins over the last 14 days, and at least 3 of them"
                " at Kinds.",
                "a tie does not win, and nobody wins with fewer than 3 visits",
            ),
        ),
        "group": (
            {"#rule_min_people": "4", "#rule_within_minutes": "20"},
            ("at least 4 people check in within 20 minutes of each other at Kinds.", "Everyone in"),
        ),
    }
    for kind, (inputs, phrases) in kinds.items():
        page.goto("/dashboard/offers/new")
        ready(page)
        page.fill("#title", f"A {kind} offer")
        page.check(f"input[name=venue][value='{venue['id']}']")
        page.select_option("#rule_kind", kind)
        for selector, value in inputs.items():
            page.fill(selector, value)
        preview = page.locator("#preview").inner_text()
        for phrase in phrases:
            assert phrase in preview, (kind, preview)
        page.click("#save-offer")
        page.wait_for_url("**/dashboard/offers")
    rules = {o["title"]: o["rule"] for o in m["owner"].list_offers()}
    assert rules == {
        "A every_checkin offer": {"kind": "every_checkin"},
        "A first_visit offer": {"kind": "first_visit"},
        "A nth_visit offer": {"kind": "nth_visit", "visits": 4, "repeat": False},
        "A top_visitor offer": {"kind": "top_visitor", "window_days": 14, "min_visits": 3},
        "A group offer": {"kind": "group", "min_people": 4, "within_minutes": 20},
    }


# ---- the presence-code screen ----------------------------------------------------------------


def test_the_presence_screen_shows_the_current_code_and_refreshes_itself(
    live_api: Client, new_page: Any
) -> None:
    m = merchant(live_api, "Presence Cafe")
    venue = circle_venue(m["owner"], "Counter", *HELSINKI)
    page = new_page(m["staff_key"], {"width": 1024, "height": 768})
    fetches: list[str] = []
    page.on(
        "request", lambda r: fetches.append(r.url) if r.url.endswith("/presence-code") else None
    )
    page.clock.install()
    page.goto(f"/dashboard/presence/{venue['id']}")
    ready(page)
    page.wait_for_selector("#presence[data-code]")
    shown = page.locator("#presence").get_attribute("data-code")
    assert page.locator("#code").inner_text().replace(" ", "") == shown
    current = m["owner"].presence_code(venue["id"])["code"]
    assert shown == current or len(shown) == len(current)  # it may have just rotated
    assert page.locator("#qr path").get_attribute("d").count("M") > 100
    assert re.fullmatch(r"New code in \d+ s", page.locator("#timer").inner_text())
    # A tablet left on for a minute fetches the next code by itself.
    page.clock.run_for(65_000)
    for _ in range(50):
        if len(fetches) >= 2:
            break
        page.wait_for_timeout(100)
    assert len(fetches) >= 2
    assert re.fullmatch(r"New code in \d+ s", page.locator("#timer").inner_text())


# ---- analytics -------------------------------------------------------------------------------


def test_the_analytics_charts_tables_and_csv_match_the_api(
    live_api: Client, new_page: Any, tmp_path: Path
) -> None:
    m = merchant(live_api, "Numbers Cafe")
    venue = circle_venue(m["owner"], "Numbers Bar", *HELSINKI)
    offer = active_offer(m["owner"], [venue["id"]], "Half-price pint")
    codes = [unlock_code(live_api, venue) for _ in range(3)]
    for code in codes[:2]:
        m["owner"].redeem(code, venue["id"])
    with pytest.raises(ApiError):
        m["owner"].redeem(codes[0], venue["id"])  # a refused attempt for the leak report

    page = new_page(m["analyst_key"])
    page.goto("/dashboard/analytics")
    ready(page)
    assert page.locator("#offer").input_value() == offer["id"]

    def cell(table: str, row: str) -> str:
        return str(page.locator(f"{table} tr:has(th:text-is('{row}')) td").first.inner_text())

    assert cell("#funnel-table", "Unlocks") == "3"
    assert cell("#funnel-table", "Redemptions") == "2"
    assert cell("#venue-table", "Numbers Bar") == "2"
    funnel_desc = page.locator("#funnel-chart svg desc").text_content()
    assert "Unlocks: 3" in funnel_desc and "Redemptions: 2 (66.7%)" in funnel_desc
    assert page.locator("#funnel-chart svg").get_attribute("role") == "img"
    assert "2 in all" in page.locator("#time-chart svg desc").text_content()
    assert page.locator("#time-chart svg rect.chart-bar").count() >= 30  # a bar per day
    assert "no holdout" in page.locator("#lift").inner_text()
    assert cell("#health-table", "Half-price pint") == "active"
    leaks = page.locator("#leaks").inner_text()
    assert "Refused at the till: Already redeemed\t1" in leaks

    # CSV: the API's for redemptions, built in the page for the funnel.
    with page.expect_download() as download:
        page.click("#time-csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sum(int(r["redemptions"]) for r in rows) == 2 and set(rows[0]) == {
        "day",
        "redemptions",
    }
    with page.expect_download() as download:
        page.click("#funnel-csv")
    funnel_csv = Path(download.value.path()).read_text()
    funnel = {r["step"]: r["count"] for r in csv.DictReader(io.StringIO(funnel_csv))}
    assert funnel["Unlocks"] == "3" and funnel["Redemptions"] == "2"

    # A holdout offer shows its lift section (users' windows have not ended yet).
    held = active_offer(m["owner"], [venue["id"]], "Coin toss", holdout_pct=50)
    page.reload()
    ready(page)
    page.select_option("#offer", held["id"])
    page.wait_for_selector("#lift >> text=Not enough finished 30-day windows yet")
    assert page.locator("#lift table").count() == 1


# ---- accessibility, keyboard and speed on every page ------------------------------------------


@pytest.fixture(scope="module")
def shop(live_server: str) -> dict[str, Any]:
    """A merchant with venues of both kinds, offers of every rule kind and some activity."""
    from mobile_stub.client import HttpTransport

    api = Client(HttpTransport(live_server))
    m = merchant(api, "Cafe Aalto & Co")
    owner: Client = m["owner"]
    venues = [circle_venue(owner, f"Aalto {n}", 60.1690 + n * 0.001, 24.9390) for n in range(3)]
    venues.append(
        dict(
            owner.create_venue(
                {
                    "name": "Kiosk Esplanadi",
                    "timezone": "Europe/Helsinki",
                    "location": {"type": "Point", "coordinates": [24.9460, 60.1676]},
                    "geofence": {
                        "type": "Polygon",
                        "coordinates": [
                            [
                                [24.9457, 60.1674],
                                [24.9463, 60.1674],
                                [24.9463, 60.1678],
                                [24.9457, 60.1678],
                                [24.9457, 60.1674],
                            ]
                        ],
                    },
                }
            )
        )
    )
    ids = [v["id"] for v in venues]
    active_offer(owner, ids[:1], "Free coffee", holdout_pct=20)
    active_offer(owner, ids, "Cinnamon bun", code_ttl_minutes=60, total_cap=100)
    for rule in (
        {"kind": "first_visit"},
        {"kind": "nth_visit", "visits": 5, "within_days": 30},
        {"kind": "top_visitor", "window_days": 30},
        {"kind": "group", "min_people": 3, "within_minutes": 15},
    ):
        owner.create_offer({"venue_ids": ids[1:], "title": f"The {rule['kind']} one", "rule": rule})
    for _ in range(3):
        code = unlock_code(api, venues[0], "Cinnamon bun")
        owner.redeem(code, ids[0])
    return {**m, "venues": venues}


PAGES = [
    ("sign-in", "/dashboard/sign-in"),
    ("offers", "/dashboard/offers"),
    ("offer-form", "/dashboard/offers/new"),
    ("venues", "/dashboard/venues"),
    ("till", "/dashboard/till"),
    ("presence-venues", "/dashboard/presence"),
    ("presence", "/dashboard/presence/{venue}"),
    ("nfc-tags", "/dashboard/nfc-tags"),
    ("analytics", "/dashboard/analytics"),
    ("devices", "/dashboard/settings/devices"),
    ("settings", "/dashboard/settings"),
    ("webhooks", "/dashboard/settings/webhooks"),
    ("feedback", "/dashboard/feedback"),
]


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_every_page_passes_axe_and_loads_in_well_under_a_second(
    width: str, shop: dict[str, Any], new_page: Any, record_property: Any
) -> None:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run scripts/dashboard.sh (make test does)")
    axe = AXE.read_text()
    viewport = DESKTOP if width == "desktop" else PHONE
    shots = os.environ.get("DASHBOARD_SCREENSHOTS")
    page = new_page(None, viewport, bypass_csp=True)  # to inject axe-core, a test tool
    timings: dict[str, dict[str, float]] = {}
    failures: list[str] = []
    for name, path in PAGES:
        if name == "offers":
            sign_in(page, shop["owner_key"])
        # Each page is loaded twice: the first visit (cold) and a repeat one (warm cache); the
        # budget applies to the better of the two, so one hiccup of a busy machine is forgiven.
        for visit in ("first", "again"):
            page.goto(path.format(venue=shop["venues"][3]["id"]))
            if name != "sign-in":
                ready(page)
            page.wait_for_load_state("networkidle")
            measured = page.evaluate(
                """() => {
                  const nav = performance.getEntriesByType('navigation')[0];
                  const ready = performance.getEntriesByName('dashboard-ready')[0];
                  const load = nav.loadEventEnd - nav.startTime;
                  return {load, ready: Math.max(load, ready ? ready.startTime : 0)};
                }"""
            )
            timings.setdefault(name, {}).update({f"{k}_{visit}": v for k, v in measured.items()})
        page.add_script_tag(content=axe)
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        for violation in result["violations"]:
            targets = [node["target"] for node in violation["nodes"]][:5]
            failures.append(
                f"{name} ({width}): {violation['id']} [{violation['impact']}] "
                f"{violation['help']} at {targets}"
            )
        if name != "presence":
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            if overflow > 0:
                failures.append(f"{name} ({width}): {overflow} px wider than the screen")
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=f"{shots}/{name}-{width}.png", full_page=name != "venues")
    record_property("page_timings_ms", json.dumps(timings))
    print(f"\npage load ({width}), ms: load event / data drawn, first visit and again")
    for name, t in timings.items():
        print(
            f"  {name:16} {t['load_first']:5.0f} / {t['ready_first']:5.0f}"
            f"    {t['load_again']:5.0f} / {t['ready_again']:5.0f}"
        )
    slow = {
        n: t for n, t in timings.items() if min(t["ready_first"], t["ready_again"]) > LOAD_BUDGET_MS
    }
    assert not failures, "\n".join(failures)
    assert not slow, f"pages slower than {LOAD_BUDGET_MS} ms: {slow}"


def test_the_offers_list_and_venue_form_work_with_the_keyboard(
    shop: dict[str, Any], new_page: Any
) -> None:
    owner: Client = shop["owner"]
    draft = owner.create_offer(
        {
            "venue_ids": [shop["venues"][0]["id"]],
            "title": "Keyboard draft",
            "rule": {"kind": "every_checkin"},
        }
    )
    page = new_page(shop["owner_key"])
    page.goto("/dashboard/offers")
    ready(page)
    activate = "button[aria-label='Activate Keyboard draft']"
    for _ in range(200):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('aria-label')") == (
            "Activate Keyboard draft"
        ):
            break
    else:
        pytest.fail("Tab never reached the Activate button")
    page.keyboard.press("Enter")
    page.wait_for_selector("#status >> text=is now active")
    assert owner.get_offer(draft["id"])["status"] == "active"
    assert page.locator(activate).count() == 0

    # A venue without the mouse: New venue, the fields, Save.
    page.goto("/dashboard/venues")
    ready(page)
    page.focus("#new-venue")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "name"
    page.keyboard.type("Typed Kiosk")
    for selector, value in (("#lat", "60.1702"), ("#lon", "24.9412"), ("#radius", "30")):
        page.focus(selector)
        page.keyboard.press("Control+A")  # the radius starts at 50
        page.keyboard.type(value)
    page.keyboard.press("Tab")
    page.focus("#save-venue")
    page.keyboard.press("Enter")
    page.wait_for_selector("#status >> text=Created Typed Kiosk.")
    typed = next(v for v in owner.list_venues() if v["name"] == "Typed Kiosk")
    assert typed["radius_m"] == 30
    assert typed["location"]["coordinates"] == [24.9412, 60.1702]


# ---- proof of presence: NFC tags, checking a guest in, the split by proof ------------------


def test_register_an_nfc_tag_print_its_sheet_once_and_remove_it(
    live_api: Client, new_page: Any
) -> None:
    m = merchant(live_api, "Tag Bar")
    venue = circle_venue(m["owner"], "Tag Bar", *HELSINKI)
    page = new_page(m["owner_key"])
    page.goto("/dashboard/nfc-tags")
    ready(page)
    assert page.locator("#no-tags").is_visible()
    page.fill("#uid", "not a uid")
    page.click("#register")
    page.wait_for_selector("#uid-error")
    uid = random_uid()
    page.fill("#uid", ":".join(uid[i : i + 2] for i in range(0, 14, 2)))  # as apps show it
    page.fill("#label", "by the till")
    page.click("#register")
    page.wait_for_selector("#sheet:not([hidden])")
    shot(page, "state-nfc-sheet")
    meta = page.locator("#sheet-meta").inner_text()
    file_key = page.locator("#sheet-file").inner_text()
    url = page.locator("#sheet-url").inner_text()
    assert re.fullmatch(r"[0-9A-F]{32}", meta) and re.fullmatch(r"[0-9A-F]{32}", file_key)
    assert int(page.locator("#sheet-picc-offset").inner_text()) == url.index("picc_data=") + 10
    # The sheet prints alone: the page's controls are hidden on paper.
    page.emulate_media(media="print")
    assert not page.locator("#tag-form").is_visible() and page.locator("#sheet").is_visible()
    page.emulate_media(media="screen")
    # A tag programmed from the sheet works.
    tag = SoftTag(uid, meta, file_key, url)
    user = live_api.with_token(
        live_api.create_user(f"t{secrets.token_hex(4)}", "pass-word-1")["token"]
    )
    assert user.tap(tag.read())["venue_id"] == venue["id"]
    # Once: after "Done" (or a reload) the keys are nowhere on the page.
    page.click("#close-sheet")
    assert page.locator("#sheet").is_hidden()
    page.reload()
    ready(page)
    assert meta not in page.content()
    row = page.locator("#tags li")
    assert row.count() == 1 and "by the till" in row.inner_text() and uid in row.inner_text()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"button[aria-label='Remove tag {uid}']")
    page.wait_for_selector("#status >> text=Removed tag")
    assert m["owner"].list_nfc_tags(venue["id"]) == []
    with pytest.raises(ApiError) as gone:
        user.tap(tag.read())
    assert gone.value.code == "tap_invalid"


def test_the_till_checks_a_guest_in_by_member_code_and_by_wristband(
    live_api: Client, new_page: Any
) -> None:
    m = merchant(live_api, "Festival Gate")
    venue = circle_venue(m["owner"], "Main Gate", *HELSINKI)
    offer = m["owner"].create_offer(
        {
            "venue_ids": [venue["id"]],
            "title": "Free drink",
            "rule": {"kind": "every_checkin"},
            "min_proof": "nfc_tap",
            "per_user_cap": 10,
        }
    )
    m["owner"].activate_offer(offer["id"])
    guest = live_api.with_token(
        live_api.create_user(f"g{secrets.token_hex(4)}", "pass-word-1")["token"]
    )
    uid = random_uid()
    band = SoftTag.programmed(dict(guest.register_card(uid, "wristband")), uid)
    page = new_page(m["staff_key"], PHONE)
    page.goto("/dashboard/till")  # the merchant's one venue: the till is there
    ready(page)
    code = guest.member_code()["code"]
    page.fill("#guest_code", f"{code[:4]} {code[4:]}")
    page.click("#guest-check-in")
    page.wait_for_selector("#guest-result.result-valid")
    shot(page, "state-till-guest-checked-in")
    assert "“Free drink”" in page.locator("#guest-result").inner_text()
    page.fill("#guest_code", band.read())  # the reader types the wristband's URL
    page.click("#guest-check-in")
    page.wait_for_selector("#guest-result.result-valid >> text=Free drink")
    assert [u["title"] for u in guest.wallet()] == ["Free drink", "Free drink"]
    # A read used twice, and a wrong code, are refused in words staff can act on.
    used = band.reads[-1]
    page.fill("#guest_code", used)
    page.click("#guest-check-in")
    page.wait_for_selector("#guest-result.result-error >> text=Card read already used")
    page.fill("#guest_code", "00000000")
    page.click("#guest-check-in")
    page.wait_for_selector("#guest-result.result-error >> text=Member code not valid")


def test_offers_set_their_proof_and_analytics_split_by_it(live_api: Client, new_page: Any) -> None:
    m = merchant(live_api, "Proof Cafe")
    venue = circle_venue(m["owner"], "Proof Cafe", *HELSINKI)
    page = new_page(m["owner_key"])
    page.goto("/dashboard/offers/new")
    ready(page)
    page.fill("#title", "Tap for cake")
    page.check(f"input[name=venue][value='{venue['id']}']")
    page.select_option("#min_proof", "nfc_tap")
    assert "must also tap the venue's NFC tag" in page.locator("#preview").inner_text()
    page.click("#save-offer")
    page.wait_for_url("**/dashboard/offers")
    [offer] = m["owner"].list_offers()
    assert offer["min_proof"] == "nfc_tap"
    m["owner"].activate_offer(offer["id"])
    page.goto(f"/dashboard/offers/{offer['id']}/edit")
    ready(page)
    assert page.locator("#min_proof").input_value() == "nfc_tap"
    # One unlock by a tap, one by staff.
    uid = random_uid()
    tag = SoftTag.programmed(dict(m["owner"].register_nfc_tag(venue["id"], uid)), uid)
    lat, lon = HELSINKI
    tapper = live_api.with_token(
        live_api.create_user(f"p{secrets.token_hex(4)}", "pass-word-1")["token"]
    )
    token = tapper.tap(tag.read())["tap_token"]
    assert tapper.check_in(
        venue["id"], lat, lon, 10, datetime.now(UTC).isoformat(), tap_token=token
    )["unlocks"]
    guest = live_api.with_token(
        live_api.create_user(f"p{secrets.token_hex(4)}", "pass-word-1")["token"]
    )
    staff = live_api.with_token(m["staff_key"])
    staff.staff_check_in(venue["id"], member_code=guest.member_code()["code"])
    page.goto("/dashboard/analytics")
    ready(page)
    page.wait_for_selector("#proof-table[data-loaded=true]")
    row = page.locator(f"#proof-table tr[data-offer='{offer['id']}'] td").all_inner_texts()
    assert row == ["0", "0", "1", "1"]
    assert "1 taps accepted" in page.locator("#proof-nfc").inner_text()
