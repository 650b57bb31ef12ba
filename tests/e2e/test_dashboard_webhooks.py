"""The owner's Webhooks page (Settings) in Chromium at 1280 x 800 and 390 x 844: add an
endpoint (the signing secret shown once, copied with a button), see its deliveries and their
last attempts, replay one, see an endpoint failing, delete it (asked first); axe-core clean.

The server here accepts loopback receivers (`WEBHOOKS_ALLOW_HTTP_LOOPBACK=1`, as `make run`
does): a gunicorn of this module's own, on the suite's live database. The deliveries are sent
by the worker's own code, in this process, whenever the test wants them sent.

`DASHBOARD_SCREENSHOTS=/some/dir` saves a screenshot of each state there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from core import webhooks
from core.delivery import Worker
from core.uow import make_engine
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
    unlock_code,
)
from tests.e2e.test_dashboard_till import axe_clean
from tests.receiver import Receiver
from tests.servers import start_gunicorn

pytestmark = pytest.mark.e2e
__all__ = ["browser", "new_page"]  # fixtures, used by name

WIDTHS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]


@pytest.fixture(scope="module")
def live_server(live_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The suite's live server, but accepting webhook URLs on loopback (this module only)."""
    server = start_gunicorn(
        live_database_url,
        tmp_path_factory.mktemp("webhooks-live") / "gunicorn.log",
        env={"WEBHOOKS_ALLOW_HTTP_LOOPBACK": "1"},
        workers=1,
        threads=4,
    )
    yield server.base
    server.stop()


@pytest.fixture(scope="module")
def engine(live_database_url: str) -> Iterator[Engine]:
    engine = make_engine(live_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _send_due(engine: Engine) -> int:
    """What the worker process would do now: send every due delivery (of every merchant)."""
    worker = Worker(sessionmaker(engine), webhooks.UrlPolicy(allow_http_loopback=True))
    return worker.drain()


@pytest.mark.parametrize("viewport", WIDTHS)
def test_an_owner_adds_a_webhook_reads_its_deliveries_replays_one_and_deletes_it(
    live_api: Client,
    new_page: Any,
    viewport: dict[str, int],
    receiver: Receiver,
    engine: Engine,
) -> None:
    m = merchant(live_api, "Hook Bakery")
    owner: Client = m["owner"]
    venue = circle_venue(owner, "Hook Bakery", *HELSINKI)
    active_offer(owner, [venue["id"]], "Free bun")
    page = new_page(m["owner_key"], viewport, bypass_csp=True)  # to inject axe-core at the end
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    asked: list[str] = []
    page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    width = viewport["width"]

    # From Settings, where the link is.
    page.click("nav[aria-label=Dashboard] >> text=Settings")
    page.wait_for_url("**/dashboard/settings")
    page.click("main >> a:text-is('Webhooks')")
    page.wait_for_url("**/dashboard/settings/webhooks")
    ready(page)
    assert page.locator("nav a[aria-current=page]").inner_text() == "Settings"
    assert page.locator("#endpoints li.empty").inner_text().startswith("No endpoint yet")

    # What the form refuses, said on its fields: no URL, no event, a private address.
    page.click("#add-webhook")
    page.wait_for_selector("#url-error")
    for box in page.locator("input[name=events]").all():
        box.uncheck()
    page.fill("#url", "http://10.1.2.3/hook")
    page.click("#add-webhook")
    page.wait_for_selector("#events-error")
    page.check("input[value='checkin.verified']")
    page.check("input[value='unlock.created']")
    page.click("#add-webhook")
    page.wait_for_selector("#url-error >> text=a private address")
    assert page.locator("#url").get_attribute("aria-invalid") == "true"
    assert owner.list_webhooks() == []

    # Added with the keyboard: the secret is shown once, focused, and the Copy button copies it.
    page.fill("#url", receiver.url())
    page.press("#url", "Enter")
    page.wait_for_selector("#new-secret:not([hidden])")
    secret = page.locator("#secret-value").input_value()
    assert secret.startswith("whsec_")
    assert page.evaluate("document.activeElement.id") == "new-secret"
    page.click("#copy-secret")
    page.wait_for_selector("#status >> text=Copied the signing secret.")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    [hook] = owner.list_webhooks()
    assert hook["events"] == ["checkin.verified", "unlock.created"]
    item = page.locator(f"li[data-webhook='{hook['id']}']")
    assert receiver.url() in item.inner_text()
    assert "Verified check-ins, Unlocked offers" in item.inner_text()
    assert "Active" in item.inner_text()
    shot(page, f"state-webhooks-secret-{width}")
    page.click("#secret-done")
    assert page.locator("#secret-value").input_value() == ""
    assert secret not in page.content()  # gone from the page

    # A check-in and its unlock; the receiver fails the first delivery, takes the second.
    receiver.answers = [500]
    unlock_code(live_api, venue)
    assert _send_due(engine) >= 2
    item.locator("button:text-is('Deliveries')").focus()
    page.keyboard.press("Enter")  # the keyboard path
    rows = item.locator("tbody tr")
    rows.first.wait_for()
    assert item.locator("button:text-is('Deliveries')").get_attribute("aria-expanded") == "true"
    assert rows.count() == 2
    statuses = {
        row.locator("th").inner_text().split("\n")[0]: row.inner_text() for row in rows.all()
    }
    failed = [name for name, row in statuses.items() if "HTTP 500" in row]
    assert len(failed) == 1 and "Pending" in statuses[failed[0]], statuses
    assert "next try in" in statuses[failed[0]]
    [other] = [row for name, row in statuses.items() if name not in failed]
    assert "Delivered" in other and "HTTP 200" in other
    shot(page, f"state-webhooks-deliveries-{width}")

    # Replay the failed one: sent again with the same webhook-id, now delivered.
    row = item.locator("tbody tr", has_text="HTTP 500")
    webhook_id = row.locator("th .mono").inner_text()
    row.locator("button:text-is('Replay')").click()
    page.wait_for_selector("#status.status-success >> text=will be sent again")
    assert _send_due(engine) == 1
    item.locator("button:text-is('Refresh')").click()
    page.wait_for_selector(f"li[data-webhook='{hook['id']}'] tbody tr >> text=HTTP 200 >> nth=1")
    replayed = item.locator("tbody tr", has_text=webhook_id).inner_text()
    assert "Delivered" in replayed and "HTTP 500" in replayed and "2 attempts" in replayed
    sent = [h["webhook-id"] for _, h, _ in receiver.requests]
    assert sent.count(webhook_id) == 2
    assert len(receiver.verified(secret)) == 3  # the secret the page showed signs them

    # An endpoint that gave up is marked failing.
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE webhook_endpoints SET failing_since = now() WHERE id = :id"),
            {"id": hook["id"]},
        )
    page.reload()
    ready(page)
    assert "Failing" in item.locator(".badge").inner_text()
    item.locator("button:text-is('Deliveries')").click()
    rows.first.wait_for()
    shot(page, f"state-webhooks-{width}")
    failures = axe_clean(page, f"webhooks ({width})")
    assert not failures, "\n".join(failures)

    # Delete it, asked first.
    item.locator("button:text-is('Delete')").click()
    page.wait_for_selector("#status.status-success >> text=Deleted the endpoint")
    assert asked[-1].startswith(f"Delete the endpoint {receiver.url()}?")
    assert owner.list_webhooks() == []
    assert page.locator("#endpoints li.empty").count() == 1
    assert page.evaluate("document.activeElement.id") == "endpoints-title"
