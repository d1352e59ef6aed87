"""The SQLite engine: one file shared by the worker processes of a node.

WAL lets readers run beside the one writer; every read-check-write takes `BEGIN IMMEDIATE`, the
file's write lock, so limits and budgets are exact across processes; `busy_timeout` makes a
writer wait for that lock instead of failing.

Each connection has its own thread and a transaction runs there whole, in one hop from the
event loop. Measured (tests/state/test_cost.py, 1,000 sequential calls of acquire + reserve +
settle + release for a key and its team, 4 transactions, on this project's 2-CPU VM with ext4):
1,300-1,800 us per call through the thread, 800-900 us inline on the loop; so the hop costs
120-220 us per transaction, and a commit's WAL write about 100 us (26 us on tmpfs). Inline is
cheaper, but the thread is the default: inline, a transaction that meets another process's
write lock sleeps in busy_timeout with the whole event loop stopped, and every request of that
worker with it. `inline=True` is for a file one process owns.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, TypeVar, cast

from unigate.state.db import Decide, Row, Sql
from unigate.state.migrations import steps_for

T = TypeVar("T")

# sqlite3 binds exact ints, floats and strs directly but sends None and bool through its
# adapter protocol, which for a type with no adapter ends in two failed attribute lookups that
# raise and clear an AttributeError: ~2,100 instructions per value (callgrind, 4 Dec), a sixth of
# what a usage-ledger row cost to write (its 3 NULLs and 2 flags). A registered adapter is found
# by one dict lookup. Process-wide, and binding is unchanged: None is still NULL, a bool 0 or 1.
# (`{}.get` is a C callable of one argument that returns None.)
sqlite3.register_adapter(type(None), cast(Callable[[None], None], {}.get))
sqlite3.register_adapter(bool, int)


class SqliteDb:
    dialect: Literal["sqlite", "postgres"] = "sqlite"

    def __init__(self, conn: sqlite3.Connection, pool: ThreadPoolExecutor | None) -> None:
        self._conn = conn
        self._pool = pool

    @classmethod
    async def open(cls, path: str, *, inline: bool = False, busy_timeout_ms: int = 10_000) -> SqliteDb:
        pool = None if inline else ThreadPoolExecutor(max_workers=1, thread_name_prefix="unigate-sqlite")

        def connect() -> sqlite3.Connection:
            # check_same_thread off: the connection lives on its thread, but close() may come from the loop
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000)
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            _enable_wal(conn)
            # NORMAL is safe with WAL against process crashes; only a power loss can drop the last commits
            conn.execute("PRAGMA synchronous = NORMAL")
            # 32 MB of page cache per connection: the ledger's b-trees stay in memory while it grows
            conn.execute("PRAGMA cache_size = -32768")
            _migrate(conn)
            return conn

        conn = connect() if pool is None else await asyncio.get_running_loop().run_in_executor(pool, connect)
        return cls(conn, pool)

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._pool is None:
            return fn()
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def atomic(self, locks: Sequence[str], reads: Sequence[Sql], decide: Decide[T], *, durable: bool = True) -> T:
        # synchronous=NORMAL under WAL already makes every commit safe against a process crash
        return await self._call(lambda: self._atomic(reads, decide))

    def _atomic(self, reads: Sequence[Sql], decide: Decide[T]) -> T:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            rows = [c.execute(s.text, s.args).fetchall() for s in reads]
            value, writes = decide(rows)
            for w in writes:
                if w.many:
                    c.executemany(w.text, w.args)
                else:
                    c.execute(w.text, w.args)
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        return value

    async def fetch(self, sql: Sql) -> list[Row]:
        return await self._call(lambda: self._conn.execute(sql.text, sql.args).fetchall())

    async def close(self) -> None:
        await self._call(self._conn.close)
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _enable_wal(conn: sqlite3.Connection) -> None:
    # switching a fresh file to WAL needs a moment of exclusive access that busy_timeout does
    # not always cover when several processes open it at once
    for attempt in range(50):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if attempt == 49:
                raise
            time.sleep(0.05)


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        for number, statements in steps_for("sqlite"):
            if number > current:
                for s in statements:
                    conn.execute(s)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
