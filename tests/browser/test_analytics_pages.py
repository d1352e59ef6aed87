"""The pages that read the analytics API: the overview's figures and charts (compared with the
API's own answer), the usage explorer and its CSV export, the request log's paging and a
request's attempts, and the overview on a phone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.conftest import SEEDED_ROWS, Dashboard, shot, sign_in

# What a chart drew: pixels of its series' colour, and over how many rows of the canvas they
# spread (a flat line of zeros covers 2 or 3; a series with data goes up and down).
DRAWN = """([testid, rgb]) => {
  const canvas = document.querySelector(`[data-testid=${testid}] canvas`);
  if (!canvas) return null;
  const ctx = canvas.getContext("2d");
  const { data, width, height } = ctx.getImageData(0, 0, canvas.width, canvas.height);
  let pixels = 0;
  const rows = new Set();
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - rgb[0]) < 40 && Math.abs(data[i + 1] - rgb[1]) < 40 && Math.abs(data[i + 2] - rgb[2]) < 40
        && data[i + 3] > 200) {
      pixels++;
      rows.add(Math.floor(i / 4 / width));
    }
  }
  return { pixels, rows: rows.size, width, height };
}"""
BLUE, GREEN = (37, 99, 235), (5, 150, 105)


async def test_overview_charts_show_the_apis_figures(dashboard: Dashboard, page: Any) -> None:
    answers: list[Any] = []
    page.on("response", lambda r: answers.append(r) if "/admin/analytics/" in r.url else None)
    await sign_in(page, dashboard, "#/overview")
    tile = page.get_by_test_id("requests")
    await tile.wait_for()
    # few calls per page, small answers: one time series and two summaries
    overview_calls = [r.url for r in answers]
    assert len(overview_calls) == 3, overview_calls
    sizes = [len(await r.body()) for r in answers]
    assert sum(sizes) < 64_000, sizes
    summary = next(u for u in overview_calls if "group_by=model" in u)
    status, api = await dashboard.api("GET", summary.split(dashboard.url, 1)[1])
    assert status == 200
    totals = api["totals"]
    # the seeded day (SEEDED_ROWS rows) and the real calls made since, all in the last 24 hours
    assert totals["requests"] >= SEEDED_ROWS + 30
    for testid, name in (("requests", "requests"), ("errors", "errors"), ("spend", "cost_usd"),
                         ("p50", "latency_p50_ms"), ("p95", "latency_p95_ms")):
        shown = await page.get_by_test_id(testid).get_attribute("data-value")
        assert float(shown) == totals[name], (testid, shown, totals[name])
    assert (await tile.locator(".tile-value").inner_text()).replace(",", "") == str(totals["requests"])
    tokens = await page.get_by_test_id("tokens").get_attribute("data-value")
    assert int(tokens) == totals["input_tokens"] + totals["output_tokens"]

    # every chart is a drawn canvas; the requests and spend series rise and fall over the day
    for testid in ("chart-requests", "chart-spend", "chart-tokens", "chart-latency"):
        assert await page.locator(f"[data-testid={testid}] canvas").count() == 1, testid
    requests = await page.evaluate(DRAWN, ["chart-requests", list(BLUE)])
    spend = await page.evaluate(DRAWN, ["chart-spend", list(GREEN)])
    assert requests["pixels"] > 100 and requests["rows"] > 20, requests
    assert spend["pixels"] > 100 and spend["rows"] > 20, spend

    # top models: the API's groups, in its order
    rows = page.get_by_test_id("top-models").locator("tbody tr")
    assert await rows.count() == len(api["groups"])
    for i, g in enumerate(api["groups"]):
        assert (await rows.nth(i).locator("td").first.inner_text()) == g["group"]
    assert await page.get_by_test_id("top-keys").locator("tbody tr").count() >= 2
    await shot(page, "overview")
    assert page.problems == []


async def test_overview_on_a_phone(dashboard: Dashboard, browser: Any) -> None:
    context = await browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1,
                                        is_mobile=True, has_touch=True)
    page = await context.new_page()
    try:
        await page.goto(dashboard.ui)
        await page.get_by_label("Admin key").fill("sk-master-dashboard")
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_test_id("requests").wait_for()
        # nothing wider than the screen: the page does not scroll sideways (tables scroll in their card)
        width = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], width
        chart = page.get_by_test_id("chart-requests")
        box = await chart.bounding_box()
        assert box is not None and box["width"] <= 390
        drawn = await page.evaluate(DRAWN, ["chart-requests", list(BLUE)])
        assert drawn["pixels"] > 100 and drawn["width"] <= 390, drawn
        # the navigation is reachable: it scrolls sideways inside the header
        await page.get_by_role("link", name="Playground").scroll_into_view_if_needed()
        await shot(page, "overview-phone", full_page=True)
        # the wide pages too: their tables scroll inside their cards, the page does not
        for where, ready in (("#/requests", "[data-testid=request-log] tbody tr"), ("#/playground", "textarea"),
                             ("#/keys", "tbody tr")):
            await page.goto(dashboard.ui + where)
            await page.locator(ready).first.wait_for()
            width = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], (where, width)
        await shot(page, "keys-phone")
    finally:
        await context.close()


async def test_usage_explorer_groups_and_exports_csv(dashboard: Dashboard, page: Any) -> None:
    await sign_in(page, dashboard, "#/usage")
    await page.get_by_label("Group by").select_option("key")
    await page.get_by_role("button", name="Apply").click()
    await page.wait_for_function("() => location.hash.includes('group_by=key')")
    table = page.locator("section.card table")
    await table.wait_for()
    status, api = await dashboard.api("GET", "/admin/analytics/summary?group_by=key&limit=50")
    assert status == 200
    body = table.locator("tbody tr")
    assert await body.count() == len(api["groups"])
    first = await body.first.inner_text()
    assert api["groups"][0]["group"] in first
    assert await page.locator("[data-testid=chart-usage] canvas").count() == 1
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Export CSV").click()
    download = await info.value
    assert download.suggested_filename == "usage-key.csv"
    csv = Path(await download.path()).read_text()
    lines = csv.strip().splitlines()
    assert lines[0] == "group,requests,input_tokens,output_tokens,cached_tokens,reasoning_tokens,cost_usd,errors"
    assert any(dashboard.keys["alice"]["id"] in line for line in lines[1:])
    await shot(page, "usage")


async def test_request_log_pages_and_shows_a_fallback(dashboard: Dashboard, page: Any) -> None:
    await sign_in(page, dashboard, "#/requests")
    log = page.get_by_test_id("request-log")
    rows = log.locator("tbody tr")
    await rows.first.wait_for()
    assert await rows.count() == 50
    first_page = await rows.first.inner_text()
    await shot(page, "requests")
    await page.get_by_role("button", name="Load more").click()
    await page.wait_for_function("() => document.querySelectorAll('[data-testid=request-log] tbody tr').length === 100")
    ids = await log.locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert len(set(ids)) == 100  # keyset paging: no row twice

    # filters go into the URL and the query
    await page.get_by_label("Status").select_option("error")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_function("() => location.hash.includes('status=error')")
    await rows.first.wait_for()
    assert all(t.strip() != "ok" for t in await log.locator("tbody tr td:nth-child(5)").all_inner_texts())
    assert first_page  # the unfiltered page had rows

    # a request that fell back: both attempts, the failed one first
    rid = dashboard.fallbacks[0]
    await page.goto(dashboard.ui + f"#/requests/{rid}")
    facts = page.get_by_test_id("request-facts")
    await facts.wait_for()
    assert rid in await facts.inner_text()
    await page.get_by_role("heading", name="Attempts (fell back)").wait_for()
    attempts = page.locator("section.card table tbody tr")
    assert await attempts.count() == 2
    assert "openai/error-503" in await attempts.nth(0).inner_text()
    assert "openai/gpt-4o-mini" in await attempts.nth(1).inner_text()
    await shot(page, "request-detail")
    # an unknown id is the API's 404, said on the page
    await page.goto(dashboard.ui + "#/requests/req_nope")
    await page.get_by_role("alert").wait_for()
    assert "(404)" in await page.get_by_role("alert").inner_text()
