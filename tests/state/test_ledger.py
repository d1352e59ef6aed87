"""The usage ledger: idempotent batches and group-bys, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from unigate.state import State, UsageRow, open_state

DAY = 86400.0
T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def row(i: int, t: float, **kw: object) -> UsageRow:
    base = UsageRow(
        time=t, request_id=f"req-{i}", endpoint="chat", key_id=f"key_{i % 3}", team="t1" if i % 2 else None,
        requested_model="fast", served_model="openai/gpt-4.1-mini" if i % 4 else "anthropic/claude-3-5-haiku",
        deployment="d1", provider="openai" if i % 4 else "anthropic", input_tokens=100, output_tokens=10,
        cached_tokens=5, reasoning_tokens=1, cost_usd=0.001, latency_ms=120.0, ttft_ms=30.0, status=200,
    )  # fmt: skip
    return base._replace(**kw)


async def test_writes_are_idempotent(state: State) -> None:
    rows = [row(i, T0 + i) for i in range(10)]
    assert await state.ledger.write(rows) == 10
    # a retried flush, with one new row and a duplicate inside the batch itself
    assert await state.ledger.write([*rows[5:], row(10, T0 + 10), row(10, T0 + 10)]) == 1
    # another attempt of the same request is a row of its own
    assert await state.ledger.write([row(3, T0 + 3, attempt=1, status=502, error_code="upstream_error", cost_usd=None)]) == 1
    [total] = await state.ledger.usage(T0, T0 + DAY, "day")
    assert (total.group, total.requests, total.input_tokens, total.errors) == ("2026-01-01", 12, 1200, 1)
    assert abs(total.cost_usd - 0.011) < 1e-9


async def test_a_flush_of_any_size_writes_each_row_once(state: State) -> None:
    """77 rows go as statements of 32, 32, 8, 4 and 1 rows; a retry that overlaps them, with a
    row twice in itself, adds only its new rows to the table and to the daily rollup."""
    rows = [row(i, T0 + i) for i in range(77)]
    assert await state.ledger.write(rows) == 77
    retry = [*rows[40:], *(row(i, T0 + i) for i in range(77, 100)), row(99, T0 + 99)]
    assert await state.ledger.write(retry) == 23
    [total] = await state.ledger.usage(T0, T0 + DAY, "day")
    assert (total.requests, total.input_tokens, total.output_tokens) == (100, 10_000, 1_000)
    # the raw rows agree with the rollup (a range inside the day reads them)
    [raw] = await state.ledger.usage(T0, T0 + 3600, "day")
    assert raw.requests == 100


async def test_group_bys_and_filters(state: State) -> None:
    # three days of rows, each day with 8 calls; a range that starts and ends mid-day
    rows = [row(d * 100 + i, T0 + d * DAY + i * 3600) for d in range(3) for i in range(8)]
    await state.ledger.write(rows)
    since, until = T0 + 2 * 3600, T0 + 2 * DAY + 5 * 3600  # day 0 from hour 2, day 2 until hour 5
    days = await state.ledger.usage(since, until, "day")
    assert [(b.group, b.requests) for b in days] == [("2026-01-01", 6), ("2026-01-02", 8), ("2026-01-03", 5)]
    by_provider = {b.group: b.requests for b in await state.ledger.usage(since, until, "provider")}
    expect: dict[str, int] = {}
    in_range = [r for r in rows if since <= r.time < until]
    for r in in_range:
        expect[r.provider] = expect.get(r.provider, 0) + 1
    assert by_provider == expect
    by_team = {b.group: b.requests for b in await state.ledger.usage(since, until, "team")}
    assert by_team == {"t1": sum(1 for r in in_range if r.team), None: sum(1 for r in in_range if not r.team)}
    by_key = await state.ledger.usage(since, until, "key", {"provider": "openai"})
    assert sum(b.requests for b in by_key) == expect["openai"]
    assert {b.group for b in by_key} <= {"key_0", "key_1", "key_2"}
    models = await state.ledger.usage(since, until, "model", {"key_id": "key_1", "team": "t1"})
    assert sum(b.requests for b in models) == sum(1 for r in in_range if r.key_id == "key_1" and r.team == "t1")
    # inside one day only the raw rows are read
    assert [(b.group, b.requests) for b in await state.ledger.usage(T0 + DAY + 3600, T0 + DAY + 3 * 3600, "day")] == [
        ("2026-01-02", 2)
    ]
    assert await state.ledger.usage(T0 + 10 * DAY, T0 + 11 * DAY, "key") == []


async def test_a_million_rows_on_sqlite(tmp_path: Path) -> None:
    st = await open_state(str(tmp_path / "big.db"), None, None)
    try:
        n, batch = 1_000_000, 50_000
        span = 60 * DAY
        started = time.perf_counter()
        for b in range(0, n, batch):
            await st.ledger.write([
                UsageRow(
                    # 50 keys in 7 teams, 11 models of 5 providers
                    time=T0 + (i * span) / n, request_id=f"r{i}", endpoint="chat", key_id=f"key_{i % 50}",
                    team=f"team_{i % 50 % 7}", requested_model="fast", served_model=f"m{i % 11}", provider=f"p{i % 11 % 5}",
                    input_tokens=100, output_tokens=20, cost_usd=0.0001, status=200,
                )
                for i in range(b, b + batch)
            ])  # fmt: skip
        wrote = time.perf_counter() - started
        started = time.perf_counter()
        since, until = T0 + 15.5 * DAY, T0 + 45.5 * DAY  # 30 days, starting and ending mid-day
        by_key = await st.ledger.usage(since, until, "key")
        by_day = await st.ledger.usage(since, until, "day")
        asked = time.perf_counter() - started
        assert len(by_key) == 50 and len(by_day) == 31
        expected = sum(1 for i in range(n) if since <= T0 + (i * span) / n < until)
        assert sum(b.requests for b in by_key) == sum(b.requests for b in by_day) == expected
        print(f"\n1,000,000 usage rows written in {wrote:.1f} s; 30-day by key + by day answered in {asked * 1000:.0f} ms")
    finally:
        await st.close()
