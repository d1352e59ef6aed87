"""Analytics over the usage ledger: summaries, time series, the request log and one request's
attempts, on SQLite and PostgreSQL, fast on millions of rows.

Rollups ("cubes", tables an_* of migration _V3) hold, per hour or UTC day and a set of
dimensions, the sums of the figures and cumulative latency/TTFT histograms over fixed bounds.
They are filled lazily, never by the ledger's insert (that is the gateway's hot path): `fill()`
rolls up every whole hour that ended more than SETTLE seconds ago, a few hours per transaction
(never past a UTC day's end), and moves one
watermark (`analytics_rollup.filled_to`) in the same transaction, serialized by a lock, so
concurrent fillers (workers, replicas) never roll an hour up twice. A query reads the cubes for
the buckets wholly below the watermark and the raw rows for the rest (the open hour and the
edges of its range), so an answer is right whether or not the fill has caught up.

A row that arrives after its hour was rolled up (a flush retried after a database outage) is
found by `reconcile()`: per hour it compares the ledger's row count with the rows the cubes
counted (`attempts`), and rolls any day that differs up again from the raw rows; with
`last_attempts` it also recounts which rows are their request's last attempt.

A ledger row is one attempt. A request's figures are its last attempt's (the row with no
attempt number after it); tokens and cost count every attempt. docs/admin-api.md defines each
figure; docs/decisions.md (18) says why it is built this way.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from unigate.state.db import Database, Row, Sql, placeholders

HOUR = 3600.0
DAY = 86400.0
#: an hour is rolled up this long after it ended: a row's time is its attempt's start and it is
#: written when the attempt ends, so a long stream's row lands well after its hour closed
SETTLE = 15 * 60.0
#: histogram bucket upper bounds in ms (the last bucket is open above 120 s)
BOUNDS: tuple[float, ...] = (10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 4000,
                             5000, 7500, 10000, 15000, 20000, 30000, 60000, 120000)  # fmt: skip
NB = len(BOUNDS) + 1

Dim = Literal["model", "served_model", "provider", "deployment", "key", "team"]
DIMS: tuple[Dim, ...] = ("model", "served_model", "provider", "deployment", "key", "team")
#: a dimension's column in the cubes and its expression in the raw rows ('' stands for none)
_CUBE_COL: dict[str, str] = {"model": "model", "served_model": "served_model", "provider": "provider",
                             "deployment": "deployment", "key": "key_id", "team": "team"}  # fmt: skip
_RAW_COL: dict[str, str] = {"model": "u.requested_model", "served_model": "u.served_model", "provider": "u.provider",
                            "deployment": "u.deployment", "key": "coalesce(u.key_id, '')",
                            "team": "coalesce(u.team, '')"}  # fmt: skip
#: filters on the raw rows compare the plain column (an index can serve it)
_RAW_FILTER: dict[str, str] = {**_RAW_COL, "key": "u.key_id", "team": "u.team"}


@dataclass(frozen=True, slots=True)
class Cube:
    table: str
    grain: float
    dims: tuple[Dim, ...]


_ROUTE: tuple[Dim, ...] = ("model", "served_model", "provider", "deployment")
_PRINCIPAL: tuple[Dim, ...] = ("key", "team")
#: coarsest first, then the one with the fewest rows (a few deployments per hour, against up to
#: hundreds of keys): the first cube that has a query's dimensions is the smallest that can
#: answer it (migrations._V3 creates the tables)
CUBES: tuple[Cube, ...] = (
    Cube("an_day_route", DAY, _ROUTE),
    Cube("an_day_principal", DAY, _PRINCIPAL),
    Cube("an_day_all", DAY, (*_ROUTE, *_PRINCIPAL)),
    Cube("an_hour_route", HOUR, _ROUTE),
    Cube("an_hour_principal", HOUR, _PRINCIPAL),
)
#: the request log's guides, finest first
_LOG_CUBES = (CUBES[3], CUBES[4], CUBES[2])
_SUMS = ("requests", "attempts", "errors", "input_tokens", "output_tokens", "cost_usd")
_HIST = tuple(f"l{i}" for i in range(NB)) + tuple(f"t{i}" for i in range(NB))
_FIGS = _SUMS + _HIST
#: the values of one group: the sums, then the latency and the TTFT histogram
Sums = list[float]

#: the request log's rows: a request's last attempt is the row with no next attempt (each try of
#: a call is numbered one after the other, pipeline.py)
_LAST = "n.request_id IS NULL"
_FROM = "FROM usage u LEFT JOIN usage n ON n.request_id = u.request_id AND n.attempt = u.attempt + 1"
#: PostgreSQL plans that join as a hash join over the whole ledger (for a day of rows: 0.60 s,
#: against 0.36 s); LATERAL ... LIMIT 1 makes it a primary-key lookup per row, which wins up to
#: about two days of rows (7 days: 2.0 s against 1.2 s). SQLite always looks up (no LATERAL)
_FROM_LOOKUP = ("FROM usage u LEFT JOIN LATERAL (SELECT n.request_id FROM usage n WHERE n.request_id = u.request_id "
                "AND n.attempt = u.attempt + 1 LIMIT 1) n ON true")
#: the longest range read with per-row lookups on PostgreSQL
LOOKUP_SPAN = 2 * DAY
_FAILED = "(u.status >= 400 OR u.error_code IS NOT NULL)"


def _raw_sums(dialect: str) -> str:
    """The figures of raw rows, in the order of _FIGS. The histograms are cumulative (l<k>: last
    attempts with latency <= BOUNDS[k]; the 25th column counts them all), so each bucket is one
    comparison summed: three times cheaper than a CASE per bucket (measured on SQLite)."""
    n = "::int" if dialect == "postgres" else ""

    def count(cond: str) -> str:
        # coalesce: `true AND NULL` (no TTFT) is NULL, and a sum of only NULLs is NULL
        return f"coalesce(sum(({_LAST} AND {cond}){n}), 0)"

    return ", ".join([
        f"sum(({_LAST}){n})", "count(*)", count(_FAILED), "sum(u.input_tokens)", "sum(u.output_tokens)",
        "sum(coalesce(u.cost_usd, 0))",
        *(count(f"u.latency_ms <= {b}") for b in BOUNDS), f"sum(({_LAST}){n})",
        *(count(f"u.ttft_ms <= {b}") for b in BOUNDS), count("u.ttft_ms IS NOT NULL"),
    ])  # fmt: skip


_CUBE_SUMS = ", ".join(f"sum({c})" for c in _FIGS)

Filters = Mapping[str, str]


class BadCursor(ValueError):
    pass


def _bucket_expr(dialect: str, col: str, size: float) -> str:
    """`col` floored to a multiple of `size` seconds (times are positive)."""
    n = int(size)
    if dialect == "sqlite":
        return f"(CAST({col} / {n} AS INTEGER) * {n})"
    return f"(floor({col} / {n}) * {n})"


def _floor(t: float, size: float) -> float:
    return math.floor(t / size) * size


def _ceil(t: float, size: float) -> float:
    return math.ceil(t / size) * size


def percentile(hist: Sequence[float], q: float) -> float | None:
    """The q-quantile of a histogram over BOUNDS (a count per bucket), linearly interpolated inside
    the bucket the rank falls in (as Prometheus' histogram_quantile): always within that bucket's
    bounds; the open bucket above the last bound answers that bound."""
    return _quantile(list(itertools.accumulate(hist)), q)


def _quantile(cum: Sequence[float], q: float) -> float | None:
    """percentile() of the cumulative counts (what the queries sum): a bisection, no loop."""
    total = cum[-1]
    if total <= 0:
        return None
    rank = q * total
    i = bisect.bisect_left(cum, rank)
    if i >= NB - 1:
        return float(BOUNDS[-1])
    below = cum[i - 1] if i else 0.0
    lo = float(BOUNDS[i - 1]) if i else 0.0
    return round(lo + (BOUNDS[i] - lo) * (rank - below) / (cum[i] - below), 3)


def figures(s: Sums) -> dict[str, Any]:
    requests, errors = int(s[0]), int(s[2])
    if requests == 0:
        lat_p: tuple[float | None, ...] = (None, None, None)
    else:
        lat = s[6 : 6 + NB]
        lat_p = (_quantile(lat, 0.5), _quantile(lat, 0.95), _quantile(lat, 0.99))
    ttft = s[6 + NB :]
    return {"requests": requests, "attempts": int(s[1]), "errors": errors,
            "error_rate": round(errors / requests, 6) if requests else 0.0,
            "input_tokens": int(s[3]), "output_tokens": int(s[4]), "cost_usd": round(s[5], 9),
            "latency_p50_ms": lat_p[0], "latency_p95_ms": lat_p[1], "latency_p99_ms": lat_p[2],
            "ttft_p50_ms": _quantile(ttft, 0.5), "ttft_p95_ms": _quantile(ttft, 0.95)}  # fmt: skip


def _zero() -> Sums:
    return [0.0] * len(_FIGS)


def _add(into: Sums, row: Sequence[Any], start: int) -> None:
    for i in range(len(_FIGS)):
        v = row[start + i]
        if v:
            into[i] += float(v)


@dataclass(frozen=True, slots=True)
class Piece:
    """A part of a query's range and where it is read: a cube, or the raw rows (cube None)."""

    cube: Cube | None
    lo: float
    hi: float


def plan(start: float, end: float, filled_to: float | None, cubes: Sequence[Cube]) -> list[Piece]:
    """Cover [start, end) with the coarsest eligible cube's whole buckets below the watermark,
    the next cube's for what is left at the edges, and raw rows for the rest."""
    if start >= end:
        return []
    if not cubes or filled_to is None:
        return [Piece(None, start, end)]
    c, rest = cubes[0], cubes[1:]
    lo, hi = _ceil(start, c.grain), _floor(min(end, filled_to), c.grain)
    if lo >= hi:
        return plan(start, end, filled_to, rest)
    return [*plan(start, lo, filled_to, rest), Piece(c, lo, hi), *plan(hi, end, filled_to, rest)]


class SqlAnalytics:
    def __init__(self, db: Database, *, settle: float = SETTLE) -> None:
        self._db = db
        self._settle = settle
        self._raw_bucket = {size: _bucket_expr(db.dialect, "u.time", size) for size in (60.0, HOUR, DAY)}
        self._raw_sums = _raw_sums(db.dialect)

    def _from(self, span: float) -> str:
        return _FROM_LOOKUP if self._db.dialect == "postgres" and span <= LOOKUP_SPAN else _FROM

    # -- the rollups ---------------------------------------------------------------------

    def _fill_sqls(self, lo: float, hi: float) -> list[Sql]:
        """Add the raw rows in [lo, hi) to every cube: one pass over the rows into a staging table
        per (hour, every dimension), then each cube summed from it (five passes over the raw rows
        took 3x as long). Adding (upserts), so a day is rolled up hour by hour."""
        every = [_CUBE_COL[d] for d in DIMS]
        hb = self._raw_bucket[HOUR]
        raw_dims = ", ".join(_RAW_COL[d] for d in DIMS)
        pg = self._db.dialect == "postgres"
        real, count = ("DOUBLE PRECISION", "BIGINT") if pg else ("REAL", "INTEGER")  # PostgreSQL's REAL is 4 bytes
        # counts as integers: SQLite sums REALs with a compensated (slower) summation
        types = ", ".join([f"bucket {real}", *(f"{c} TEXT" for c in every),
                           *(f"{c} {real if c == 'cost_usd' else count}" for c in _FIGS)])
        if self._db.dialect == "postgres":
            out = [Sql(f"CREATE TEMP TABLE an_stage ({types}) ON COMMIT DROP")]
        else:
            out = [Sql(f"CREATE TEMP TABLE IF NOT EXISTS an_stage ({types})"), Sql("DELETE FROM an_stage")]
        out.append(Sql(f"INSERT INTO an_stage SELECT {hb}, {raw_dims}, {self._raw_sums} {self._from(hi - lo)} "
                       f"WHERE u.time >= ? AND u.time < ? GROUP BY {hb}, {raw_dims}", [lo, hi]))
        # the hour cubes first: a day cube with the same dimensions is summed from its hour
        # cube's few rows (an hour of deployments: ~25) instead of the staging table's (~1,400)
        by_dims = {c.dims: c for c in CUBES if c.grain == HOUR}
        for cube in sorted(CUBES, key=lambda c: c.grain):
            cols = ", ".join(_CUBE_COL[d] for d in cube.dims)
            b = "bucket" if cube.grain == HOUR else _bucket_expr(self._db.dialect, "bucket", cube.grain)
            upd = ", ".join(f"{c} = {cube.table}.{c} + excluded.{c}" for c in _FIGS)
            source, where, args = "an_stage", "true", list[Any]()
            finer = by_dims.get(cube.dims)
            if finer is not None and finer is not cube:
                source, where, args = finer.table, "bucket >= ? AND bucket < ?", [lo, hi]
            # a WHERE clause: SQLite reads an upsert after a bare SELECT ... GROUP BY ambiguously
            out.append(Sql(f"INSERT INTO {cube.table} (bucket, {cols}, {', '.join(_FIGS)}) "
                           f"SELECT {b}, {cols}, {', '.join(f'sum({c})' for c in _FIGS)} FROM {source} WHERE {where} "
                           f"GROUP BY {b}, {cols} ON CONFLICT (bucket, {cols}) DO UPDATE SET {upd}", args))
        return out

    async def filled_to(self) -> float | None:
        rows = await self._db.fetch(Sql("SELECT filled_to FROM analytics_rollup WHERE id = 1"))
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    async def fill_step(self, now: float | None = None, max_hours: int = 1) -> bool:
        """Roll up the next hours (at most max_hours, never past a day's end) that are due; False
        when there was none. One transaction under the lock 'analytics'."""
        target = _floor((time.time() if now is None else now) - self._settle, HOUR)
        reads = [Sql("SELECT filled_to FROM analytics_rollup WHERE id = 1"), Sql("SELECT min(time) FROM usage")]

        def decide(found: list[list[Row]]) -> tuple[bool, Sequence[Sql]]:
            mark, first = found[0][0][0], found[1][0][0]
            if mark is None:
                # nothing rolled up yet: start at the ledger's first hour (or now, when it is empty)
                lo = target if first is None else min(_floor(float(first), HOUR), target)
            else:
                lo = float(mark)
            hi = min(lo + max_hours * HOUR, _floor(lo, DAY) + DAY, target)
            if hi <= lo:
                if mark is None:
                    return False, [Sql("UPDATE analytics_rollup SET filled_to = ? WHERE id = 1", [lo])]
                return False, ()
            writes = self._fill_sqls(lo, hi)
            writes.append(Sql("UPDATE analytics_rollup SET filled_to = ? WHERE id = 1", [hi]))
            return True, writes

        return await self._db.atomic(["analytics"], reads, decide)

    async def fill(self, now: float | None = None, max_hours: int = 1, max_steps: int = 100_000) -> int:
        """Catch the rollups up; the number of steps taken."""
        steps = 0
        while steps < max_steps and await self.fill_step(now, max_hours):
            steps += 1
        return steps

    async def reconcile(self, since: float | None = None, *, last_attempts: bool = False) -> list[float]:
        """Roll up again each day whose rolled-up hours (from `since`, default all) miss rows of
        the ledger that arrived after them; the days redone. `last_attempts`: also recount which
        rows are their request's last attempt (a late attempt makes an earlier one, rolled up as
        the last, a retried one; its hour's row count does not show it): a join, so costlier."""
        mark = await self.filled_to()
        if mark is None:
            return []
        lo = 0.0 if since is None else _floor(since, DAY)
        if lo >= mark:
            return []
        hb = self._raw_bucket[HOUR]
        if last_attempts:
            n = "::int" if self._db.dialect == "postgres" else ""
            raw_sql = (f"SELECT {hb}, count(*), sum(({_LAST}){n}) {self._from(DAY)} WHERE u.time >= ? "
                       f"AND u.time < ? GROUP BY {hb}")
        else:
            raw_sql = f"SELECT {hb}, count(*), 0 FROM usage u WHERE u.time >= ? AND u.time < ? GROUP BY {hb}"
        days: list[float] = []
        if since is None:  # from the ledger's first row
            [[first]] = await self._db.fetch(Sql("SELECT min(time) FROM usage"))
            lo = mark if first is None else max(lo, _floor(float(first), DAY))
        # a day per query: the analytics' queries share this connection, and must not wait long
        for a in itertools.takewhile(lambda d: d < mark, itertools.count(lo, DAY)):
            b = min(a + DAY, mark)
            raw = await self._db.fetch(Sql(raw_sql, [a, b]))
            cube = await self._db.fetch(Sql("SELECT bucket, sum(attempts), sum(requests) FROM an_hour_route "
                                            "WHERE bucket >= ? AND bucket < ? GROUP BY bucket", [a, b]))
            have = {float(r[0]): (int(r[1]), int(r[2]) if last_attempts else 0) for r in cube}
            if any(have.get(float(r[0]), (0, 0)) != (int(r[1]), int(r[2] or 0)) for r in raw):
                days.append(a)
        for day in days:
            await self._redo_day(day)
        return days

    async def _redo_day(self, day: float) -> None:
        reads = [Sql("SELECT filled_to FROM analytics_rollup WHERE id = 1")]

        def decide(found: list[list[Row]]) -> tuple[None, Sequence[Sql]]:
            mark = found[0][0][0]
            if mark is None or float(mark) <= day:
                return None, ()
            hi = min(day + DAY, float(mark))
            writes = [Sql(f"DELETE FROM {c.table} WHERE bucket >= ? AND bucket < ?", [day, day + DAY]) for c in CUBES]
            writes += self._fill_sqls(day, hi)
            return None, writes

        await self._db.atomic(["analytics"], reads, decide)

    # -- the figures -----------------------------------------------------------------------

    async def _totals(self, start: float, end: float, group: str | None, bucket: float | None,
                      filters: Filters, only: Sequence[str] | None = None) -> dict[tuple[float, str], Sums]:
        """The sums per (bucket start or 0, group value or '') over [start, end)."""
        need = set(filters) | ({group} if group else set())
        eligible = [c for c in CUBES if need <= set(c.dims) and (bucket is None or bucket % c.grain == 0)]
        if bucket is not None and bucket < HOUR:
            eligible = []
        pieces = plan(start, end, await self.filled_to(), eligible)
        out: dict[tuple[float, str], Sums] = {}
        for p in pieces:
            for row in await self._db.fetch(self._piece_sql(p, group, bucket, filters, only)):
                key = (float(row[0]), "" if group is None else str(row[1]))
                s = out.get(key)
                if s is None:
                    s = out[key] = _zero()
                _add(s, row, 2)
        return out

    def _piece_sql(self, p: Piece, group: str | None, bucket: float | None, filters: Filters,
                   only: Sequence[str] | None) -> Sql:
        d = self._db.dialect
        if p.cube is None:
            where, args = ["u.time >= ?", "u.time < ?"], list[Any]([p.lo, p.hi])
            col = _RAW_COL[group] if group else None
            fcol, t, sums, src = _RAW_FILTER, ("0" if bucket is None else _bucket_expr(d, "u.time", bucket)), self._raw_sums, self._from(p.hi - p.lo)
        else:
            where, args = ["bucket >= ?", "bucket < ?"], [p.lo, p.hi]
            col = _CUBE_COL[group] if group else None
            fcol, sums, src = _CUBE_COL, _CUBE_SUMS, f"FROM {p.cube.table}"
            t = "0" if bucket is None else ("bucket" if bucket == p.cube.grain else _bucket_expr(d, "bucket", bucket))
        for name, value in filters.items():
            where.append(f"{fcol[name]} = ?")
            args.append(value)
        if only is not None and col is not None:
            where.append(f"{col} IN ({placeholders(len(only))})")
            args.extend(only)
        g = col or "''"
        # a constant is no GROUP BY term (both engines read an integer there as a column number)
        keys = [e for e in (t, col) if e and e != "0"]
        grouping = f" GROUP BY {', '.join(keys)}" if keys else ""
        return Sql(f"SELECT {t}, {g}, {sums} {src} WHERE {' AND '.join(where)}{grouping}", args)

    async def summary(self, start: float, end: float, group_by: str | None, filters: Filters,
                      limit: int) -> dict[str, Any]:
        if group_by is None:
            sums = await self._totals(start, end, None, None, filters)
            return {"totals": figures(sums.get((0.0, ""), _zero())), "groups": []}
        by_group = {g: s for (_t, g), s in (await self._totals(start, end, group_by, None, filters)).items()}
        total = _zero()
        for s in by_group.values():
            for i, v in enumerate(s):
                total[i] += v
        top = sorted(by_group.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:limit]
        return {"totals": figures(total), "groups": [{"group": g or None, **figures(s)} for g, s in top]}

    async def timeseries(self, start: float, end: float, bucket: float, group_by: str | None, filters: Filters,
                         limit: int) -> dict[str, Any]:
        times = [_floor(start, bucket) + i * bucket for i in range(int((_ceil(end, bucket) - _floor(start, bucket)) // bucket))]
        overall = await self._totals(start, end, None, bucket, filters)
        points = [{"t": iso(t), **figures(overall.get((t, ""), _zero()))} for t in times]
        series: list[dict[str, Any]] = []
        if group_by is not None:
            ranked = await self._totals(start, end, group_by, None, filters)
            top = [g for (_t, g), _s in sorted(ranked.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0][1]))[:limit]]
            if top:
                per = await self._totals(start, end, group_by, bucket, filters, only=top)
                series = [{"group": g or None, "points": [{"t": iso(t), **figures(per.get((t, g), _zero()))}
                                                          for t in times]} for g in top]
        return {"points": points, "series": series}

    # -- the request log ---------------------------------------------------------------------

    async def requests(self, start: float, end: float, filters: Filters, status: str | None, limit: int,
                       cursor: str | None) -> dict[str, Any]:
        """One page of the request log. Unfiltered, the newest rows of the time index are the page.
        Filtered, the matches may be sparse (a key with a few calls a day: the page would be a scan
        of the month), so the cubes say which hours (or days) hold matches and only those are read,
        newest first, until the page is full; the part above the watermark is read as it is."""
        where, args = [_LAST], list[Any]()
        for name, value in filters.items():
            where.append(f"{_RAW_FILTER[name]} = ?")
            args.append(value)
        if status == "error":
            where.append(_FAILED)
        elif status == "ok":
            where.append(f"NOT {_FAILED}")
        if cursor is not None:
            t, rid = decode_cursor(cursor)
            # `time <= t` first: a bound the time index can seek to, whatever page this is
            where.append("u.time <= ? AND (u.time < ? OR u.request_id < ?)")
            args += [t, t, rid]
            end = min(end, math.nextafter(t, math.inf))
        rows: list[Row] = []
        for lo, hi in await self._log_ranges(start, end, filters, status):
            # the plain join: with ORDER BY ... LIMIT PostgreSQL walks the time index and looks up
            # per row by itself (the lateral form made it sort the whole range first: 126 ms, not 3)
            got = await self._db.fetch(Sql(f"SELECT {_ROW_COLS} {_FROM} WHERE u.time >= ? AND u.time < ? AND "
                                           f"{' AND '.join(where)} ORDER BY u.time DESC, u.request_id DESC LIMIT ?",
                                           [lo, hi, *args, limit + 1 - len(rows)]))
            rows += got
            if len(rows) > limit:
                break
        more = len(rows) > limit
        rows = rows[:limit]
        sums = await self._request_sums([str(r[0]) for r in rows if int(r[11]) > 1])
        data = [request_row(r, sums.get(str(r[0]))) for r in rows]
        last = rows[-1] if more and rows else None
        return {"data": data, "next_cursor": None if last is None else encode_cursor(float(last[1]), str(last[0]))}

    async def _log_ranges(self, start: float, end: float, filters: Filters, status: str | None) -> list[tuple[float, float]]:
        """The parts of [start, end) to read, newest first: all of it unfiltered; filtered, the
        part above the watermark, then each cube bucket below it that counts a match."""
        mark = await self.filled_to() if filters or status else None
        cube = next((c for c in _LOG_CUBES if set(filters) <= set(c.dims)), None)
        if mark is None or cube is None or mark <= start:
            return [(start, end)]
        out = [(mark, end)] if mark < end else []
        count = {"error": "errors", "ok": "requests - errors"}.get(status or "", "requests")
        where, args = ["bucket >= ?", "bucket < ?"], list[Any]([_floor(start, cube.grain), min(mark, end)])
        for name, value in filters.items():
            where.append(f"{_CUBE_COL[name]} = ?")
            args.append(value)
        found = await self._db.fetch(Sql(f"SELECT bucket FROM {cube.table} WHERE {' AND '.join(where)} GROUP BY bucket "
                                         f"HAVING sum({count}) > 0 ORDER BY bucket DESC", args))
        for (b,) in found:
            lo, hi = max(float(b), start), min(float(b) + cube.grain, end, mark)
            if out and out[-1][0] == hi:
                out[-1] = (lo, out[-1][1])  # adjacent buckets: one read
            elif lo < hi:
                out.append((lo, hi))
        return out

    async def _request_sums(self, rids: list[str]) -> dict[str, tuple[int, int, float | None]]:
        if not rids:
            return {}
        rows = await self._db.fetch(Sql("SELECT request_id, sum(input_tokens), sum(output_tokens), sum(cost_usd) "
                                        f"FROM usage WHERE request_id IN ({placeholders(len(rids))}) "
                                        "GROUP BY request_id", rids))
        return {str(r[0]): (int(r[1]), int(r[2]), None if r[3] is None else float(r[3])) for r in rows}

    async def request(self, request_id: str) -> dict[str, Any] | None:
        rows = await self._db.fetch(Sql(f"SELECT {_ROW_COLS.replace('u.', '')} FROM usage WHERE request_id = ? "
                                        "ORDER BY attempt", [request_id]))
        if not rows:
            return None
        costs = [r[16] for r in rows]
        sums = (sum(int(r[14]) for r in rows), sum(int(r[15]) for r in rows),
                None if all(c is None for c in costs) else sum(float(c) for c in costs if c is not None))
        last = request_row(rows[-1], sums)
        last["attempts"] = len(rows)
        return {"request_id": request_id, "request": last, "attempts": [attempt_row(r) for r in rows]}


_ROW_COLS = ("u.request_id, u.time, u.key_id, u.team, u.requested_model, u.served_model, u.provider, u.deployment, "
             "u.endpoint, u.status, u.error_code, u.attempt, u.latency_ms, u.ttft_ms, u.input_tokens, "
             "u.output_tokens, u.cost_usd, u.stream")


def _failed(status: int, error: Any) -> bool:
    return status >= 400 or error is not None


def request_row(r: Row, sums: tuple[int, int, float | None] | None) -> dict[str, Any]:
    status, error = int(r[9]), r[10]
    inp, out, cost = sums if sums is not None else (int(r[14]), int(r[15]), None if r[16] is None else float(r[16]))
    return {"request_id": r[0], "ts": iso(float(r[1])), "time": float(r[1]), "key_id": r[2], "team": r[3],
            "model": r[4], "served_model": r[5], "provider": r[6], "deployment": r[7], "endpoint": r[8],
            "status": "error" if _failed(status, error) else "ok", "http_status": status, "error": error,
            "attempts": max(int(r[11]), 1), "latency_ms": round(float(r[12]), 3),
            "ttft_ms": None if r[13] is None else round(float(r[13]), 3), "input_tokens": inp,
            "output_tokens": out, "cost_usd": None if cost is None else round(cost, 9), "stream": bool(r[17])}


def attempt_row(r: Row) -> dict[str, Any]:
    status, error = int(r[9]), r[10]
    return {"attempt": int(r[11]), "ts": iso(float(r[1])), "provider": r[6], "deployment": r[7],
            "served_model": r[5], "status": "error" if _failed(status, error) else "ok", "http_status": status,
            "error": error, "latency_ms": round(float(r[12]), 3),
            "ttft_ms": None if r[13] is None else round(float(r[13]), 3), "input_tokens": int(r[14]),
            "output_tokens": int(r[15]), "cost_usd": None if r[16] is None else round(float(r[16]), 9)}


def iso(t: float) -> str:
    """UTC ISO-8601 with a Z; milliseconds only when the time has them."""
    from datetime import UTC, datetime

    dt = datetime.fromtimestamp(t, UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_cursor(t: float, request_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([t, request_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise BadCursor("cursor: not one this API gave out") from None
    if (not isinstance(value, list) or len(value) != 2 or type(value[0]) not in (int, float)
            or not isinstance(value[1], str) or not math.isfinite(value[0])):
        raise BadCursor("cursor: not one this API gave out")
    return float(value[0]), value[1]
