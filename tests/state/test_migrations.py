"""Opening the state migrates it once, however many openers there are."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.state.conftest import Backend
from unigate.state import open_state
from unigate.state.db import Sql
from unigate.state.migrations import STEPS


async def test_open_twice_keeps_the_data(backend: Backend) -> None:
    first = await backend.open()
    key, secret = await first.keys.create_key({"name": "kept"}, actor="ops")
    await first.close()
    again = await backend.open()
    try:
        assert (await again.keys.find_by_secret(secret)) == key
        assert [int(r[0]) for r in await again.db.fetch(Sql("SELECT version FROM schema_version ORDER BY version"))] == list(range(1, len(STEPS) + 1))
    finally:
        await again.close()


async def test_concurrent_openers_migrate_once(backend: Backend) -> None:
    states = await asyncio.gather(*(backend.open() for _ in range(4)))
    try:
        for st in states:
            assert await st.keys.version() == 0
    finally:
        for st in states:
            await st.close()


async def test_sqlite_file_is_wal(tmp_path: Path) -> None:
    st = await open_state(str(tmp_path / "w.db"), None, None)
    await st.close()
    conn = sqlite3.connect(tmp_path / "w.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(n,) for n in range(1, len(STEPS) + 1)]
    finally:
        conn.close()
