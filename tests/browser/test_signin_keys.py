"""Signing in and managing keys through the dashboard, checked against the API itself."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.browser.conftest import MASTER, Dashboard, shot, sign_in


def page_errors(page: Any) -> list[str]:
    # a refused key's 401 is logged by the browser as a failed load: expected where a test asks for it
    return [p for p in page.problems if "Failed to load resource" not in p]


async def test_sign_in_refuses_a_wrong_key_and_signs_out(dashboard: Dashboard, page: Any) -> None:
    await page.goto(dashboard.ui)
    await page.get_by_label("Admin key").fill("sk-not-the-key")
    await page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "not accepted" in await alert.inner_text()
    assert await page.evaluate("sessionStorage.getItem('unigate.key')") is None
    await shot(page, "signin")
    # a virtual key is not an admin key
    await page.get_by_label("Admin key").fill(dashboard.keys["bob"]["key"])
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_text("not an admin key").wait_for()

    await page.get_by_label("Admin key").fill(MASTER)
    await page.keyboard.press("Enter")  # the form submits from the keyboard
    await page.get_by_role("navigation", name="Pages").wait_for()
    # the key stays for this tab's reloads, and goes on sign-out
    await page.reload()
    await page.get_by_role("navigation", name="Pages").wait_for()
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_label("Admin key").wait_for()
    assert await page.evaluate("sessionStorage.getItem('unigate.key')") is None
    assert page_errors(page) == []


async def test_create_key_call_it_then_revoke_it(dashboard: Dashboard, page: Any) -> None:
    await sign_in(page, dashboard, "#/keys")
    await page.get_by_role("button", name="New key").click()
    dialog = page.get_by_role("dialog")
    # a name that would be markup if it were ever written as HTML
    name = '<img src=x onerror="window.pwned=1">ci key'
    await dialog.get_by_label("Name").fill(name)
    await dialog.get_by_label("Requests / min").fill("120")
    await dialog.get_by_label("Budget (USD)").fill("5")
    await dialog.get_by_role("button", name="Create key").click()
    secret_el = page.get_by_test_id("new-secret")
    await secret_el.wait_for()
    secret = (await secret_el.inner_text()).strip()
    assert secret.startswith("sk-")
    row = page.get_by_role("row").filter(has_text="ci key")
    await row.wait_for()
    assert name in await row.inner_text()
    assert await page.evaluate("window.pwned") is None and await page.locator("td img").count() == 0
    await shot(page, "keys")

    # the key as the API sees it: the limits the form set
    status, keys = await dashboard.api("GET", "/admin/keys")
    assert status == 200
    made = next(k for k in keys["data"] if k["name"] == name)
    assert made["rpm"] == 120 and made["budget_usd"] == 5 and made["budget_period"] == "monthly"
    assert await dashboard.chat(secret, "openai/gpt-4o-mini") == (200, await _any())

    # hiding the secret: it is nowhere on the page any more
    await page.get_by_role("button", name="Done, hide it").click()
    await secret_el.wait_for(state="detached")
    assert secret not in await page.content()

    # change a limit, top up credits
    await row.get_by_role("button", name="Edit").click()
    await dialog.get_by_label("Requests / min").fill("")
    await dialog.get_by_label("Tokens / min").fill("50000")
    await dialog.get_by_role("button", name="Save").click()
    await dialog.wait_for(state="detached")
    status, key = await dashboard.api("GET", f"/admin/keys/{made['id']}")
    assert key["rpm"] is None and key["tpm"] == 50000
    await row.get_by_role("button", name="Top up").click()
    await dialog.get_by_label("Amount (USD)").fill("2.5")
    await dialog.get_by_label("Note").fill("from the dashboard")
    await dialog.get_by_role("button", name="Add credits").click()
    await dialog.wait_for(state="detached")
    status, credits = await dashboard.api("GET", f"/admin/credits/key:{made['id']}")
    assert credits["balance_usd"] == 2.5 and credits["entries"][0]["note"] == "from the dashboard"

    # revoke: confirmed in a dialog, then the key is refused
    await row.get_by_role("button", name="Revoke").click()
    await dialog.get_by_role("button", name="Revoke key").click()
    await row.get_by_text("revoked").wait_for()
    status = 0
    for _ in range(30):  # "stops working everywhere within a second"
        status, _ = await dashboard.chat(secret, "openai/gpt-4o-mini")
        if status == 401:
            break
        await asyncio.sleep(0.1)
    assert status == 401
    assert page_errors(page) == []


async def _any() -> Any:
    class Anything:
        def __eq__(self, other: object) -> bool:
            return True

    return Anything()


async def test_rotate_shows_the_new_secret_once(dashboard: Dashboard, page: Any) -> None:
    status, key = await dashboard.api("POST", "/admin/keys", json={"name": "second-key"})
    assert status == 201
    await sign_in(page, dashboard, "#/keys")
    row = page.get_by_role("row").filter(has_text="second-key")
    await row.get_by_role("button", name="Rotate").click()
    await page.get_by_role("dialog").get_by_role("button", name="Rotate").click()
    new = (await page.get_by_test_id("new-secret").inner_text()).strip()
    assert new.startswith("sk-") and new != key["key"]
    assert (await dashboard.chat(new, "openai/gpt-4o-mini"))[0] == 200
    assert (await dashboard.chat(key["key"], "openai/gpt-4o-mini"))[0] == 401  # no grace asked for


async def test_create_team_and_audit_log(dashboard: Dashboard, page: Any) -> None:
    await sign_in(page, dashboard, "#/keys")
    await page.get_by_role("button", name="New team").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Id").fill("research")
    await dialog.get_by_label("Name").fill("Research")
    await dialog.get_by_label("Budget (USD)").fill("100")
    await dialog.get_by_label("First top-up (USD)").fill("7.5")
    await dialog.get_by_role("button", name="Create team").click()
    await page.get_by_role("row").filter(has_text="Research").wait_for()
    status, team = await dashboard.api("GET", "/admin/teams/research")
    assert status == 200 and team["budget_usd"] == 100 and team["uses_credits"] is True
    status, credits = await dashboard.api("GET", "/admin/credits/team:research")
    assert status == 200 and credits["balance_usd"] == 7.5
    # a refused change keeps the dialog open with the gateway's message
    await page.get_by_role("button", name="New team").click()
    await dialog.get_by_label("Id").fill("research")
    await dialog.get_by_label("Name").fill("Again")
    await dialog.get_by_role("button", name="Create team").click()
    await dialog.get_by_role("alert").wait_for()
    await dialog.get_by_role("button", name="Cancel").click()
    await dialog.wait_for(state="detached")
    # the keyboard: a dialog opens with focus inside it and Escape closes it
    await page.get_by_role("button", name="New team").focus()
    await page.keyboard.press("Enter")
    await dialog.wait_for()
    assert await page.evaluate("() => document.activeElement.closest('dialog') !== null")
    await page.keyboard.press("Escape")
    await dialog.wait_for(state="detached")

    await page.get_by_role("link", name="Audit log").click()
    await page.get_by_role("row").filter(has_text="team.create").first.wait_for()
    status, audit = await dashboard.api("GET", "/admin/audit?limit=100")
    rows = page.locator("tbody tr")
    assert await rows.count() == len(audit["data"])
    assert audit["data"][0]["action"] in await rows.first.inner_text()
    await page.get_by_label("Target").fill("research")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_function("() => location.hash.includes('target=research')")
    await page.get_by_role("row").filter(has_text="team.create").wait_for()
    assert await rows.count() == 1
    await shot(page, "audit")


async def test_a_viewer_key_signs_in_read_only(dashboard: Dashboard, page: Any) -> None:
    status, viewer = await dashboard.api("POST", "/admin/keys", json={"name": "auditor", "role": "viewer"})
    assert status == 201, viewer
    await page.goto(dashboard.ui + "#/keys")
    await page.get_by_label("Admin key").fill(viewer["key"])
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("navigation", name="Pages").wait_for()
    await page.get_by_test_id("read-only").wait_for()
    assert await page.evaluate("sessionStorage.getItem('unigate.role')") == "viewer"
    # the keys page lists the keys (its own among them, with its role) and offers no change
    row = page.get_by_role("row").filter(has_text="auditor")
    await row.wait_for()
    assert "viewer" in await row.inner_text()
    assert await page.get_by_role("button", name="New key").count() == 0
    assert await page.get_by_role("button", name="Revoke").count() == 0
    # the other pages read as for the master key
    await page.goto(dashboard.ui + "#/audit")
    await page.get_by_role("row").filter(has_text="key.create").first.wait_for()
    assert page_errors(page) == []
