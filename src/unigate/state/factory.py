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

    async def close(self) -> None:
        try:
            await self.limits.close()
        finally:
            await self.db.close()


async def open_state(
    sqlite_path: str | None,
    database_url: str | None,
    redis_url: str | None,
    *,
    redis_prefix: str = "unigate:",
) -> State:
    """Open (and migrate) the state. With neither a path nor a URL the SQLite database lives in
    memory: one process only, nothing survives a restart."""
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
    return State(keys=SqlKeyStore(db), limits=limits, spend=SqlSpend(db), ledger=SqlLedger(db), db=db)
