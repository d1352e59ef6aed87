"""Write N usage records through the ledger's writer into a fresh SQLite file, in flushes of
BATCH: run it under callgrind at N and at 0, and (difference) ÷ N is what one row costs to
build and write, whatever the machine's load.

    SRC=src N=20000 valgrind --tool=callgrind .venv/bin/python bench/ledger_rows.py
    SRC=src N=0     valgrind --tool=callgrind .venv/bin/python bench/ledger_rows.py

SRC (default: this checkout's src) may point at another build's src, e.g. a git worktree.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.environ.get("SRC", str(Path(__file__).resolve().parent.parent / "src")))

from unigate.accounting.ledger import UsageRecord
from unigate.accounting.persist import LedgerWriter
from unigate.state.sql_ledger import SqlLedger
from unigate.state.sqlite_db import SqliteDb


def records(n: int, base: int) -> list[UsageRecord]:
    out = []
    for i in range(n):
        r = UsageRecord(f"req_0123456789abcdef{base + i:08x}", "chat", "openai/gpt-4o-mini", "key1", "d1", "openai",
                        False, 200)
        r.served_model, r.attempt, r.prompt_tokens, r.completion_tokens = "openai/gpt-4o-mini", 1, 12, 9
        r.cost_usd, r.latency_ms = 0.0001, 3.2
        out.append(r)
    return out


async def main() -> None:
    n, batch = int(os.environ.get("N", "20000")), int(os.environ.get("BATCH", "1000"))
    with tempfile.TemporaryDirectory() as d:
        db = await SqliteDb.open(os.path.join(d, "state.db"))
        writer = LedgerWriter(SqlLedger(db))
        for k in range(n // batch):
            await writer(records(batch, k * batch))
        await db.close()


if __name__ == "__main__":
    asyncio.run(main())
