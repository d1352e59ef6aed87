"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a gateway
served in this process on a real 127.0.0.1 port, its ledger seeded with a day of usage (rows
written through the state layer) and with real calls through the gateway to a fake OpenAI
upstream (tests/fakes/openai.py), fallbacks and errors included.

Chromium comes from `apt-get install chromium` (no `playwright install`: it downloads a browser
build, which this project does not do). Without it, or without the `playwright` package, these
tests skip, and fail under CI."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from tests.conftest import IN_CI
from tests.fakes.openai import FakeOpenAI
from unigate.app import GATEWAY_KEY, create_app
from unigate.config import Config, _apply_env, parse_config, state_path
from unigate.state import open_state
from unigate.state.records import UsageRow

CHROMIUM = os.environ.get("UNIGATE_CHROMIUM", "/usr/bin/chromium")
MASTER = "sk-master-dashboard"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
#: rows written straight into the ledger, spread over the last day
SEEDED_ROWS = 360
SEED_MODELS = [("openai/gpt-4o-mini", "gpt-4o-mini", 0.00015), ("openai/gpt-4.1-mini", "gpt-4.1-mini", 0.0004),
               ("anthropic/claude-3-5-haiku-latest", "claude-3-5-haiku-latest", 0.0008)]


def need_browser() -> None:
    missing = []
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[test]')")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing.append(f"Chromium at {CHROMIUM} (apt-get install -y chromium)")
    if missing:
        msg = f"the browser tests need {' and '.join(missing)}"
        if IN_CI:
            pytest.fail(msg + " (CI must run them)", pytrace=False)
        pytest.skip(msg)


@dataclass
class Dashboard:
    url: str
    fake: FakeOpenAI
    app: web.Application
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: request ids of seeded calls that fell back (two attempts)
    fallbacks: list[str] = field(default_factory=list)

    @property
    def ui(self) -> str:
        return self.url + "/ui/"

    async def api(self, method: str, path: str, key: str = MASTER, **kw: Any) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as s:
            async with s.request(method, self.url + path, headers={"Authorization": f"Bearer {key}"}, **kw) as r:
                body = await r.read()
                ctype = r.headers.get("Content-Type", "")
                return r.status, (await r.json() if "json" in ctype else body.decode())

    async def chat(self, key: str, model: str, stream: bool = False, **extra: Any) -> tuple[int, str]:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream, **extra}
        async with aiohttp.ClientSession() as s:
            async with s.post(self.url + "/v1/chat/completions", json=body,
                              headers={"Authorization": f"Bearer {key}"}) as r:
                await r.read()
                return r.status, r.headers.get("x-request-id", "")


async def seed_history(cfg: Config, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Before the gateway starts, as a gateway that has run for a day would find its state: a
    team, two keys and a day of ledger rows. (Written first, so the analytics rollups take them
    in as they would any old hours.)"""
    state = await open_state(state_path(cfg, env), None, None)
    try:
        await state.keys.create_team({"name": "Engineering"}, actor="master", team_id="eng")
        keys = {}
        for name, team_id in (("alice", "eng"), ("bob", None)):
            key, secret = await state.keys.create_key({"name": name, "team": team_id}, actor="master")
            keys[name] = {"id": key.id, "key": secret}
        rnd = random.Random(14)
        now = time.time()
        key_ids = [keys["alice"]["id"], keys["bob"]["id"], None]
        rows = []
        for i in range(SEEDED_ROWS):
            model, _, price = SEED_MODELS[i % 3]
            key_id = key_ids[rnd.randrange(3)]
            failed = rnd.random() < 0.05
            inp, out = rnd.randint(50, 3000), rnd.randint(10, 800)
            # more traffic in the last hours, so the charts have a shape
            age = 120 + (86400 - 3600) * rnd.random() ** 1.7
            rows.append(UsageRow(time=now - age, request_id=f"req_seed_{i:04d}", endpoint="chat", key_id=key_id,
                                 team="eng" if key_id == key_ids[0] else None, requested_model=model,
                                 served_model=model, deployment=model, provider=model.split("/")[0],
                                 input_tokens=0 if failed else inp, output_tokens=0 if failed else out,
                                 cost_usd=None if failed else round((inp + 4 * out) * price / 1000, 6),
                                 latency_ms=rnd.lognormvariate(6.2, 0.5), ttft_ms=rnd.lognormvariate(5.3, 0.4),
                                 status=500 if failed else 200, error_code="upstream_error" if failed else None,
                                 stream=i % 2 == 0))
        assert await state.ledger.write(rows) == SEEDED_ROWS
        return keys
    finally:
        await state.close()


async def seed_calls(d: Dashboard) -> None:
    """Real calls through the gateway: three callers, two models, streams, errors, fallbacks."""
    alice, bob = d.keys["alice"]["key"], d.keys["bob"]["key"]
    calls = []
    for i in range(30):
        key = (alice, bob, MASTER)[i % 3]
        calls.append(d.chat(key, ("openai/gpt-4o-mini", "openai/gpt-4.1-mini")[i % 2], stream=i % 4 == 0))
    for _ in range(4):
        calls.append(d.chat(alice, "openai/error-500"))
    results = await asyncio.gather(*calls)
    assert sum(1 for s, _ in results if s == 200) == 30, results
    for _ in range(3):
        status, rid = await d.chat(bob, "openai/error-503", fallbacks=["openai/gpt-4o-mini"])
        assert status == 200
        d.fallbacks.append(rid)
    await d.app[GATEWAY_KEY].ledger.flush()


@pytest_asyncio.fixture(scope="session")
async def dashboard() -> AsyncIterator[Dashboard]:
    need_browser()
    fake = FakeOpenAI()
    await fake.start()
    # the embedded model is served (it loads on first use: only the test that chats with it pays)
    env = {"UNIGATE_LOCAL": "on", "UNIGATE_MASTER_KEY": MASTER,
           "UNIGATE_DATA_DIR": tempfile.mkdtemp(prefix="unigate-dashboard-"),
           "OPENAI_API_KEY": "sk-upstream-dashboard", "OPENAI_BASE_URL": fake.url + "/v1"}
    cfg = _apply_env(parse_config({}, where="<test>", env=env), env)
    keys = await seed_history(cfg, env)
    app = create_app(cfg, env)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    d = Dashboard(f"http://127.0.0.1:{port}", fake, app, keys)
    try:
        await seed_calls(d)
        yield d
    finally:
        await runner.cleanup()
        await fake.stop()


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    need_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                                     headless=True, args=["--no-sandbox", "--disable-gpu"])
        yield b
        await b.close()


@pytest_asyncio.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    """A fresh laptop-sized tab; console errors and failed page scripts fail the test."""
    context = await browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    p = await context.new_page()
    problems: list[str] = []
    p.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    p.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    p.problems = problems
    yield p
    await context.close()


async def sign_in(page: Any, d: Dashboard, where: str = "#/overview") -> None:
    await page.goto(d.ui + where)
    await page.get_by_label("Admin key").fill(MASTER)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("navigation", name="Pages").wait_for()


async def shot(page: Any, name: str, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
