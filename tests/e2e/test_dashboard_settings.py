"""The owner's settings page in Chromium at 1280 x 800 and 390 x 844: API keys (changing one
needs an owner key typed again), staff accounts and the audit log, axe-core clean.

`DASHBOARD_SCREENSHOTS=/some/dir` saves a screenshot of each state there.
"""

from __future__ import annotations

from typing import Any

import pytest

from mobile_stub.client import Client
from tests.e2e.test_dashboard import DESKTOP, PHONE, browser, merchant, new_page, ready, shot
from tests.e2e.test_dashboard_till import axe_clean

pytestmark = pytest.mark.e2e
__all__ = ["browser", "new_page"]  # fixtures, used by name

WIDTHS = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]


@pytest.mark.parametrize("viewport", WIDTHS)
def test_an_owner_manages_keys_staff_and_reads_the_audit_log(
    live_api: Client, new_page: Any, viewport: dict[str, int]
) -> None:
    m = merchant(live_api, "Settings Cafe")
    page = new_page(m["owner_key"], viewport, bypass_csp=True)  # to inject axe-core at the end
    accepted: list[str] = []
    page.on("dialog", lambda dialog: (accepted.append(dialog.message), dialog.accept()))
    page.click("nav[aria-label=Dashboard] >> text=Settings")
    page.wait_for_url("**/dashboard/settings")
    ready(page)
    names = page.locator("#keys-table tbody th").all_inner_texts()
    assert sorted(names) == ["Analyst key", "owner key created at sign-up", "till"]

    # Without the owner key typed again nothing changes: said on the field.
    page.fill("#key_label", "Evening shift")
    page.click("#create-key")
    page.wait_for_selector("#confirm_key-error")
    assert page.locator("#confirm_key").get_attribute("aria-invalid") == "true"
    # A staff key is not an owner key: the proxy refuses it, the form says so.
    page.fill("#confirm_key", m["staff_key"])
    page.click("#create-key")
    page.wait_for_selector("#confirm_key-error >> text=not an owner key")
    assert len(m["owner"].list_keys()) == 3

    page.fill("#confirm_key", m["owner_key"])
    page.click("#create-key")
    page.wait_for_selector("#new-secret:not([hidden])")
    secret = page.locator("#secret-value").inner_text()
    assert secret.startswith("cok_")
    assert page.locator("#secret-title").inner_text() == "New staff key: Evening shift"
    made = [k for k in m["owner"].list_keys() if k["label"] == "Evening shift"]
    assert [k["role"] for k in made] == ["staff"]
    assert page.evaluate("document.activeElement.id") == "new-secret"
    shot(page, f"state-settings-new-key-{viewport['width']}")
    page.click("#secret-done")
    assert page.locator("#secret-value").inner_text() == ""  # gone from the page

    # Revoke it (asked first); the row says so.
    page.click("button[aria-label='Revoke Evening shift']")
    page.wait_for_selector("#status.status-success >> text=Revoked Evening shift.")
    assert accepted[-1].startswith("Revoke Evening shift?")
    [revoked] = [k for k in m["owner"].list_keys() if k["id"] == made[0]["id"]]
    assert revoked["revoked_at"]
    assert "Revoked" in page.locator(f"tr[data-key='{made[0]['id']}']").inner_text()

    # Staff accounts.
    page.fill("#handle", "mika_at_the_bar")
    page.press("#handle", "Enter")  # the keyboard path
    page.wait_for_selector("#staff-list >> text=mika_at_the_bar")
    page.click("button[aria-label='Remove mika_at_the_bar']")
    page.wait_for_selector("#status >> text=Removed mika_at_the_bar.")
    assert page.locator("#staff-list li.empty").count() == 1

    # The audit log, newest first, shows what was just done.
    page.wait_for_selector("#audit-table tbody tr >> text=staff user delete")
    changes = page.locator("#audit-table tbody td:nth-child(2)").all_inner_texts()
    assert changes[:4] == ["staff user delete", "staff user create", "key revoke", "key create"]
    shot(page, f"state-settings-{viewport['width']}")
    failures = axe_clean(page, f"settings ({viewport['width']})")
    assert not failures, "\n".join(failures)
