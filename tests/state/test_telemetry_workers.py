"""/metrics of `unigate serve --workers 2` is one view of the node: a known workload (JSON calls,
streams, upstream errors, rate-limit refusals; the master key and a virtual key of a team) spread
over both workers, then every scrape, whichever worker answers it, parses with prometheus_client's
parser, shows both workers' figures summed, and agrees with the ledger (GET /admin/usage)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_serve import free_port
from tests.state.test_gateway_processes import (  # noqa: F401 - the fixtures
    HI,
    MASTER,
    Gateway,
    Gateways,
    create_key,
    gateways,
    upstream,
)

AUTH = {"Authorization": f"Bearer {MASTER}"}


async def post(s: aiohttp.ClientSession, gw: Gateway, key: str, body: dict[str, Any]) -> int:
    async with s.post(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"messages": HI, **body}) as r:
        await r.read()  # a stream to its end
        return r.status


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            out.setdefault(smp.name, []).append((dict(smp.labels), smp.value))
    return out


def total(s: dict[str, list[tuple[dict[str, str], float]]], name: str, **match: str) -> float:
    return sum(v for labels, v in s.get(name, []) if all(labels.get(k) == want for k, want in match.items()))


async def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    # a new connection each time: SO_REUSEPORT hands it to either worker
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s, \
            s.get(url + "/metrics") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        return samples(await r.text())


async def ledger(gw: Gateway) -> dict[str | None, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(gw.url + "/admin/usage?group_by=key", headers=AUTH) as r:
        assert r.status == 200
        return {row["group"]: row for row in (await r.json())["data"]}


def figures(s: dict[str, list[tuple[dict[str, str], float]]]) -> dict[str, float]:
    return {"requests": total(s, "unigate_requests_total"), "errors": total(s, "unigate_errors_total"),
            "input": total(s, "unigate_tokens_total", kind="prompt"),
            "output": total(s, "unigate_tokens_total", kind="completion"),
            "cost": round(total(s, "unigate_cost_usd_total"), 9)}


def ledger_figures(rows: dict[str | None, dict[str, Any]]) -> dict[str, float]:
    return {"requests": sum(r["requests"] for r in rows.values()), "errors": sum(r["errors"] for r in rows.values()),
            "input": sum(r["input_tokens"] for r in rows.values()),
            "output": sum(r["output_tokens"] for r in rows.values()),
            "cost": round(sum(r["cost_usd"] for r in rows.values()), 9)}


async def test_one_scrape_of_two_workers_is_the_whole_node_and_agrees_with_the_ledger(
        gateways: Gateways,  # noqa: F811 - the fixture imported above
        tmp_path: Path) -> None:
    # TMPDIR: the run's metrics directory is made there, so the test can read each worker's file;
    # /metrics on a port of its own, which both workers share as they share the gateway's
    mport = free_port()
    gw = await gateways.start("--workers", "2", env={"TMPDIR": str(tmp_path)}, config=f"metrics:\n  port: {mport}\n")
    murl = f"http://127.0.0.1:{mport}"
    async with aiohttp.ClientSession() as s, s.get(gw.url + "/metrics") as r:
        assert r.status == 404  # not on the gateway's port then
    async with aiohttp.ClientSession(headers=AUTH) as s, s.post(gw.url + "/admin/teams",
                                                               json={"id": "research", "name": "Research"}) as r:
        assert r.status == 201, await r.text()
    vid, vkey = await create_key(gw, team="research")
    _, limited = await create_key(gw, rpm=1)

    # new connections for every call, so both workers serve (2^-80 that one gets them all)
    statuses: list[int] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=8)) as s:
        calls = ([(MASTER, {"model": "priced"})] * 20 + [(vkey, {"model": "priced"})] * 20
                 + [(vkey, {"model": "priced", "stream": True})] * 20
                 + [(vkey, {"model": "openai/error-500"})] * 4 + [(MASTER, {"model": "openai/error-503"})] * 2
                 + [(limited, {"model": "priced"})] * 6)
        statuses = list(await asyncio.gather(*(post(s, gw, k, b) for k, b in calls)))
    refused = statuses.count(429)
    assert statuses.count(200) == 60 + (6 - refused) and refused >= 4, statuses
    assert statuses.count(502) + statuses.count(503) == 6, statuses

    # the other worker publishes every 0.5 s and the ledger is written every 0.25 s: wait (bounded)
    # until a scrape and the ledger agree
    deadline = time.monotonic() + 15
    while True:
        rows = await ledger(gw)
        s1 = await scrape(murl)
        want = ledger_figures(rows)
        if figures(s1) == want and want["requests"] == 66 + (6 - refused):
            break
        assert time.monotonic() < deadline, (figures(s1), want)
        await asyncio.sleep(0.2)
    assert want["errors"] == 6 and want["input"] > 0 and want["output"] > 0 and want["cost"] > 0

    # every scrape, whichever worker takes it, shows the whole node and the ledger's numbers, once
    # the other worker's last calls are published (its ledger flush, 0.25 s, then its publish, 0.5 s)
    await asyncio.sleep(1.0)
    for _ in range(6):
        s2 = await scrape(murl)
        assert figures(s2) == want
        assert total(s2, "unigate_metrics_workers") == 2
        # per key: the virtual key (of team research) and the master key, as in the ledger
        assert total(s2, "unigate_requests_total", key=vid, team="research") == rows[vid]["requests"]
        assert total(s2, "unigate_cost_usd_total", key=vid) == pytest.approx(rows[vid]["cost_usd"], abs=1e-9)
        assert total(s2, "unigate_requests_total", key="master") == rows["master"]["requests"]
        assert total(s2, "unigate_tokens_total", key=vid, kind="prompt") == rows[vid]["input_tokens"]
        # the histograms count every attempt; streams have a time to first token each
        assert total(s2, "unigate_request_duration_seconds_count") == want["requests"]
        assert total(s2, "unigate_time_to_first_byte_seconds_count") == 20
        assert total(s2, "unigate_errors_total", status="502") == 4
        assert total(s2, "unigate_refusals_total", reason="rate_limit_exceeded", status="429") == refused
        assert total(s2, "unigate_in_flight_requests") == 0
        # never key material in the exposition
        text = orjson.dumps(s2).decode()
        assert vkey not in text and limited not in text and MASTER not in text

    # both workers served, and the scrape is the sum of their published files
    (run_dir,) = tmp_path.glob("unigate-metrics-*")
    snaps = [orjson.loads(p.read_bytes()) for p in run_dir.glob("worker-*.json")]
    assert len(snaps) == 2
    per_worker = [sum(row[-1] for row in snap["counters"]["unigate_requests"]) for snap in snaps]
    assert all(n > 0 for n in per_worker) and sum(per_worker) == want["requests"], per_worker

    # a worker killed: the supervisor starts another, the dead one's counts stay in the node's
    # sums (its last file), its gauges drop out
    os.kill(int(snaps[0]["pid"]), signal.SIGKILL)
    deadline = time.monotonic() + 20
    while len(list(run_dir.glob("worker-*.json"))) < 3:
        assert time.monotonic() < deadline, "no new worker published"
        await asyncio.sleep(0.1)
    for _ in range(4):
        s3 = await scrape(murl)
        assert figures(s3) == want and total(s3, "unigate_metrics_workers") == 2
