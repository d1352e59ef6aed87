"""The per-worker halves of enforcement (governance/quota.py, purse.py) against the real stores:
several "workers" (each its own Quotas or Purses) on separate handles of one state, racing."""

from __future__ import annotations

import asyncio

import pytest

from tests.state.conftest import Backend
from unigate.errors import PaymentRequired, RateLimited
from unigate.governance.purse import Purses
from unigate.governance.quota import Quotas
from unigate.state import Account, Scope, State

NOW = 1_767_225_600.0  # a minute boundary (and a day's)


async def test_rpm_blocks_across_four_workers_admit_exactly_the_limit(limits_state: State,
                                                                       limits_backend: Backend) -> None:
    other = await limits_backend.open()
    try:
        workers = [Quotas((limits_state, other)[i % 2].limits, shares=4) for i in range(4)]
        scopes = (Scope("key:q", rpm=100),)
        admitted = refused = 0

        async def call(i: int) -> None:
            nonlocal admitted, refused
            try:
                await workers[i % 4].admit(scopes, 0, NOW + 1 + i / 1000)
                admitted += 1
            except RateLimited as e:
                assert e.retry_after is not None and 58 <= e.retry_after <= 59
                refused += 1

        await asyncio.gather(*(call(i) for i in range(300)))
        assert (admitted, refused) == (100, 200)
        # a refusal is answered from memory, and the next window admits again
        with pytest.raises(RateLimited):
            await workers[0].admit(scopes, 0, NOW + 30)
        await workers[0].admit(scopes, 0, NOW + 60)
    finally:
        await other.close()


async def test_key_and_team_all_or_nothing(limits_state: State) -> None:
    q = Quotas(limits_state.limits, shares=1)
    key, team = Scope("key:k1", rpm=10), Scope("team:t1", rpm=3)
    for _ in range(3):
        await q.admit((key, team), 0, NOW)
    with pytest.raises(RateLimited, match="team t1"):
        await q.admit((key, team), 0, NOW)
    # the refused call did not count against the key: another key of no team has all 10
    fig = q.figures((key,), NOW)
    assert fig is not None and fig.remaining_requests == 7


async def test_tpm_estimates_are_settled_to_the_usage(limits_state: State) -> None:
    q = Quotas(limits_state.limits, shares=1)
    scopes = (Scope("key:tp", tpm=1000),)
    taken = [await q.admit(scopes, 300, NOW) for _ in range(3)]
    with pytest.raises(RateLimited, match="1000 tokens per minute"):
        await q.admit(scopes, 300, NOW)
    q.settle(scopes, taken[0], 100)  # used 200 fewer: back in the block
    await q.admit(scopes, 300, NOW + 1.5)  # (after the remembered refusal's second)
    q.settle(scopes, taken[1], 900)  # used 600 more: owed to the store
    await q.flush(NOW + 2)
    fresh = Quotas(limits_state.limits, shares=1)  # another worker sees what this one used
    with pytest.raises(RateLimited):
        await fresh.admit(scopes, 1, NOW + 3)
    await fresh.admit(scopes, 999, NOW + 60)


async def test_budget_across_four_workers_is_never_overspent(state: State, backend: Backend) -> None:
    other = await backend.open()
    acct = (Account("key:b4", budget_usd=1.0, budget_period="daily"),)
    workers = [Purses((state, other)[i % 2].spend, shares=4) for i in range(4)]
    served = 0
    try:
        async def caller(i: int) -> None:
            nonlocal served
            w = workers[i % 4]
            while True:
                try:
                    p = await w.admit(acct, 0.02, NOW + 1)  # worst case $0.02, costs $0.01
                except RateLimited as e:
                    assert e.code == "budget_exceeded"
                    return
                await asyncio.sleep(0)
                w.settle(p, 0.02, 0.01)
                served += 1

        await asyncio.gather(*(caller(i) for i in range(40)))
        for w in workers:
            await w.close(NOW + 2)
    finally:
        await other.close()
    spent = await state.spend.spent("key:b4", "daily", NOW)
    assert spent == pytest.approx(served * 0.01) and spent <= 1.0 + 1e-9
    assert served >= 95  # the blocks shrink near the end: little is stranded
    assert await state.spend.in_flight("key:b4", NOW + 2) == 0.0


async def test_credits_for_1000_calls_serve_at_most_1000_and_the_balance_adds_up(state: State, backend: Backend) -> None:
    other = await backend.open()
    await state.spend.add_credits("key:c50", 1.0, actor="ops", now=NOW)
    acct = (Account("key:c50", uses_credits=True),)
    workers = [Purses((state, other)[i % 2].spend, shares=2) for i in range(2)]
    served = 0
    try:
        async def caller(i: int) -> None:
            nonlocal served
            w = workers[i % 2]
            while True:
                try:
                    p = await w.admit(acct, 0.001, NOW + 1)
                except PaymentRequired as e:
                    assert e.code == "insufficient_credits" and e.http_status == 402
                    return
                await asyncio.sleep(0)
                w.settle(p, 0.001, 0.001)
                served += 1

        await asyncio.gather(*(caller(i) for i in range(50)))
        for w in workers:
            await w.close(NOW + 2)
    finally:
        await other.close()
    assert 990 <= served <= 1000
    assert await state.spend.balance("key:c50") == pytest.approx(1.0 - served * 0.001, abs=1e-9)


async def test_a_purse_rolls_at_the_budget_period_boundary(state: State) -> None:
    acct = (Account("key:day", budget_usd=0.1, budget_period="daily"),)
    w = Purses(state.spend, shares=1)
    day_end = NOW + 86400
    for _ in range(10):
        w.settle(await w.admit(acct, 0.01, day_end - 5), 0.01, 0.01)
    with pytest.raises(RateLimited):
        await w.admit(acct, 0.01, day_end - 4)
    # the next day starts with the whole budget, and yesterday's spend stayed in yesterday
    w.settle(await w.admit(acct, 0.01, day_end + 1), 0.01, 0.01)
    await w.close(day_end + 2)
    assert await state.spend.spent("key:day", "daily", day_end - 5) == pytest.approx(0.1)
    assert await state.spend.spent("key:day", "daily", day_end + 1) == pytest.approx(0.01)


async def test_a_spent_budget_refuses_even_a_call_priced_at_zero(state: State) -> None:
    acct = (Account("key:zero", budget_usd=0.01, budget_period="total"),)
    w = Purses(state.spend, shares=1)
    w.settle(await w.admit(acct, 0.0, NOW), 0.0, 0.0)  # a $0 call with budget left: served
    w.settle(await w.admit(acct, 0.01, NOW), 0.01, 0.01)
    await w.flush(NOW + 1)
    with pytest.raises(RateLimited, match="budget"):
        await w.admit(acct, 0.0, NOW + 2)
