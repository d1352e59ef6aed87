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


async def test_a_database_of_an_earlier_version_is_upgraded_in_place(tmp_path: Path) -> None:
    """A file written by a build with steps 1-3 only: its keys and teams keep working, as
    "user" keys and teams that do not pay with credits (step 4's defaults)."""
    from unigate.state.key_secrets import hash_secret
    from unigate.state.migrations import steps_for

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, statements in steps_for("sqlite")[:3]:
        for s in statements:
            conn.execute(s)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
    conn.execute("INSERT INTO teams VALUES ('t1', 'old team', '[]', NULL, NULL, NULL, 5.0, 'monthly', '{}', 1.0)")
    conn.execute("INSERT INTO keys VALUES ('key_old', 'old', ?, 't1', '[]', 10, NULL, NULL, NULL, 'monthly', 0, NULL, "
                 "'{}', 1.0, NULL, NULL, NULL)", (hash_secret("sk-ug-old"),))
    conn.commit()
    conn.close()
    st = await open_state(str(path), None, None)
    try:
        key = await st.keys.find_by_secret("sk-ug-old")
        assert key is not None and key.id == "key_old" and key.role == "user" and key.rpm == 10
        team = await st.keys.get_team("t1")
        assert team is not None and team.budget_usd == 5.0 and not team.uses_credits
        assert (await st.keys.update_key("key_old", {"role": "viewer"}, actor="ops")).role == "viewer"
    finally:
        await st.close()
