"""Backends for the state tests: a real SQLite file, a real PostgreSQL (one fresh schema per
test) and a real Redis (one random key prefix per test), all on 127.0.0.1."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from unigate.state import State, open_state

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")  # as tests/conftest.py reads it
PG_URL = os.environ.get("UNIGATE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("UNIGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

_reachable: dict[str, str | None] = {}


def _unavailable(what: str, why: str) -> None:
    msg = f"{what} is not reachable ({why})"
    if IN_CI:
        pytest.fail(msg + ": CI must run the state tests against it", pytrace=False)
    pytest.skip(msg)


async def _check_pg() -> None:
    if "pg" not in _reachable:
        import asyncpg  # type: ignore[import-untyped]

        try:
            conn = await asyncpg.connect(PG_URL, timeout=3)
            await conn.close()
            _reachable["pg"] = None
        except Exception as e:  # noqa: BLE001 - any failure means: not usable here
            _reachable["pg"] = f"{PG_URL}: {e!r}"
    if _reachable["pg"] is not None:
        _unavailable("PostgreSQL", _reachable["pg"])


async def _check_redis() -> None:
    if "redis" not in _reachable:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        try:
            await client.ping()
            _reachable["redis"] = None
        except Exception as e:  # noqa: BLE001 - any failure means: not usable here
            _reachable["redis"] = f"{REDIS_URL}: {e!r}"
        finally:
            await client.aclose()
    if _reachable["redis"] is not None:
        _unavailable("Redis", _reachable["redis"])


@dataclass
class Backend:
    """How to open one more handle on the same state (another worker would)."""

    name: str
    sqlite_path: str | None = None
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "unigate:"

    async def open(self) -> State:
        return await open_state(self.sqlite_path, self.database_url, self.redis_url, redis_prefix=self.redis_prefix)


@pytest_asyncio.fixture
async def pg_url() -> AsyncIterator[str]:
    await _check_pg()
    import asyncpg

    schema = "ut_" + secrets.token_hex(6)
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        yield f"{PG_URL}?search_path={schema}"
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


@pytest_asyncio.fixture
async def redis_prefix() -> AsyncIterator[str]:
    await _check_redis()
    import redis.asyncio as aioredis

    prefix = "ut:" + secrets.token_hex(6) + ":"
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The durable stores (keys, spend, ledger): SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return Backend("sqlite", sqlite_path=str(tmp_path / "state.db"))
    return Backend("postgres", database_url=request.getfixturevalue("pg_url"))


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def limits_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The rate-limit backends: SQLite, PostgreSQL, and Redis (beside PostgreSQL)."""
    if request.param == "sqlite":
        return Backend("sqlite", sqlite_path=str(tmp_path / "state.db"))
    if request.param == "postgres":
        return Backend("postgres", database_url=request.getfixturevalue("pg_url"))
    url = request.getfixturevalue("pg_url")
    return Backend("redis", database_url=url, redis_url=REDIS_URL, redis_prefix=request.getfixturevalue("redis_prefix"))


@pytest_asyncio.fixture
async def state(backend: Backend) -> AsyncIterator[State]:
    st = await backend.open()
    yield st
    await st.close()


@pytest_asyncio.fixture
async def limits_state(limits_backend: Backend) -> AsyncIterator[State]:
    st = await limits_backend.open()
    yield st
    await st.close()
