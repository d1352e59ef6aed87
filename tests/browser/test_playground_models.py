"""The playground streams an answer (from the fake upstream, and from the embedded model when
it can run here); the models page shows each deployment's breaker state as the router has it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import MASTER, Dashboard, shot, sign_in
from tests.conftest import require_local_model
from unigate.app import GATEWAY_KEY
from unigate.routing.outcome import FailureKind


async def test_playground_streams_from_the_fake_upstream(dashboard: Dashboard, page: Any) -> None:
    await sign_in(page, dashboard, "#/playground")
    await page.get_by_label("Model").select_option("openai/gpt-4o-mini")
    await page.get_by_label("Message").fill("Say hello")
    before = len(dashboard.fake.requests)
    await page.get_by_role("button", name="Send").click()
    answer = page.get_by_test_id("answer")
    await page.wait_for_function(
        "() => document.querySelector('[data-testid=answer]')?.textContent === 'Hello from gpt-4o-mini!'")
    await page.get_by_test_id("stream-stats").filter(has_text="first token").wait_for()
    stats = await page.get_by_test_id("stream-stats").inner_text()
    assert "12 in / 5 out tokens" in stats and "request " in stats
    # the upstream was asked for a stream, with the usage chunk
    sent = dashboard.fake.last.json
    assert sent["stream"] is True and sent["model"] == "gpt-4o-mini"
    assert sent["messages"][-1] == {"role": "user", "content": "Say hello"}
    assert len(dashboard.fake.requests) == before + 1
    # a second turn carries the conversation
    await page.get_by_label("Message").fill("Again")
    await page.keyboard.press("Control+Enter")
    await page.wait_for_function("() => document.querySelectorAll('[data-testid=answer]').length === 1 "
                                 "&& document.querySelectorAll('.turn').length === 4 "
                                 "&& !document.querySelector('.turn.streaming')")
    assert [m["role"] for m in dashboard.fake.last.json["messages"]] == ["user", "assistant", "user"]
    assert await answer.count() == 1
    await shot(page, "playground")
    assert [p for p in page.problems if "Failed to load resource" not in p] == []


async def test_playground_shows_an_upstream_error(dashboard: Dashboard, page: Any) -> None:
    await sign_in(page, dashboard, "#/playground")
    await page.get_by_label("Model").select_option("openai/gpt-4o-mini")
    await page.evaluate("document.querySelector('select[name=model]').append(new Option('nope/none', 'nope/none'))")
    await page.get_by_label("Model").select_option("nope/none")
    await page.get_by_label("Message").fill("hi")
    await page.get_by_role("button", name="Send").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "(404)" in await alert.inner_text()


@pytest.mark.local_model
async def test_playground_streams_from_the_local_model(dashboard: Dashboard, page: Any) -> None:
    require_local_model()
    await sign_in(page, dashboard, "#/playground")
    # the embedded model is the playground's first choice when it is there
    assert await page.get_by_label("Model").input_value() == "local/smollm2"
    await page.get_by_label("Max tokens").fill("12")
    await page.get_by_label("Message").fill("Say hi")
    await page.get_by_role("button", name="Send").click()
    await page.wait_for_function("() => !document.querySelector('.turn.streaming')", timeout=120_000)
    assert (await page.get_by_test_id("answer").inner_text()).strip()
    stats = await page.get_by_test_id("stream-stats").inner_text()
    assert "served by local/" in stats, stats
    await shot(page, "playground-local")


async def test_models_page_shows_breaker_state(dashboard: Dashboard, page: Any) -> None:
    # the router's own record of a deployment that answered 429 "retry after 30 s": open
    assert (await dashboard.chat(MASTER, "openai/error-500"))[0] == 502
    breakers = dashboard.app[GATEWAY_KEY].router.breakers
    breakers.record_failure("openai/error-500", FailureKind.RATE_LIMITED, 30.0)
    await sign_in(page, dashboard, "#/models")
    status, deps = await dashboard.api("GET", "/admin/deployments")
    assert status == 200 and deps["data"]
    table = page.locator("table")
    await table.wait_for()
    rows = page.locator("tbody tr")
    assert await rows.count() == len(deps["data"])
    for d in deps["data"]:
        row = rows.filter(has=page.locator(f'a:text-is("{d["id"]}")'))
        assert await row.locator(f'[data-state="{d["state"]}"]').count() == 1, d
    limited = rows.filter(has=page.locator('a:text-is("openai/error-500")'))
    assert "open: not used (retry in" in await limited.inner_text()
    await shot(page, "models")
