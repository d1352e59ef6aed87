"""Several OS processes sharing one state: the limits and the money must hold across them."""

from __future__ import annotations

import multiprocessing
import queue
from pathlib import Path
from typing import Any

from tests.state.conftest import REDIS_URL
from tests.state.workers import run
from unigate.state import Account, open_state

NOW = 1_767_225_600.0


def hammer(kind: str, per_process: list[tuple[Any, ...]]) -> list[int]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(per_process))
    results = ctx.Queue()
    procs = [ctx.Process(target=run, args=(kind, args, barrier, results), daemon=True) for args in per_process]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=60) for _ in procs]
    except queue.Empty:
        raise AssertionError("a worker process did not answer within 60 s") from None
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    assert all(isinstance(g, int) for g in got), got
    return got


def sqlite_opener(tmp_path: Path) -> dict[str, Any]:
    return {"sqlite_path": str(tmp_path / "shared.db"), "database_url": None, "redis_url": None}


def test_rpm_across_4_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    got = hammer("limits", [(sqlite_opener(tmp_path), 100, 60, NOW)] * 4)
    assert sum(got) == 100, got


def test_rpm_across_2_processes_on_postgres_and_redis(pg_url: str, redis_prefix: str) -> None:
    opener = {"sqlite_path": None, "database_url": pg_url, "redis_url": REDIS_URL, "redis_prefix": redis_prefix}
    got = hammer("limits", [(opener, 60, 50, NOW)] * 2)
    assert sum(got) == 60, got


async def _top_up(opener: dict[str, Any], usd: float) -> float:
    st = await open_state(**opener)
    try:
        await st.spend.add_credits("key:shared", usd, actor="test", now=NOW)
        return await st.spend.balance("key:shared")
    finally:
        await st.close()


async def _balance(opener: dict[str, Any]) -> float:
    st = await open_state(**opener)
    try:
        return await st.spend.balance("key:shared")
    finally:
        await st.close()


async def test_credits_across_4_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    opener = sqlite_opener(tmp_path)
    await _top_up(opener, 1.0)
    got = hammer("spend", [(opener, Account("key:shared", uses_credits=True), 0.001, 13, NOW)] * 4)
    assert sum(got) == 1000, got
    assert await _balance(opener) == 0.0


async def test_credits_across_2_processes_on_postgres(pg_url: str) -> None:
    opener: dict[str, Any] = {"sqlite_path": None, "database_url": pg_url, "redis_url": None}
    await _top_up(opener, 1.0)
    got = hammer("spend", [(opener, Account("key:shared", uses_credits=True), 0.001, 25, NOW)] * 2)
    assert sum(got) == 1000, got
    assert await _balance(opener) == 0.0
