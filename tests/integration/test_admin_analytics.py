"""The analytics routes through HTTP: a real gateway with a master key and a SQLite data dir, ledger
rows written through a second handle on its state file (as another worker would), then calls by
an admin, a virtual key and no key; bad parameters; a real call through the gateway to a fake
upstream shows up in the request log and its detail."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest_asyncio

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.openai import FakeOpenAI
from unigate.state import UsageRow, open_state
from unigate.state.db import Sql
from unigate.state.sql_analytics import SqlAnalytics

MASTER = "sk-master-analytics-test"
NOW = time.time()
HOUR = 3600.0


def _rows() -> list[UsageRow]:
    """Three requests in the last hours: one that fell back (two attempts), one that failed for
    good, one plain, and one from 3 days ago (outside the default 24 h)."""
    base = NOW - 2 * HOUR
    return [
        UsageRow(base, "r-fb", attempt=1, key_id="key_a", team="eng", requested_model="smart",
                 served_model="anthropic/claude", deployment="anthropic/claude", provider="anthropic",
                 latency_ms=90.0, status=529, error_code="overloaded"),
        UsageRow(base + 0.2, "r-fb", attempt=2, key_id="key_a", team="eng", requested_model="smart",
                 served_model="openai/gpt-4.1", deployment="openai/gpt-4.1", provider="openai", input_tokens=100,
                 output_tokens=20, cost_usd=0.002, latency_ms=800.0, ttft_ms=120.0, status=200, stream=True),
        UsageRow(base + 60, "r-err", attempt=1, key_id="key_b", requested_model="fast", served_model="openai/mini",
                 deployment="openai/mini", provider="openai", latency_ms=30.0, status=502, error_code="upstream_error"),
        UsageRow(base + 120, "r-ok", attempt=1, key_id="key_b", requested_model="fast", served_model="openai/mini",
                 deployment="openai/mini", provider="openai", input_tokens=10, output_tokens=5, cost_usd=0.0001,
                 latency_ms=45.0, status=200),
        UsageRow(NOW - 3 * 86400, "r-old", attempt=1, key_id="key_a", requested_model="fast",
                 served_model="openai/mini", deployment="openai/mini", provider="openai", latency_ms=10.0, status=200),
    ]


@pytest_asyncio.fixture
async def gw(start_gateway: GatewayFactory, openai_fake: FakeOpenAI, tmp_path: Any) -> RunningGateway:
    env = {"UNIGATE_MASTER_KEY": MASTER, "UNIGATE_DATA_DIR": str(tmp_path), "OPENAI_API_KEY": "sk-up",
           "OPENAI_BASE_URL": openai_fake.url + "/v1"}
    # the rows first: the gateway's background task rolls up what it finds at start-up (a row
    # written later into an hour it already rolled up is a late row, found within a minute)
    st = await open_state(str(tmp_path / "unigate.db"), None, None)
    try:
        assert await st.ledger.write(_rows()) == 5
    finally:
        await st.close()
    return await start_gateway(env=env)


async def test_the_rollups_are_filled_in_the_background(gw: RunningGateway, tmp_path: Any) -> None:
    st = await open_state(str(tmp_path / "unigate.db"), None, None)
    try:
        an = SqlAnalytics(st.db)
        # the fill takes a few steps (six hours each) to roll up every whole hour that ended 15
        # minutes ago or more; the 5 rows are all below that
        rolled, mark, target = 0, None, 0.0
        for _ in range(200):  # bounded: 10 s
            [[n]] = await st.db.fetch(Sql("SELECT coalesce(sum(attempts), 0) FROM an_hour_route"))
            rolled, mark = int(n), await an.filled_to()
            target = (time.time() - 900) // 3600 * 3600
            if rolled == 5 and mark in (target, target - 3600):  # (an hour may have ended meanwhile)
                break
            await asyncio.sleep(0.05)
        assert rolled == 5 and mark in (target, target - 3600)
    finally:
        await st.close()
    status, body = await get(gw, "/admin/analytics/summary", start=int(NOW - 4 * 86400))
    assert status == 200 and body["totals"]["attempts"] == 5


async def get(gw: RunningGateway, path: str, auth: str | None = MASTER, **params: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {auth}"} if auth else {}
    url = gw.url + path + ("?" + urlencode(params) if params else "")
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        assert r.headers["Content-Type"].startswith("application/json")
        return r.status, orjson.loads(await r.read())


async def test_summary_timeseries_log_and_detail(gw: RunningGateway) -> None:
    status, body = await get(gw, "/admin/analytics/summary", group_by="model")
    assert status == 200, body
    t = body["totals"]
    # three requests in 24 h (the fallback counts once), four attempts; one request failed
    assert (t["requests"], t["attempts"], t["errors"], t["input_tokens"]) == (3, 4, 1, 110)
    assert abs(t["error_rate"] - 1 / 3) < 1e-6 and abs(t["cost_usd"] - 0.0021) < 1e-9
    assert 500 < t["latency_p99_ms"] <= 1000 and 100 < t["ttft_p50_ms"] <= 150
    assert [(g["group"], g["requests"]) for g in body["groups"]] == [("fast", 2), ("smart", 1)]
    assert body["group_by"] == "model" and body["end"].endswith("Z")

    status, body = await get(gw, "/admin/analytics/summary", group_by="provider", start=int(NOW - 4 * 86400))
    assert {g["group"]: (g["requests"], g["attempts"]) for g in body["groups"]} == {"openai": (4, 4), "anthropic": (0, 1)}

    status, body = await get(gw, "/admin/analytics/timeseries", bucket="hour", group_by="key", limit=1)
    assert status == 200, body
    assert len(body["points"]) in (24, 25) and sum(p["requests"] for p in body["points"]) == 3
    assert [s["group"] for s in body["series"]] == ["key_b"] and sum(p["requests"] for p in body["series"][0]["points"]) == 2

    status, body = await get(gw, "/admin/analytics/requests", limit=2)
    assert status == 200, body
    assert [r["request_id"] for r in body["data"]] == ["r-ok", "r-err"] and body["next_cursor"]
    status, more = await get(gw, "/admin/analytics/requests", limit=2, cursor=body["next_cursor"])
    assert [r["request_id"] for r in more["data"]] == ["r-fb"] and more["next_cursor"] is None
    fb = more["data"][0]
    assert (fb["attempts"], fb["provider"], fb["status"], fb["model"], fb["input_tokens"]) == (2, "openai", "ok", "smart", 100)
    status, errs = await get(gw, "/admin/analytics/requests", status="error", key="key_b")
    assert status == 200, errs
    assert [r["request_id"] for r in errs["data"]] == ["r-err"] and errs["data"][0]["error"] == "upstream_error"

    status, one = await get(gw, "/admin/analytics/requests/r-fb")
    assert status == 200 and one["request_id"] == "r-fb"
    assert [(a["attempt"], a["provider"], a["status"], a["http_status"]) for a in one["attempts"]] == [
        (1, "anthropic", "error", 529), (2, "openai", "ok", 200)]
    status, missing = await get(gw, "/admin/analytics/requests/nope")
    assert status == 404 and missing["error"]["code"] == "request_not_found"


async def test_a_call_through_the_gateway_is_in_the_log(gw: RunningGateway) -> None:
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/v1/chat/completions", headers={
            "Authorization": f"Bearer {MASTER}"}, json={"model": "openai/gpt-4o-mini", "messages": [
            {"role": "user", "content": "hi"}]}) as r:
        assert r.status == 200, await r.text()
        rid = r.headers["x-request-id"]
    await gw.gateway.ledger.flush()
    status, one = await get(gw, f"/admin/analytics/requests/{rid}")
    assert status == 200, one
    assert one["request"]["model"] == "openai/gpt-4o-mini" and one["request"]["status"] == "ok"
    assert one["request"]["input_tokens"] > 0 and len(one["attempts"]) == 1
    status, page = await get(gw, "/admin/analytics/requests", limit=1)
    assert page["data"][0]["request_id"] == rid


async def test_auth(gw: RunningGateway) -> None:
    assert (await get(gw, "/admin/keys"))[0] == 200
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/admin/keys", headers={
            "Authorization": f"Bearer {MASTER}"}, json={"name": "vk"}) as r:
        vk = (await r.json())["key"]
    for path in ("summary", "timeseries", "requests", "requests/r-ok"):
        status, body = await get(gw, f"/admin/analytics/{path}", auth=vk)
        assert status == 403 and body["error"]["code"] == "admin_only", path
        status, body = await get(gw, f"/admin/analytics/{path}", auth=None)
        assert status == 401, (path, body)
        status, body = await get(gw, f"/admin/analytics/{path}", auth="sk-wrong")
        assert status == 401, (path, body)


async def test_bad_parameters(gw: RunningGateway) -> None:
    cases = [
        ("summary", {"group_by": "colour"}, "group_by"),
        ("summary", {"start": "yesterday"}, "start"),
        ("summary", {"start": 100, "end": 50}, "start"),
        ("summary", {"start": 0, "end": 401 * 86400}, "start"),
        ("summary", {"limit": 0}, "limit"),
        ("summary", {"groupby": "model"}, "groupby"),
        ("summary", {"key": ""}, "key"),
        ("timeseries", {"bucket": "week"}, "bucket"),
        ("timeseries", {"bucket": "minute", "start": int(NOW - 3 * 86400)}, "bucket"),
        ("timeseries", {"limit": 51}, "limit"),
        ("requests", {"status": "bad"}, "status"),
        ("requests", {"cursor": "%%%"}, "cursor"),
        ("requests", {"cursor": "WzEsMiwzXQ"}, "cursor"),
        ("requests", {"limit": 501}, "limit"),
        ("requests", {"served_model": "x"}, "served_model"),
        ("requests/r-ok", {"x": "1"}, "x"),
    ]
    for path, params, param in cases:
        status, body = await get(gw, f"/admin/analytics/{path}", **params)
        assert status == 400, (path, params, body)
        assert body["error"]["type"] == "invalid_request_error" and body["error"]["param"] == param, (path, params, body)


async def test_without_a_master_key_there_is_no_state(start_gateway: GatewayFactory, tmp_path: Any) -> None:
    gw = await start_gateway(env={"UNIGATE_DATA_DIR": str(tmp_path)})
    status, body = await get(gw, "/admin/analytics/summary", auth=None)
    assert status == 503, body
