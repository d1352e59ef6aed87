"""The PostgreSQL engine (asyncpg pool). Serialization uses transaction-scoped advisory locks on
the names `atomic` is given, taken in sorted order so two calls never wait on each other in a
cycle; a lock name's hash colliding with another only makes them wait in turn.

The schema is the connection's search_path: a URL such as
postgresql://u@h/db?search_path=tenant_a puts every table in schema tenant_a (asyncpg passes
unknown URL parameters on as server settings).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

import asyncpg  # type: ignore[import-untyped]

from unigate.state.db import Decide, Row, Sql
from unigate.state.migrations import steps_for

T = TypeVar("T")



def lock_key(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@functools.lru_cache(maxsize=512)
def to_pg(text: str) -> str:
    """`?` placeholders -> `$1, $2, ...` (the statements hold no literal question marks)."""
    counter = iter(range(1, 10_000))
    return re.sub(r"\?", lambda _m: f"${next(counter)}", text)


class PostgresDb:
    dialect: Literal["sqlite", "postgres"] = "postgres"

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> PostgresDb:
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
        db = cls(pool)
        try:
            await db._migrate()
        except BaseException:
            await pool.close()
            raise
        return db

    async def _migrate(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('unigate.migrate.' || current_schema(), 0))")
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
            for number, statements in steps_for("postgres"):
                if number > current:
                    for s in statements:
                        await conn.execute(s)
                    await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", number)

    async def atomic(self, locks: Sequence[str], reads: Sequence[Sql], decide: Decide[T], *, durable: bool = True) -> T:
        # Round trips are the cost here (each is ~150 us even on loopback): BEGIN, the commit
        # mode and the locks go as one simple-protocol message, their lock keys computed here
        # as integers so nothing from the caller is spliced into SQL text.
        head = ["BEGIN"]
        if not durable:
            head.append("SET LOCAL synchronous_commit TO OFF")
        head += [f"SELECT pg_advisory_xact_lock({k})" for k in sorted({lock_key(n) for n in locks})]
        async with self._pool.acquire() as conn:
            await conn.execute("; ".join(head))
            try:
                rows: list[list[Row]] = []
                for s in reads:
                    rows.append([tuple(r) for r in await conn.fetch(to_pg(s.text), *s.args)])
                value, writes = decide(rows)
                for w in writes:
                    if w.many:
                        await conn.executemany(to_pg(w.text), w.args)
                    else:
                        await conn.execute(to_pg(w.text), *w.args)
                await conn.execute("COMMIT")
            except BaseException:
                if not conn.is_closed():
                    try:
                        await conn.execute("ROLLBACK")
                    except Exception:  # noqa: BLE001 - a broken connection: drop it, the server rolls back
                        conn.terminate()
                raise
        return value

    async def fetch(self, sql: Sql) -> list[Row]:
        async with self._pool.acquire() as conn:
            return [tuple(r) for r in await conn.fetch(to_pg(sql.text), *sql.args)]

    async def close(self) -> None:
        await self._pool.close()
