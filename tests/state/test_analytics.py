"""Analytics over the usage ledger (state/sql_analytics.py), on SQLite and PostgreSQL: every
figure checked against a plain-Python count of the same rows, before the rollups exist (raw rows
only), after they are filled (rollups inside, raw rows at the edges), with rows in the open hour
and rows that arrive after their hour was rolled up; the request log's keyset paging; one
request's attempts."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

from unigate.state import State, UsageRow
from unigate.state.db import Sql
from unigate.state.sql_analytics import BOUNDS, HOUR, NB, BadCursor, SqlAnalytics, percentile, plan

DAY = 86400.0
T0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
#: "now" for the fills below: four days after T0 (so the rows' hours are closed and settled)
NOW = T0 + 4 * DAY
MODELS = ("fast", "smart", "cheap")
DEPLOYMENTS = {"fast": ("openai", "openai/gpt-4.1-mini"), "smart": ("anthropic", "anthropic/claude-sonnet-4-5"),
               "cheap": ("groq", "groq/llama-3.1-8b")}


def make_rows(n: int, seed: int = 7, start: float = T0, span: float = 3 * DAY) -> list[UsageRow]:
    """n requests over [start, start + span): some fall back (two or three attempts, the first
    failing), some fail for good, some stream (TTFT), some without a key or team."""
    rnd = random.Random(seed)
    rows: list[UsageRow] = []
    for i in range(n):
        t = start + rnd.random() * span
        if i % 17 == 0:
            t = rows[-1].time if rows else t  # equal timestamps: the log's paging must still be exact
        model = MODELS[i % 3]
        key = None if i % 11 == 0 else f"key_{i % 5}"
        team = None if key is None or i % 5 == 4 else f"team_{i % 2}"
        tries = 3 if i % 23 == 0 else 2 if i % 7 == 0 else 1
        for a in range(1, tries + 1):
            last = a == tries
            provider, served = DEPLOYMENTS[model] if last else DEPLOYMENTS[MODELS[(i + a) % 3]]
            failed = not last or i % 13 == 0
            stream = i % 2 == 0
            rows.append(UsageRow(
                time=t + (a - 1) * 0.5, request_id=f"req-{i:05d}", endpoint="chat", attempt=a, key_id=key,
                team=team, requested_model=model, served_model=served, deployment=served, provider=provider,
                attempts=a, input_tokens=0 if failed else 10 + i % 50, output_tokens=0 if failed else i % 30,
                cost_usd=None if failed else 0.0001 * (1 + i % 9), latency_ms=rnd.choice((5.0, 40.0, 99.0, 250.0,
                1000.0, 2500.0, 130000.0)) + rnd.random(), ttft_ms=(rnd.random() * 900) if stream and not failed else None,
                status=502 if failed else 200, error_code="upstream_error" if failed else None, stream=stream,
            ))  # fmt: skip
    return rows


def hist(values: Iterable[float]) -> list[float]:
    h = [0.0] * NB
    for v in values:
        i = next((k for k, b in enumerate(BOUNDS) if v <= b), NB - 1)
        h[i] += 1
    return h


def expect(rows: list[UsageRow], lo: float, hi: float, pick: Callable[[UsageRow], bool] = lambda r: True) -> dict[str, Any]:
    """The figures of the rows in [lo, hi) that `pick` takes, counted the slow, obvious way."""
    keys = {(r.request_id, r.attempt) for r in rows}
    inside = [r for r in rows if lo <= r.time < hi and pick(r)]
    last = [r for r in inside if (r.request_id, r.attempt + 1) not in keys]
    errors = sum(1 for r in last if r.status >= 400 or r.error_code is not None)
    lat, ttft = hist(r.latency_ms for r in last), hist(r.ttft_ms for r in last if r.ttft_ms is not None)
    return {"requests": len(last), "attempts": len(inside), "errors": errors,
            "error_rate": round(errors / len(last), 6) if last else 0.0,
            "input_tokens": sum(r.input_tokens for r in inside), "output_tokens": sum(r.output_tokens for r in inside),
            "cost_usd": round(sum(r.cost_usd or 0.0 for r in inside), 9),
            "latency_p50_ms": percentile(lat, 0.5), "latency_p95_ms": percentile(lat, 0.95),
            "latency_p99_ms": percentile(lat, 0.99), "ttft_p50_ms": percentile(ttft, 0.5),
            "ttft_p95_ms": percentile(ttft, 0.95)}  # fmt: skip


def same(got: dict[str, Any], want: dict[str, Any]) -> None:
    got = {k: v for k, v in got.items() if k not in ("group", "t")}
    assert got.keys() == want.keys()
    for k, v in want.items():
        if isinstance(v, float):
            assert got[k] == pytest.approx(v, abs=1e-6), k
        else:
            assert got[k] == v, k


GROUP_OF: dict[str, Callable[[UsageRow], str | None]] = {
    "model": lambda r: r.requested_model, "served_model": lambda r: r.served_model, "provider": lambda r: r.provider,
    "deployment": lambda r: r.deployment, "key": lambda r: r.key_id, "team": lambda r: r.team,
}


async def check_summaries(an: SqlAnalytics, rows: list[UsageRow], lo: float, hi: float) -> None:
    s = await an.summary(lo, hi, None, {}, 50)
    same(s["totals"], expect(rows, lo, hi))
    assert s["groups"] == []
    for g, of in GROUP_OF.items():
        s = await an.summary(lo, hi, g, {}, 50)
        same(s["totals"], expect(rows, lo, hi))
        values = {of(r) for r in rows if lo <= r.time < hi}
        assert {x["group"] for x in s["groups"]} == values, g
        for x in s["groups"]:
            same(x, expect(rows, lo, hi, lambda r, v=x["group"], f=of: f(r) == v))  # type: ignore[misc]
        reqs = [x["requests"] for x in s["groups"]]
        assert reqs == sorted(reqs, reverse=True)
    # filters, alone and crossed with another dimension's grouping (the day_all cube, or raw rows)
    s = await an.summary(lo, hi, "model", {"key": "key_1"}, 50)
    for x in s["groups"]:
        same(x, expect(rows, lo, hi, lambda r, v=x["group"]: r.key_id == "key_1" and r.requested_model == v))  # type: ignore[misc]
    s = await an.summary(lo, hi, "team", {"provider": "openai", "model": "fast"}, 50)
    same(s["totals"], expect(rows, lo, hi, lambda r: r.provider == "openai" and r.requested_model == "fast"))


async def test_figures_from_raw_rows_then_rollups_are_exact(state: State) -> None:
    rows = make_rows(600)
    assert await state.ledger.write(rows) == len(rows)
    an = SqlAnalytics(state.db)
    # ranges inside an hour, across hour and day edges, and the whole span
    ranges = [(T0, T0 + 3 * DAY), (T0 + 1234.5, T0 + 2 * DAY + 999), (T0 + DAY + 600, T0 + DAY + 1800)]
    assert await an.filled_to() is None
    for lo, hi in ranges:
        await check_summaries(an, rows, lo, hi)  # nothing rolled up: raw rows only
    assert await an.fill(now=NOW) > 0
    assert await an.filled_to() == NOW - 15 * 60 - (NOW - 15 * 60) % HOUR
    for lo, hi in ranges:
        await check_summaries(an, rows, lo, hi)
    # a fill that finds nothing due does nothing
    assert await an.fill(now=NOW) == 0


async def test_the_open_hour_and_late_rows(state: State) -> None:
    rows = make_rows(300)
    await state.ledger.write(rows)
    an = SqlAnalytics(state.db)
    # roll up to T0 + 2 days + 5 h; rows after it (the "open" part) come from the raw rows
    fill_now = T0 + 2 * DAY + 5 * HOUR + 15 * 60
    await an.fill(now=fill_now)
    assert await an.filled_to() == T0 + 2 * DAY + 5 * HOUR
    await check_summaries(an, rows, T0, T0 + 3 * DAY)
    await check_summaries(an, rows, T0 + 2 * DAY + 4.5 * HOUR, T0 + 2 * DAY + 6 * HOUR)

    # rows arriving after their hour was rolled up (a flush retried after an outage)
    late = [r._replace(request_id="late-" + r.request_id)
            for r in make_rows(40, seed=99, start=T0 + DAY + 3 * HOUR, span=HOUR)]
    await state.ledger.write(late)
    everything = rows + late
    # until reconciled the rollup misses them (documented), after it they count, from cube and raw alike
    stale = await an.summary(T0, T0 + 3 * DAY, None, {}, 50)
    assert stale["totals"]["attempts"] == len(rows)
    assert await an.reconcile() == [T0 + DAY]
    await check_summaries(an, everything, T0, T0 + 3 * DAY)
    assert await an.reconcile() == []
    # a late row in an hour that had no rows at all
    lone = make_rows(1, seed=3, start=T0 + 30, span=1)[0]._replace(request_id="lone", time=T0 - 2 * DAY + 5)
    await state.ledger.write([lone])
    # (hours before the ledger's first row count as rolled up, empty: a row there is late too)
    assert await an.reconcile(since=T0 - 2 * DAY) == [T0 - 2 * DAY]
    await check_summaries(an, [*everything, lone], T0 - 3 * DAY, T0 + 3 * DAY)


async def test_a_late_attempt_that_makes_a_rolled_up_one_retried(state: State) -> None:
    rows = make_rows(200)
    await state.ledger.write(rows)
    an = SqlAnalytics(state.db)
    await an.fill(now=NOW)
    # attempt 1 failed in the last hour of day 1 and was rolled up as the request's last; its
    # attempt 2 (day 2) arrives late
    first = UsageRow(T0 + DAY - 10, "flip", endpoint="chat", attempt=1, key_id="key_1", requested_model="fast",
                     served_model="groq/llama-3.1-8b", deployment="groq/llama-3.1-8b", provider="groq",
                     latency_ms=20.0, status=503, error_code="upstream_error")
    await state.ledger.write([first])
    assert await an.reconcile() == [T0]
    second = UsageRow(T0 + DAY + 5, "flip", endpoint="chat", attempt=2, key_id="key_1", requested_model="fast",
                      served_model="openai/gpt-4.1-mini", deployment="openai/gpt-4.1-mini", provider="openai",
                      input_tokens=7, latency_ms=300.0, status=200)
    await state.ledger.write([second])
    everything = [*rows, first, second]
    # the row count finds day 2's new row, not that day 1's row stopped being a last attempt
    assert await an.reconcile() == [T0 + DAY]
    stale = await an.summary(T0, T0 + 3 * DAY, None, {}, 50)
    assert stale["totals"]["requests"] == expect(everything, T0, T0 + 3 * DAY)["requests"] + 1
    assert await an.reconcile(last_attempts=True) == [T0]
    await check_summaries(an, everything, T0, T0 + 3 * DAY)
    assert await an.reconcile(last_attempts=True) == []


async def test_timeseries_buckets(state: State) -> None:
    rows = make_rows(400)
    await state.ledger.write(rows)
    an = SqlAnalytics(state.db)
    await an.fill(now=T0 + 2 * DAY + 15 * 60)  # two days rolled up, the third raw
    lo, hi = T0 + 1800, T0 + 3 * DAY - 100
    for size in (DAY, HOUR):
        ts = await an.timeseries(lo, hi, size, "model", {}, 2)
        start = lo - lo % size
        assert [p["t"] for p in ts["points"]][:2] == [_iso(start), _iso(start + size)]
        assert len(ts["points"]) == int((hi - start + size - 1) // size)
        for p in ts["points"]:
            t = _parse(p["t"])
            same(p, expect(rows, max(t, lo), min(t + size, hi)))
        assert len(ts["series"]) == 2
        counts = {m: sum(1 for r in rows if r.requested_model == m and lo <= r.time < hi) for m in MODELS}
        for s in ts["series"]:
            for p in s["points"]:
                t = _parse(p["t"])
                same(p, expect(rows, max(t, lo), min(t + size, hi), lambda r, g=s["group"]: r.requested_model == g))  # type: ignore[misc]
        assert len({s["group"] for s in ts["series"]} & set(counts)) == 2
    # minutes come from the raw rows
    ts = await an.timeseries(T0 + DAY, T0 + DAY + 3 * HOUR, 60.0, "key", {"team": "team_1"}, 3)
    assert len(ts["points"]) == 180
    for p in ts["points"][::7]:
        t = _parse(p["t"])
        same(p, expect(rows, t, t + 60, lambda r: r.team == "team_1"))
    assert sum(p["attempts"] for p in ts["points"]) == sum(
        1 for r in rows if T0 + DAY <= r.time < T0 + DAY + 3 * HOUR and r.team == "team_1")


async def test_request_log_pages_are_exact(state: State) -> None:
    rows = make_rows(250)
    await state.ledger.write(rows)
    an = SqlAnalytics(state.db)
    keys = {(r.request_id, r.attempt) for r in rows}
    last = [r for r in rows if (r.request_id, r.attempt + 1) not in keys]
    want = sorted(last, key=lambda r: (r.time, r.request_id), reverse=True)
    assert len({r.time for r in want}) < len(want)  # equal timestamps are among them

    async def walk(limit: int, **kw: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        for _ in range(1000):
            page = await an.requests(T0, T0 + 3 * DAY, kw.get("filters", {}), kw.get("status"), limit, cursor)
            assert len(page["data"]) <= limit
            out += page["data"]
            cursor = page["next_cursor"]
            if cursor is None:
                return out
        raise AssertionError("paging did not end")

    for filled in (False, True):
        if filled:  # two days rolled up: the filtered pages are guided by the cubes, the third day is raw
            await an.fill(now=T0 + 2 * DAY + 15 * 60)
        got = await walk(7)
        assert [x["request_id"] for x in got] == [r.request_id for r in want]
        by_id = {r.request_id: r for r in want}
        for x in got[:40]:
            r = by_id[x["request_id"]]
            every = [a for a in rows if a.request_id == r.request_id]
            assert x["attempts"] == len(every) and x["served_model"] == r.served_model and x["model"] == r.requested_model
            assert x["status"] == ("error" if r.status >= 400 else "ok") and x["http_status"] == r.status
            assert x["input_tokens"] == sum(a.input_tokens for a in every) and x["time"] == r.time
            assert x["latency_ms"] == round(r.latency_ms, 3) and x["key_id"] == r.key_id and x["stream"] == r.stream
        errors = await walk(5, status="error", filters={"model": "smart", "key": "key_2"})
        assert [x["request_id"] for x in errors] == [
            r.request_id for r in want if r.status >= 400 and r.requested_model == "smart" and r.key_id == "key_2"]
        assert errors
        oks = await walk(50, status="ok", filters={"provider": "openai", "team": "team_0"})
        assert [x["request_id"] for x in oks] == [
            r.request_id for r in want if r.status < 400 and r.provider == "openai" and r.team == "team_0"]
        # one dimension (an hour cube guides), and status alone
        one_key = await walk(3, filters={"key": "key_3"})
        assert [x["request_id"] for x in one_key] == [r.request_id for r in want if r.key_id == "key_3"]
        failed = await walk(4, status="error", filters={"deployment": "anthropic/claude-sonnet-4-5"})
        assert [x["request_id"] for x in failed] == [
            r.request_id for r in want if r.status >= 400 and r.deployment == "anthropic/claude-sonnet-4-5"]
        assert [x["request_id"] for x in await walk(9, status="error")] == [r.request_id for r in want if r.status >= 400]
    # one page holding everything has no next page
    page = await an.requests(T0, T0 + 3 * DAY, {}, None, 500, None)
    assert page["next_cursor"] is None and len(page["data"]) == len(want)
    with pytest.raises(BadCursor):
        await an.requests(T0, T0 + 3 * DAY, {}, None, 5, "not-a-cursor")
    with pytest.raises(BadCursor):
        await an.requests(T0, T0 + 3 * DAY, {}, None, 5, "WzEsMiwzXQ")  # [1,2,3]


async def test_one_request_and_its_attempts(state: State) -> None:
    rows = make_rows(30)
    await state.ledger.write(rows)
    an = SqlAnalytics(state.db)
    found = await an.request("req-00000")  # i = 0: three attempts
    assert found is not None
    assert [a["attempt"] for a in found["attempts"]] == [1, 2, 3]
    assert [a["status"] for a in found["attempts"]] == ["error", "error", "error"]  # 0 % 13 == 0: failed for good
    assert found["request"]["attempts"] == 3 and found["request"]["status"] == "error"
    assert found["attempts"][0]["served_model"] != found["attempts"][2]["served_model"]
    assert found["request"]["served_model"] == found["attempts"][2]["served_model"] == "openai/gpt-4.1-mini"
    one = await an.request("req-00001")
    assert one is not None and len(one["attempts"]) == 1 and one["request"]["status"] == "ok"
    assert await an.request("nope") is None


async def test_concurrent_fillers_roll_each_hour_up_once(state: State, backend: Any) -> None:
    rows = make_rows(300)
    await state.ledger.write(rows)
    other = await backend.open()  # another worker's handle on the same database
    try:
        a, b = SqlAnalytics(state.db), SqlAnalytics(other.db)
        await asyncio.gather(a.fill(now=NOW), b.fill(now=NOW), a.fill(now=NOW))
        [[n]] = await state.db.fetch(Sql("SELECT sum(attempts) FROM an_hour_route"))
        assert int(n) == len(rows)
        [[n]] = await state.db.fetch(Sql("SELECT sum(attempts) FROM an_day_all"))
        assert int(n) == len(rows)
        await check_summaries(b, rows, T0, T0 + 3 * DAY)
    finally:
        await other.close()


def test_percentiles_stay_in_their_bucket() -> None:
    # 100 values: 50 in (75, 100], 45 in (500, 750], 5 above 120 s
    h = hist([80.0] * 50 + [600.0] * 45 + [200000.0] * 5)
    p50, p95, p99 = percentile(h, 0.5), percentile(h, 0.95), percentile(h, 0.99)
    assert p50 is not None and 75 < p50 <= 100
    assert p95 is not None and 500 < p95 <= 750
    assert p99 == 120000.0
    assert percentile([0.0] * NB, 0.5) is None
    assert percentile(hist([3.0]), 0.5) == pytest.approx(5.0)  # the first bucket is [0, 10]


def test_plan_covers_the_range_once() -> None:
    from unigate.state.sql_analytics import CUBES

    cubes = [c for c in CUBES if c.table in ("an_day_route", "an_hour_route")]
    lo, hi, mark = T0 + 1000, T0 + 3 * DAY + 5 * HOUR + 100, T0 + 3 * DAY + 3 * HOUR
    pieces = plan(lo, hi, mark, cubes)
    assert pieces[0].lo == lo and pieces[-1].hi == hi
    assert all(a.hi == b.lo for a, b in itertools.pairwise(pieces))
    kinds = [(p.cube.table if p.cube else None, p.lo - T0, p.hi - T0) for p in pieces]
    assert kinds == [(None, 1000, 3600), ("an_hour_route", 3600, DAY), ("an_day_route", DAY, 3 * DAY),
                     ("an_hour_route", 3 * DAY, 3 * DAY + 3 * HOUR), (None, 3 * DAY + 3 * HOUR, 3 * DAY + 5 * HOUR + 100)]
    assert plan(lo, hi, None, cubes) == plan(lo, hi, mark, []) == [pieces[0].__class__(None, lo, hi)]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(s: str) -> float:
    return datetime.fromisoformat(s).timestamp()
