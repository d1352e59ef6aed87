"""/metrics beyond the ledger's counters: refusals by governance (429 rate and budget, 402
credits, 403 price unknown), calls in flight, breaker states, bounded key and team labels; and
the node's merge of worker snapshots (counters of dead workers kept, their gauges not), the
exposition text's escaping, the per-worker files."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.openai import FakeOpenAI
from unigate.accounting.ledger import Ledger, UsageRecord
from unigate.telemetry.metrics import Metrics, merge, render
from unigate.telemetry.node import NodeShare

MASTER = "sk-master-test"
HI: Any = [{"role": "user", "content": "hi"}]
Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> Samples:
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def total(s: Samples, name: str, **match: str) -> float:
    return sum(v for labels, v in s.get(name, []) if all(labels.get(k) == want for k, want in match.items()))


async def scrape(gw: RunningGateway) -> Samples:
    async with aiohttp.ClientSession() as s, s.get(gw.url + "/metrics") as r:
        assert r.status == 200
        return parse(await r.text())


async def post(gw: RunningGateway, key: str, model: str, **extra: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/v1/chat/completions", json={
            "model": model, "messages": HI, **extra}, headers={"Authorization": f"Bearer {key}"}) as r:
        return r.status, await r.json(content_type=None)


async def new_key(gw: RunningGateway, **fields: Any) -> tuple[str, str]:
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/admin/keys", json={"name": "k", **fields},
                                                    headers={"Authorization": f"Bearer {MASTER}"}) as r:
        made = await r.json()
        assert r.status == 201, made
        return made["id"], made["key"]


async def test_governance_refusals_are_counted_by_reason(gw_openai: RunningGateway) -> None:
    _, rated = await new_key(gw_openai, rpm=1)
    _, broke = await new_key(gw_openai, credits_usd=0.000000001)
    _, tight = await new_key(gw_openai, budget_usd=0.000000001, budget_period="total")
    _, budgeted = await new_key(gw_openai, budget_usd=5.0, budget_period="total")
    got = [await post(gw_openai, rated, "openai/gpt-4o-mini") for _ in range(3)]
    assert [s for s, _ in got] == [200, 429, 429]
    assert (await post(gw_openai, broke, "openai/gpt-4o-mini"))[0] == 402
    assert (await post(gw_openai, tight, "openai/gpt-4o-mini"))[0] == 429
    status, body = await post(gw_openai, budgeted, "openai/no-price-for-this-model")
    assert status == 403 and body["error"]["code"] == "model_price_unknown"
    s = await scrape(gw_openai)
    assert total(s, "unigate_refusals_total", reason="rate_limit_exceeded", status="429") == 2
    assert total(s, "unigate_refusals_total", reason="budget_exceeded", status="429") == 1
    assert total(s, "unigate_refusals_total", reason="insufficient_credits", status="402") == 1
    assert total(s, "unigate_refusals_total", reason="model_price_unknown", status="403") == 1
    # refused calls reached no upstream: the ledger, and so the request series, has only the one call
    assert total(s, "unigate_requests_total") == 1


async def test_in_flight_and_breaker_state(start_gateway: GatewayFactory, openai_fake: FakeOpenAI) -> None:
    gw = await start_gateway({"deployments": [{"name": "bad", "model": "openai/error-500"},
                                              {"name": "slow", "model": "openai/slow-1500"}],
                              "routing": {"breaker": {"min_requests": 2, "cooldown": 60, "max_cooldown": 60}}},
                             env={"OPENAI_API_KEY": "sk-up", "OPENAI_BASE_URL": openai_fake.url + "/v1",
                                  "UNIGATE_MASTER_KEY": MASTER})
    s = await scrape(gw)
    assert total(s, "unigate_breaker_state", deployment="bad#0") == 0  # configured: shown closed
    for _ in range(3):
        await post(gw, MASTER, "bad")
    pending = [asyncio.create_task(post(gw, MASTER, "slow")) for _ in range(2)]
    deadline = time.monotonic() + 5
    while True:  # both calls wait on the upstream now (bounded)
        s = await scrape(gw)
        if total(s, "unigate_in_flight_requests") == 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert total(s, "unigate_in_flight_requests") == 2
    assert total(s, "unigate_breaker_state", deployment="bad#0") == 2  # open
    assert [r[0] for r in await asyncio.gather(*pending)] == [200, 200]
    s = await scrape(gw)
    assert total(s, "unigate_in_flight_requests") == 0
    assert total(s, "unigate_breaker_state", deployment="slow#0") == 0


async def test_keys_and_teams_past_the_cap_are_other() -> None:
    ledger = Ledger()
    m = Metrics(ledger, max_keys=2, max_teams=1)
    for i, (key, team) in enumerate([("k1", "t1"), ("k2", "t2"), ("k3", None), (None, None)]):
        r = UsageRecord(request_id=f"r{i}", endpoint="chat", model="m", key_id=key, deployment="d", provider="p",
                        status=200)
        r.team = team
        ledger.add(r)
    await ledger.flush()
    s = parse(m.render().decode())
    keys = {labels["key"]: v for labels, v in s["unigate_requests_total"]}
    teams = {labels["team"] for labels, _ in s["unigate_requests_total"]}
    assert keys == {"k1": 1, "k2": 1, "other": 1, "none": 1} and teams == {"t1", "other", "none"}


def snapshot(pid: int, requests: float, in_flight: float, breaker: float) -> dict[str, Any]:
    return {"pid": pid, "counters": {"unigate_requests": [["m", "p", "d", "chat", "k", "t", "200", requests]]},
            "histograms": {"unigate_request_duration_seconds": [["p", "false", [1, 0] + [0] * 14, 5.0]]},
            "gauges": {"unigate_in_flight_requests": [[in_flight]], "unigate_breaker_state": [["d", breaker]]}}


def test_merge_sums_counters_of_every_worker_and_gauges_of_the_live_ones() -> None:
    m = Metrics(Ledger())
    merged = merge([(snapshot(1, 3, 2, 0), True), (snapshot(2, 4, 1, 2), True), (snapshot(3, 10, 7, 1), False)])
    s = parse(render(merged, m.histograms).decode())
    assert total(s, "unigate_requests_total") == 17  # a dead worker's counts stay
    assert total(s, "unigate_request_duration_seconds_count") == 3
    assert total(s, "unigate_request_duration_seconds_sum") == 0.015
    assert total(s, "unigate_in_flight_requests") == 3  # the live ones' only
    assert total(s, "unigate_breaker_state", deployment="d") == 2  # the worst a live worker sees
    assert total(s, "unigate_metrics_workers") == 2


async def test_label_values_are_escaped_in_the_exposition() -> None:
    ledger = Ledger()
    m = Metrics(ledger)
    odd = 'a"b\\c\nd'
    r = UsageRecord(request_id="r", endpoint="chat", model=odd, key_id=odd, deployment=odd, provider="p", status=200)
    ledger.add(r)
    await ledger.flush()
    s = parse(m.render().decode())
    ((labels, v),) = s["unigate_requests_total"]
    assert labels["model"] == odd and labels["key"] == odd and labels["deployment"] == odd and v == 1


async def test_workers_publish_and_read_each_others_files(tmp_path: Path) -> None:
    a, b = Metrics(Ledger()), Metrics(Ledger())
    share_a = NodeShare(str(tmp_path), a)
    for m, n in ((a, 2), (b, 5)):
        for i in range(n):
            m.ledger.add(UsageRecord(request_id=f"r{i}", endpoint="chat", model="m", provider="p", status=200))
        await m.ledger.flush()
    # b is "another worker": a pid of a process that has exited, so its gauges are left out
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    snap_b = b.snapshot()
    snap_b["pid"] = int(gone.stdout)
    (tmp_path / f"worker-{gone.stdout.strip()}.json").write_bytes(orjson.dumps(snap_b))
    (tmp_path / "worker-junk.json").write_bytes(b"{not json")  # ignored
    await share_a.publish()
    assert (tmp_path / f"worker-{os.getpid()}.json").exists()
    s = parse(a.render().decode())
    assert total(s, "unigate_requests_total") == 7 and total(s, "unigate_metrics_workers") == 1
    peers = share_a.peers()
    assert [alive for _, alive in peers] == [False]
