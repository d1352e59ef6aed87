"""Budgets and credits, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tests.state.conftest import Backend
from unigate.state import Account, Refusal, Reservation, State, period_start

NOW = datetime(2026, 1, 14, 12, 0, tzinfo=UTC).timestamp()  # a Wednesday


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def test_period_boundaries() -> None:
    assert period_start("daily", NOW) == ts(2026, 1, 14)
    assert period_start("weekly", NOW) == ts(2026, 1, 12)  # Monday
    assert period_start("weekly", ts(2026, 1, 11, 23, 59)) == ts(2026, 1, 5)
    assert period_start("monthly", NOW) == ts(2026, 1, 1)
    assert period_start("monthly", ts(2026, 3, 1)) == ts(2026, 3, 1)
    assert period_start("total", NOW) == 0.0


async def test_budget_counts_in_flight_and_settled(state: State) -> None:
    sp = state.spend
    acct = Account("key:b", budget_usd=1.0, budget_period="daily")
    r1 = await sp.reserve([acct], 0.4, NOW)
    r2 = await sp.reserve([acct], 0.4, NOW)
    assert isinstance(r1, Reservation) and isinstance(r2, Reservation)
    refused = await sp.reserve([acct], 0.4, NOW)
    assert isinstance(refused, Refusal)
    assert (refused.code, refused.account_id, refused.limit_usd) == ("budget_exceeded", "key:b", 1.0)
    assert refused.available_usd == pytest.approx(0.2)
    assert await sp.in_flight("key:b", NOW) == pytest.approx(0.8)
    await sp.settle(r1, 0.1, NOW + 1)
    await sp.settle(r1, 0.1, NOW + 2)  # a retried settle charges once
    assert await sp.spent("key:b", "daily", NOW) == pytest.approx(0.1)
    assert isinstance(await sp.reserve([acct], 0.4, NOW + 3), Reservation)
    assert isinstance(await sp.reserve([acct], 0.11, NOW + 3), Refusal)


async def test_period_resets_at_the_boundary(state: State) -> None:
    sp = state.spend
    for period, before, after in [
        ("daily", ts(2026, 1, 14, 23, 59, 59), ts(2026, 1, 15)),
        ("weekly", ts(2026, 1, 18, 23, 59, 59), ts(2026, 1, 19)),
        ("monthly", ts(2026, 1, 31, 23, 59, 59), ts(2026, 2, 1)),
    ]:
        acct = Account(f"key:{period}", budget_usd=1.0, budget_period=period)  # type: ignore[arg-type]
        r = await sp.reserve([acct], 1.0, before)
        assert isinstance(r, Reservation)
        await sp.settle(r, 1.0, before + 0.5)
        assert isinstance(await sp.reserve([acct], 0.01, before + 0.5), Refusal)
        assert await sp.spent(acct.id, acct.budget_period, before) == 1.0
        assert await sp.spent(acct.id, acct.budget_period, after) == 0.0
        assert isinstance(await sp.reserve([acct], 1.0, after), Reservation), period
    total = Account("key:total", budget_usd=1.0, budget_period="total")
    r = await sp.reserve([total], 1.0, NOW)
    assert isinstance(r, Reservation)
    await sp.settle(r, 1.0, NOW)
    assert isinstance(await sp.reserve([total], 0.5, ts(2030, 1, 1)), Refusal)


async def test_expired_reservation_is_released(state: State) -> None:
    sp = state.spend
    acct = Account("key:e", budget_usd=1.0)
    crashed = await sp.reserve([acct], 1.0, NOW)
    assert isinstance(crashed, Reservation) and crashed.expires_at == NOW + 600
    assert isinstance(await sp.reserve([acct], 0.5, NOW + 599), Refusal)
    assert isinstance(await sp.reserve([acct], 0.5, NOW + 600), Reservation)
    await sp.prune(NOW + 1300)
    assert await sp.in_flight("key:e", NOW) == 0.0
    # a late settle of the expired reservation still charges the call, once
    await sp.settle(crashed, 0.25, NOW + 1300)
    await sp.settle(crashed, 0.25, NOW + 1301)
    assert await sp.spent("key:e", "monthly", NOW) == 0.25


async def test_credits_ledger_and_balance(state: State) -> None:
    sp = state.spend
    acct = Account("key:c", uses_credits=True)
    assert isinstance(await sp.reserve([acct], 0.01, NOW), Refusal)  # no credits yet
    assert await sp.add_credits("key:c", 1.0, actor="ops", note="welcome", now=NOW) == 1.0
    r = await sp.reserve([acct], 0.6, NOW)
    assert isinstance(r, Reservation)
    refused = await sp.reserve([acct], 0.5, NOW)
    assert isinstance(refused, Refusal) and refused.code == "insufficient_credits"
    assert refused.available_usd == pytest.approx(0.4)
    await sp.settle(r, 0.7, NOW + 1)  # the real cost may exceed the estimate
    assert await sp.balance("key:c") == pytest.approx(0.3)
    await sp.add_credits("key:c", -0.1, actor="ops", note="correction", now=NOW + 2)
    entries = await sp.credit_entries("key:c")
    assert [(e.kind, e.amount_usd) for e in entries] == [("adjustment", -0.1), ("charge", -0.7), ("topup", 1.0)]
    assert entries[1].reservation_id == r.id and entries[2].note == "welcome" and entries[2].actor == "ops"
    assert sum(e.amount_usd for e in entries) == pytest.approx(await sp.balance("key:c"))


async def test_key_and_team_are_checked_together(state: State) -> None:
    sp = state.spend
    key = Account("key:k", budget_usd=10.0)
    team = Account("team:t", budget_usd=1.0, uses_credits=True)
    await sp.add_credits("team:t", 5.0, actor="ops")
    refused = await sp.reserve([key, team], 2.0, NOW)
    assert isinstance(refused, Refusal) and refused.account_id == "team:t" and refused.code == "budget_exceeded"
    assert await sp.in_flight("key:k", NOW) == 0.0  # a refusal reserves nothing anywhere
    r = await sp.reserve([key, team], 0.5, NOW)
    assert isinstance(r, Reservation)
    await sp.settle(r, 0.5, NOW)
    assert await sp.spent("key:k", "monthly", NOW) == await sp.spent("team:t", "monthly", NOW) == 0.5
    assert await sp.balance("team:t") == 4.5


async def spend_all(handles: list[State], callers: int, account: Account, price: float, now: float) -> int:
    """Callers reserve and settle until the money is gone; the number of calls that got through."""
    done = 0

    async def caller(st: State) -> None:
        nonlocal done
        for _ in range(2000):  # bounded: far more than the money pays for
            r = await st.spend.reserve([account], price, now)
            if isinstance(r, Refusal):
                return
            done += 1
            await st.spend.settle(r, price, now)

    await asyncio.gather(*(caller(handles[i % len(handles)]) for i in range(callers)))
    return done


async def test_credits_pay_for_exactly_1000_calls(state: State, backend: Backend) -> None:
    other = await backend.open()
    try:
        await state.spend.add_credits("key:x", 1.0, actor="ops", now=NOW)
        calls = await spend_all([state, other], 50, Account("key:x", uses_credits=True), 0.001, NOW)
    finally:
        await other.close()
    assert calls == 1000
    assert await state.spend.balance("key:x") == 0.0
    assert len(await state.spend.credit_entries("key:x", limit=5000)) == 1001


async def test_budget_never_overspent_under_concurrency(state: State) -> None:
    acct = Account("key:race", budget_usd=2.0, budget_period="daily")
    calls = await spend_all([state], 50, acct, 0.01, NOW)
    assert calls == 200
    assert await state.spend.spent("key:race", "daily", NOW) == pytest.approx(2.0)
