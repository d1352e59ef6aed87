"""Bodies of the worker processes that hammer one shared state (run with the "spawn" context)."""

from __future__ import annotations

import asyncio
from typing import Any

from unigate.state import Account, Refusal, Scope, open_state


async def _limits(opener: dict[str, Any], rpm: int, calls: int, now: float) -> int:
    st = await open_state(**opener)
    try:
        scope = [Scope("key:shared", rpm=rpm)]
        results = await asyncio.gather(*(st.limits.acquire(scope, now) for _ in range(calls)))
        return sum(1 for d in results if d.allowed)
    finally:
        await st.close()


async def _spend(opener: dict[str, Any], account: Account, price: float, callers: int, now: float) -> int:
    st = await open_state(**opener)
    done = 0

    async def caller() -> None:
        nonlocal done
        for _ in range(2000):  # bounded: more than the money pays for
            r = await st.spend.reserve([account], price, now)
            if isinstance(r, Refusal):
                return
            done += 1
            await st.spend.settle(r, price, now)

    try:
        await asyncio.gather(*(caller() for _ in range(callers)))
        return done
    finally:
        await st.close()


def run(kind: str, args: tuple[Any, ...], barrier: Any, results: Any) -> None:
    barrier.wait(timeout=60)  # every process starts hammering together
    try:
        if kind == "limits":
            results.put(asyncio.run(_limits(*args)))
        else:
            results.put(asyncio.run(_spend(*args)))
    except BaseException as e:
        results.put(repr(e))
        raise
