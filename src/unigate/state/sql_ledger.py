"""The usage ledger in SQL: one row per call, plus a daily rollup maintained in the same
transaction, so reports over weeks read the rollup and only the partial days at a range's edges
touch the raw rows (through the index on time)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from unigate.state.db import Database, Row, Sql, placeholders
from unigate.state.records import GroupBy, UsageBucket, UsageFilter, UsageRow

DAY = 86400.0
#: rows per transaction: the rollup is summed per transaction, so larger is cheaper, bounded by
#: the existence check's IN list of a retried batch (both engines cap bound parameters near 32k)
BATCH = 5000

#: the usage table's columns in UsageRow's field order: a row is bound as it is
_COLS = ", ".join(UsageRow._fields)
_NCOLS = len(UsageRow._fields)
#: rows per INSERT statement: one step of the driver (which releases and re-takes the GIL around
#: each) per 32 rows, not per row; 32 x 23 parameters stay far below both engines' limits.
ROWS_PER_INSERT = 32


@functools.cache
def _insert(n: int, dialect: str) -> str:
    """An INSERT of n rows that skips the rows already there (a retried flush). On PostgreSQL it
    answers how many it wrote; on SQLite `total_changes()` read around the inserts says so."""
    row = f"({placeholders(_NCOLS)})"
    text = f"INSERT INTO usage ({_COLS}) VALUES {','.join([row] * n)} ON CONFLICT (request_id, attempt) DO NOTHING"
    if dialect == "postgres":
        return f"WITH written AS ({text} RETURNING 1) SELECT count(*) FROM written"
    return text


def _inserts(rows: Sequence[UsageRow], dialect: str) -> list[Sql]:
    """Statements of 32, 16, 8, 4, 2 and 1 rows only: six texts in all, so each engine's
    statement cache holds them and no flush parses SQL (a text per remainder length did)."""
    out, i, n = [], 0, len(rows)
    size = ROWS_PER_INSERT
    while i < n:
        while size > n - i:
            size //= 2
        part = rows[i : i + size]
        out.append(Sql(_insert(size, dialect), list(chain.from_iterable(part))))
        i += size
    return out


_ROLLUP = (
    "INSERT INTO usage_daily (day, key_id, team, model, provider, requests, input_tokens, output_tokens, "
    "cached_tokens, reasoning_tokens, cost_usd, errors) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (day, key_id, team, model, provider) DO UPDATE SET "
    "requests = usage_daily.requests + excluded.requests, input_tokens = usage_daily.input_tokens + excluded.input_tokens, "
    "output_tokens = usage_daily.output_tokens + excluded.output_tokens, "
    "cached_tokens = usage_daily.cached_tokens + excluded.cached_tokens, "
    "reasoning_tokens = usage_daily.reasoning_tokens + excluded.reasoning_tokens, "
    "cost_usd = usage_daily.cost_usd + excluded.cost_usd, errors = usage_daily.errors + excluded.errors"
)
#: the column each grouping reads, in the rollup and in the raw rows
_GROUP_ROLLUP = {"key": "key_id", "team": "team", "model": "model", "provider": "provider", "day": "day"}
_GROUP_RAW = {"key": "coalesce(key_id, '')", "team": "coalesce(team, '')", "model": "served_model", "provider": "provider"}
_FILTER_ROLLUP = {"key_id": "key_id", "team": "team", "model": "model", "provider": "provider"}
_FILTER_RAW = {"key_id": "key_id", "team": "team", "model": "served_model", "provider": "provider"}
_SUMS_ROLLUP = "sum(requests), sum(input_tokens), sum(output_tokens), sum(cached_tokens), sum(reasoning_tokens), sum(cost_usd), sum(errors)"
_SUMS_RAW = (
    "count(*), sum(input_tokens), sum(output_tokens), sum(cached_tokens), sum(reasoning_tokens), "
    "sum(coalesce(cost_usd, 0)), sum(CASE WHEN status >= 400 OR error_code IS NOT NULL THEN 1 ELSE 0 END)"
)


_CHANGES = Sql("SELECT total_changes()", [])


class _Overlap(Exception):
    """A batch some of whose rows were written before (see SqlLedger._write_batch)."""


def _day(t: float) -> float:
    return (t // DAY) * DAY


def _rollup(rows: Sequence[UsageRow]) -> list[tuple[Any, ...]]:
    sums: dict[tuple[float, str, str, str, str], list[float]] = {}
    for r in rows:
        k = (_day(r.time), r.key_id or "", r.team or "", r.served_model, r.provider)
        s = sums.get(k)
        if s is None:
            s = sums[k] = [0, 0, 0, 0, 0, 0.0, 0]
        s[0] += 1
        s[1] += r.input_tokens
        s[2] += r.output_tokens
        s[3] += r.cached_tokens
        s[4] += r.reasoning_tokens
        s[5] += r.cost_usd or 0.0
        s[6] += 1 if r.status >= 400 or r.error_code is not None else 0
    return [
        (*k, int(s[0]), int(s[1]), int(s[2]), int(s[3]), int(s[4]), float(s[5]), int(s[6])) for k, s in sums.items()
    ]


class SqlLedger:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def write(self, rows: Sequence[UsageRow]) -> int:
        written = 0
        for i in range(0, len(rows), BATCH):
            written += await self._write_batch(rows[i : i + BATCH])
        return written

    async def _write_batch(self, batch: Sequence[UsageRow]) -> int:
        """The rows and their rollup, in one transaction. The inserts go first, with no
        existence check: a flush is written once unless its answer was lost, so a check before
        every write would pay for a rare retry. When the inserts wrote fewer rows than the batch
        holds (some were there, or are in it twice), the transaction is undone and the batch is
        written again the careful way."""
        sqlite = self._db.dialect == "sqlite"
        inserts = _inserts(batch, self._db.dialect)
        reads = [_CHANGES, *inserts, _CHANGES] if sqlite else inserts

        def decide(found: list[list[Row]]) -> tuple[int, Sequence[Sql]]:
            if sqlite:
                written = int(found[-1][0][0]) - int(found[0][0][0])
            else:
                written = sum(int(f[0][0]) for f in found)
            if written != len(batch):
                raise _Overlap
            return written, [Sql(_ROLLUP, _rollup(batch), many=True)]

        try:
            return await self._db.atomic(["ledger"], reads, decide)
        except _Overlap:
            return await self._write_checked(batch)

    async def _write_checked(self, batch: Sequence[UsageRow]) -> int:
        """A batch that overlaps rows already written: only its new rows, each once, are
        inserted and rolled up."""
        rids = sorted({r.request_id for r in batch})
        read = Sql(f"SELECT request_id, attempt FROM usage WHERE request_id IN ({placeholders(len(rids))})", rids)

        def decide(found: list[list[Row]]) -> tuple[int, Sequence[Sql]]:
            seen = {(r[0], int(r[1])) for r in found[0]}
            new = []
            for r in batch:
                k = (r.request_id, r.attempt)
                if k not in seen:
                    seen.add(k)
                    new.append(r)
            if not new:
                return 0, ()
            return len(new), [*_inserts(new, self._db.dialect), Sql(_ROLLUP, _rollup(new), many=True)]

        # one lock name: the existence check and the rollup increments must see every other writer
        return await self._db.atomic(["ledger"], [read], decide)

    async def usage(
        self, since: float, until: float, group_by: GroupBy, filters: UsageFilter | None = None
    ) -> list[UsageBucket]:
        if group_by not in _GROUP_ROLLUP:
            raise ValueError(f"group_by must be one of {', '.join(_GROUP_ROLLUP)}")
        filters = filters or {}
        first_full = _day(since) if since == _day(since) else _day(since) + DAY
        last_full = _day(until)
        totals: dict[str, list[float]] = {}
        if first_full < last_full:
            await self._add(totals, self._rollup_query(first_full, last_full, group_by, filters), group_by)
            edges = [(since, first_full), (last_full, until)]
        else:
            edges = [(since, until)]
        for lo, hi in edges:
            if lo < hi:
                await self._add(totals, self._raw_query(lo, hi, group_by, filters), group_by)
        buckets = [
            UsageBucket(g or None, int(s[0]), int(s[1]), int(s[2]), int(s[3]), int(s[4]), float(s[5]), int(s[6]))
            for g, s in totals.items()
        ]
        if group_by == "day":
            return sorted(buckets, key=lambda b: b.group or "")
        return sorted(buckets, key=lambda b: (-b.cost_usd, -b.requests, b.group or ""))

    def _rollup_query(self, lo: float, hi: float, group_by: GroupBy, filters: UsageFilter) -> Sql:
        col = _GROUP_ROLLUP[group_by]
        where, args = ["day >= ?", "day < ?"], list[Any]([lo, hi])
        for name, value in filters.items():
            where.append(f"{_FILTER_ROLLUP[name]} = ?")
            args.append(value)
        return Sql(f"SELECT {col}, {_SUMS_ROLLUP} FROM usage_daily WHERE {' AND '.join(where)} GROUP BY {col}", args)

    def _raw_query(self, lo: float, hi: float, group_by: GroupBy, filters: UsageFilter) -> Sql:
        where, args = ["time >= ?", "time < ?"], list[Any]([lo, hi])
        for name, value in filters.items():
            where.append(f"{_FILTER_RAW[name]} = ?")
            args.append(value)
        if group_by == "day":
            # an edge lies within one day: that day is the group
            day = _day(lo)
            return Sql(f"SELECT {day!r}, {_SUMS_RAW} FROM usage WHERE {' AND '.join(where)} HAVING count(*) > 0", args)
        col = _GROUP_RAW[group_by]
        return Sql(f"SELECT {col}, {_SUMS_RAW} FROM usage WHERE {' AND '.join(where)} GROUP BY {col}", args)

    async def _add(self, totals: dict[str, list[float]], sql: Sql, group_by: GroupBy) -> None:
        for row in await self._db.fetch(sql):
            group = _day_label(float(row[0])) if group_by == "day" else str(row[0])
            s = totals.setdefault(group, [0, 0, 0, 0, 0, 0.0, 0])
            for i in range(7):
                s[i] += float(row[i + 1] or 0)


def _day_label(day: float) -> str:
    return datetime.fromtimestamp(day, UTC).date().isoformat()
