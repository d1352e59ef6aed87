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


async def test_roll_charges_keeps_and_extends(state: State) -> None:
    sp = state.spend
    acct = Account("key:roll", budget_usd=1.0, budget_period="daily")
    first = await sp.roll([acct], None, 0.0, 0.0, 0.01, 4, NOW)
    assert first.refusal is None and first.amount_usd == pytest.approx(0.25)  # a quarter of what is free
    assert await sp.in_flight("key:roll", NOW) == pytest.approx(0.25)
    # 0.2 spent, 0.05 still in flight: charged and kept, plus a quarter of the 0.75 left after both
    second = await sp.roll([acct], first.reservation, 0.2, 0.05, 0.01, 4, NOW + 1)
    assert await sp.spent("key:roll", "daily", NOW) == pytest.approx(0.2)
    assert second.amount_usd == pytest.approx(0.05 + 0.75 / 4)
    assert await sp.in_flight("key:roll", NOW + 1) == pytest.approx(second.amount_usd)
    # rolling the same reservation again charges nothing twice
    assert second.reservation is not None
    again = await sp.roll([acct], first.reservation, 0.2, 0.0, 0.0, 4, NOW + 2)
    assert await sp.spent("key:roll", "daily", NOW) == pytest.approx(0.2)
    # another holder cannot take what the others hold
    other = await sp.roll([acct], None, 0.0, 0.0, 0.01, 1, NOW + 3)
    held = second.amount_usd + again.amount_usd
    assert other.amount_usd == pytest.approx(0.8 - held)
    refused = await sp.roll([acct], None, 0.0, 0.0, 0.01, 1, NOW + 3)
    assert refused.reservation is None and refused.refusal is not None
    assert refused.refusal.code == "budget_exceeded" and refused.refusal.available_usd == pytest.approx(0.0)
    # a release (divisor 0, nothing kept) deletes the holder's reservation
    released = await sp.roll([acct], other.reservation, 0.1, 0.0, 0.0, 0, NOW + 4)
    assert released.reservation is None
    assert await sp.spent("key:roll", "daily", NOW) == pytest.approx(0.3)
    assert await sp.in_flight("key:roll", NOW + 4) == pytest.approx(held)


async def test_roll_with_credits_writes_one_charge_entry(state: State) -> None:
    sp = state.spend
    await sp.add_credits("key:cr", 0.5, actor="ops", now=NOW)
    acct = Account("key:cr", uses_credits=True)
    r = await sp.roll([acct], None, 0.0, 0.0, 0.6, 2, NOW)
    assert r.reservation is None and r.refusal is not None and r.refusal.code == "insufficient_credits"
    r = await sp.roll([acct], None, 0.0, 0.0, 0.1, 2, NOW)
    assert r.amount_usd == pytest.approx(0.25)
    r2 = await sp.roll([acct], r.reservation, 0.123, 0.0, 0.0, 0, NOW + 1)
    assert r2.reservation is None
    assert await sp.balance("key:cr") == pytest.approx(0.377)
    entries = await sp.credit_entries("key:cr")
    assert [(e.kind, round(e.amount_usd, 9)) for e in entries] == [("charge", -0.123), ("topup", 0.5)]


async def test_rolls_across_holders_never_overspend(state: State, backend: Backend) -> None:
    """Four holders (workers) each admitting $0.01 calls against a $1 budget by rolling."""
    handles = [state, await backend.open()]
    acct = Account("key:share", budget_usd=1.0, budget_period="total")
    served = 0

    async def holder(i: int) -> None:
        nonlocal served
        sp = handles[i % 2].spend
        res, held, spent = None, 0.0, 0.0
        while True:
            if spent + 0.01 > held + 1e-12:
                r = await sp.roll([acct], res, spent, 0.0, 0.01, 16, NOW)
                res, held, spent = r.reservation, r.amount_usd, 0.0
                if r.refusal is not None:
                    return
            spent += 0.01
            served += 1

    try:
        await asyncio.gather(*(holder(i) for i in range(4)))
    finally:
        await handles[1].close()
    assert served == 100
    assert await state.spend.spent("key:share", "total", NOW) == pytest.approx(1.0)
