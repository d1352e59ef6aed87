"""Limits, budgets, credits and the ledger across real gateway processes: `unigate serve
--workers 4` on one SQLite file, and two gateways on one PostgreSQL + Redis, under concurrent
load from this process, with the fake upstream in a process of its own.

Windows are whole UTC minutes, so each rpm check runs its load inside one minute: it waits
for the next minute when too little of the current one is left."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.integration.test_serve import free_port
from tests.state.conftest import REDIS_URL
from unigate.state import open_state
from unigate.state.db import Sql

MASTER = "sk-master-proc"
HI: Any = [{"role": "user", "content": "hi"}]
#: two priced deployments of the fake (12 prompt + 5 completion tokens a call): "priced" at
#: $10/M in, $20/M out ($0.00022 a call), "dear" at $1,000/M both ways ($0.017 a call)
PRICED = ("deployments:\n  - name: priced\n    model: openai/gpt-4o-mini\n    input_price: 10\n    output_price: 20\n"
          "  - name: dear\n    model: openai/gpt-4o-mini\n    input_price: 1000\n    output_price: 1000\n")
CALL_USD = 12 * 10e-6 + 5 * 20e-6
DEAR_USD = 17 * 1000e-6


@pytest_asyncio.fixture
async def upstream() -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.fakes.standalone",
                                                stdout=asyncio.subprocess.PIPE, cwd=str(Path(__file__).parents[2]))
    assert proc.stdout is not None
    port = int((await asyncio.wait_for(proc.stdout.readline(), 20)).decode())
    yield f"http://127.0.0.1:{port}/v1"
    proc.terminate()
    await proc.wait()


@dataclass
class Gateway:
    port: int
    proc: asyncio.subprocess.Process
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Gateways:
    upstream: str
    tmp: Path
    started: list[Gateway] = field(default_factory=list)

    async def start(self, *args: str, env: dict[str, str] | None = None, config: str = "") -> Gateway:
        cfg = self.tmp / f"unigate-{len(self.started)}.yaml"
        cfg.write_text("governance:\n  flush_interval: 0.2\n" + PRICED + config)
        port = free_port()
        full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("UNIGATE_")}
        full_env.update({"UNIGATE_LOCAL": "off", "UNIGATE_MASTER_KEY": MASTER, "UNIGATE_DATA_DIR": str(self.tmp),
                         "OPENAI_API_KEY": "sk-up", "OPENAI_BASE_URL": self.upstream, **(env or {})})
        # the log goes to a file: a pipe nobody reads fills up, and then the process (or
        # asyncio's wait for it) blocks
        log = self.tmp / f"unigate-{len(self.started)}.log"
        with log.open("wb") as f:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "unigate", "serve", "--config", str(cfg), "--port", str(port), *args,
                env=full_env, stdout=f, stderr=f)
        gw = Gateway(port, proc, log)
        self.started.append(gw)
        await ready(gw)
        return gw


async def ready(gw: Gateway, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            if gw.proc.returncode is not None:
                raise AssertionError(f"unigate exited with {gw.proc.returncode}: {gw.log.read_text()[-3000:]}")
            try:
                async with s.get(gw.url + "/health/ready") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"unigate did not become ready: {gw.log.read_text()[-3000:]}")


@pytest_asyncio.fixture
async def gateways(upstream: str, tmp_path: Path) -> AsyncIterator[Gateways]:
    g = Gateways(upstream, tmp_path)
    yield g
    for gw in g.started:
        if gw.proc.returncode is None:
            gw.proc.kill()
            await gw.proc.wait()


async def create_key(gw: Gateway, **fields: Any) -> tuple[str, str]:
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/admin/keys", json={"name": "load", **fields},
                                                    headers={"Authorization": f"Bearer {MASTER}"}) as r:
        made = await r.json()
        assert r.status == 201, made
        return made["id"], made["key"]


@dataclass
class Outcome:
    status: int
    request_id: str
    done_at: float
    code: str | None


async def load(gws: list[Gateway], key: str, calls: int, concurrency: int, model: str = "priced",
               **extra: Any) -> list[Outcome]:
    """`calls` chat calls from `concurrency` callers, spread over the gateways in turn."""
    out: list[Outcome] = []
    todo = iter(range(calls))
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as s:
        async def caller() -> None:
            for i in todo:
                gw = gws[i % len(gws)]
                async with s.post(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                  json={"model": model, "messages": HI, **extra}) as r:
                    body = await r.json()
                    code = body.get("error", {}).get("code") if r.status != 200 else None
                    out.append(Outcome(r.status, r.headers.get("x-request-id", ""), time.time(), code))

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return out


async def in_one_minute(needed: float) -> None:
    """Wait, when needed, so that the next `needed` seconds lie in one UTC minute."""
    left = 60 - time.time() % 60
    if left < needed:
        await asyncio.sleep(left + 0.05)


def statuses(outcomes: list[Outcome]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    return counts


async def test_rpm_100_across_4_workers_without_redis(gateways: Gateways) -> None:
    gw = await gateways.start("--workers", "4")
    _, key = await create_key(gw, rpm=100)
    await in_one_minute(25)
    t0 = time.time()
    outcomes = await load([gw], key, 400, 16)
    assert time.time() - t0 < 25  # the whole load was inside one window
    counts = statuses(outcomes)
    assert set(counts) <= {200, 429}
    # never more than the limit; the blocks four workers took leave few of the 100 unused
    assert 90 <= counts[200] <= 100, counts
    assert {o.code for o in outcomes if o.status == 429} == {"rate_limit_exceeded"}


async def test_rpm_budget_and_credits_across_two_gateways_on_postgres_and_redis(pg_url: str,
                                                                               gateways: Gateways) -> None:
    # (pg_url first: its schema is dropped after the gateways using it have stopped)
    env = {"DATABASE_URL": pg_url, "REDIS_URL": REDIS_URL}
    shared = "governance:\n  shares: 2\n"
    a = await gateways.start(env=env, config=shared)
    b = await gateways.start(env=env, config=shared)
    # rpm 60, in one window
    _, key = await create_key(a, rpm=60)
    await in_one_minute(20)
    counts = statuses(await load([a, b], key, 200, 12))
    assert set(counts) <= {200, 429} and 54 <= counts[200] <= 60, counts

    # a $1.00 budget: the worst case of each call is held, the real cost charged
    # (max_tokens 5: the worst case is the prompt estimate + 5 tokens, about $0.03, not the
    # model's whole output limit)
    bid, bkey = await create_key(b, budget_usd=1.0, budget_period="total")
    outcomes = await load([a, b], bkey, 150, 16, model="dear", max_tokens=5)
    counts = statuses(outcomes)
    state = await open_state(None, pg_url, None)
    try:
        await asyncio.sleep(1.0)  # both gateways flush their spend (every 0.2 s) and ledgers
        spent = await state.spend.spent(f"key:{bid}", "total", time.time())
        assert spent <= 1.0 + 1e-9
        assert spent == pytest.approx(counts[200] * DEAR_USD)
        assert counts[200] >= 50  # of the 58 the budget pays for: the blocks shrink near the end
        assert {o.code for o in outcomes if o.status != 200} == {"budget_exceeded"}

        # 50 callers against credits that pay for exactly 1,000 calls
        cid, ckey = await create_key(a, credits_usd=round(1000 * CALL_USD, 9))
        outcomes = await load([a, b], ckey, 1300, 50, max_tokens=5)
        counts = statuses(outcomes)
        assert counts[200] <= 1000 and counts[200] >= 950, counts
        assert {o.code for o in outcomes if o.status != 200} == {"insufficient_credits"}
        await asyncio.sleep(1.0)
        balance = await state.spend.balance(f"key:{cid}")
        assert balance == pytest.approx(1000 * CALL_USD - counts[200] * CALL_USD, abs=1e-9) and balance >= -1e-12
        # every served call is in the ledger once, with its cost
        rows = await state.db.fetch(Sql("SELECT count(*), sum(cost_usd) FROM usage WHERE key_id = ? AND status = 200",
                                        (cid,)))
        assert rows[0][0] == counts[200] and rows[0][1] == pytest.approx(counts[200] * CALL_USD)
    finally:
        await state.close()


async def load_until(gw: Gateway, key: str, stop: asyncio.Event, concurrency: int) -> list[Outcome]:
    """Calls until `stop` is set or the gateway is gone; only answered calls are returned."""
    out: list[Outcome] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        async def caller() -> None:
            while not stop.is_set():
                try:
                    async with s.post(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                      json={"model": "priced", "messages": HI}) as r:
                        await r.read()
                        out.append(Outcome(r.status, r.headers.get("x-request-id", ""), time.time(), None))
                except (aiohttp.ClientError, OSError):
                    return  # the gateway went away

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return out


async def ledger_ids(tmp: Path) -> set[str]:
    state = await open_state(str(tmp / "unigate.db"), None, None)
    try:
        return {r[0] for r in await state.db.fetch(Sql("SELECT request_id FROM usage"))}
    finally:
        await state.close()


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
async def test_the_ledger_survives_a_kill_up_to_its_last_flush_and_a_stop_whole(gateways: Gateways, how: str) -> None:
    gw = await gateways.start()
    _, key = await create_key(gw, rpm=100_000)
    stop = asyncio.Event()
    loading = asyncio.create_task(load_until(gw, key, stop, 8))
    await asyncio.sleep(1.5)
    stopped_at = time.time()
    if how == "SIGKILL":
        gw.proc.kill()
    else:
        gw.proc.terminate()
    assert await asyncio.wait_for(gw.proc.wait(), 30) == (-9 if how == "SIGKILL" else 0)
    stop.set()
    answered = [o for o in await loading if o.status == 200]
    assert len(answered) > 100
    stored = await ledger_ids(gateways.tmp)
    if how == "SIGTERM":
        # a clean stop flushes the ledger before the state closes: every answered call is there
        assert {o.request_id for o in answered} <= stored
    else:
        # the ledger flushes every 0.25 s; a call answered half a second before the kill is stored
        settled = {o.request_id for o in answered if o.done_at < stopped_at - 0.5}
        assert len(settled) > 50 and settled <= stored
