"""Choosing and opening the backends: PostgreSQL for durable rows when DATABASE_URL is set,
Redis for rate limits when REDIS_URL is set, otherwise one SQLite file for everything."""

from __future__ import annotations

from dataclasses import dataclass

from unigate.state.base import KeyStore, LedgerStore, Limits, Spend
from unigate.state.db import Database
from unigate.state.sql_keys import SqlKeyStore
from unigate.state.sql_ledger import SqlLedger
from unigate.state.sql_limits import SqlLimits
from unigate.state.sql_spend import SqlSpend


@dataclass(frozen=True, slots=True)
class State:
    keys: KeyStore
    limits: Limits
    spend: Spend
    ledger: LedgerStore
    db: Database
    #: the ledger's own connection, when it has one (see open_state)
    ledger_db: Database | None = None

    async def close(self) -> None:
        try:
            await self.limits.close()
        finally:
            try:
                if self.ledger_db is not None:
                    await self.ledger_db.close()
            finally:
                await self.db.close()


async def open_state(
    sqlite_path: str | None,
    database_url: str | None,
    redis_url: str | None,
    *,
    redis_prefix: str = "unigate:",
    inline_ledger: bool = False,
) -> State:
    """Open (and migrate) the state. With neither a path nor a URL the SQLite database lives in
    memory: one process only, nothing survives a restart.

    `inline_ledger` (a SQLite file): the usage ledger writes through a connection of its own, on
    the event loop, never waiting for the file's lock (a busy file fails the write, and the
    ledger keeps its rows for the next flush). Through the shared connection's thread, its
    batches cost a worker ~15 % of its requests/s at saturation (bench/): SQLite's driver
    releases and re-takes the GIL around each step, and every re-take waits on the loop."""
    db: Database
    if database_url:
        from unigate.state.postgres_db import PostgresDb

        db = await PostgresDb.open(database_url)
    else:
        from unigate.state.sqlite_db import SqliteDb

        db = await SqliteDb.open(sqlite_path or ":memory:")
    limits: Limits
    if redis_url:
        from unigate.state.redis_limits import RedisLimits

        limits = RedisLimits.from_url(redis_url, redis_prefix)
    else:
        limits = SqlLimits(db)
    ledger_db: Database | None = None
    if inline_ledger and not database_url and sqlite_path and sqlite_path != ":memory:":
        from unigate.state.sqlite_db import SqliteDb

        ledger_db = await SqliteDb.open(sqlite_path, inline=True, busy_timeout_ms=0)
    ledger = SqlLedger(ledger_db or db)
    return State(keys=SqlKeyStore(db), limits=limits, spend=SqlSpend(db), ledger=ledger, db=db, ledger_db=ledger_db)
