"""What the hot path costs on SQLite: acquire + reserve + settle per call, printed, not asserted
(wall-clock figures depend on the machine; run with -s to see them)."""

from __future__ import annotations

import time
from pathlib import Path

from unigate.state import Account, Reservation, Scope
from unigate.state.factory import State
from unigate.state.sql_keys import SqlKeyStore
from unigate.state.sql_ledger import SqlLedger
from unigate.state.sql_limits import SqlLimits
from unigate.state.sql_spend import SqlSpend
from unigate.state.sqlite_db import SqliteDb

NOW = 1_767_225_600.0
CALLS = 1000


async def _per_call(path: Path, inline: bool) -> float:
    db = await SqliteDb.open(str(path), inline=inline)
    st = State(SqlKeyStore(db), SqlLimits(db), SqlSpend(db), SqlLedger(db), db)
    try:
        await st.spend.add_credits("key:c", 1000.0, actor="bench", now=NOW)
        scopes = [Scope("key:c", rpm=10**9, tpm=10**12, max_parallel=10**6, estimated_tokens=100), Scope("team:t", rpm=10**9)]
        accounts = [Account("key:c", budget_usd=10**6, uses_credits=True), Account("team:t", budget_usd=10**6)]
        started = time.perf_counter()
        for i in range(CALLS):
            now = NOW + i * 0.001
            d = await st.limits.acquire(scopes, now)
            r = await st.spend.reserve(accounts, 0.001, now)
            assert d.allowed and d.lease is not None and isinstance(r, Reservation)
            await st.spend.settle(r, 0.0009, now)
            await st.limits.release(d.lease)
        return (time.perf_counter() - started) / CALLS * 1e6
    finally:
        await st.close()


async def test_sqlite_hot_path_cost(tmp_path: Path) -> None:
    threaded = await _per_call(tmp_path / "t.db", inline=False)
    inline = await _per_call(tmp_path / "i.db", inline=True)
    print(f"\nSQLite acquire+reserve+settle+release per call: {threaded:.0f} us through the connection's thread, "
          f"{inline:.0f} us inline on the event loop ({CALLS} sequential calls, key+team scopes)")  # fmt: skip
