"""Rate limits, on SQLite, PostgreSQL and Redis: the same rules everywhere."""

from __future__ import annotations

import asyncio

from tests.state.conftest import Backend
from unigate.state import Scope, State

NOW = 1_767_225_600.0  # a minute boundary


async def test_rpm_is_exact_under_concurrency(limits_state: State, limits_backend: Backend) -> None:
    # three handles on the same state: three connections or clients racing each other
    others = [await limits_backend.open() for _ in range(2)]
    try:
        handles = [limits_state, *others]
        scope = [Scope("key:a", rpm=100)]
        results = await asyncio.gather(*(handles[i % 3].limits.acquire(scope, NOW + 1) for i in range(300)))
    finally:
        for o in others:
            await o.close()
    allowed = [d for d in results if d.allowed]
    assert len(allowed) == 100
    refused = [d for d in results if not d.allowed]
    assert {(d.refused_scope, d.refused_limit) for d in refused} == {("key:a", "rpm")}
    assert refused[0].retry_after == 59.0
    assert sorted(d.figures[0].remaining_requests or 0 for d in allowed) == list(range(100))
    # the next window starts afresh
    assert (await limits_state.limits.acquire(scope, NOW + 60)).allowed


async def test_figures_for_headers(limits_state: State) -> None:
    d = await limits_state.limits.acquire([Scope("key:f", rpm=10, tpm=1000, estimated_tokens=300)], NOW + 15)
    f = d.figures[0]
    assert d.allowed and d.lease is None
    assert (f.limit_requests, f.remaining_requests, f.limit_tokens, f.remaining_tokens) == (10, 9, 1000, 700)
    assert f.reset_seconds == 45.0
    free = await limits_state.limits.acquire([Scope("key:g")], NOW)
    assert free.allowed and free.figures[0].remaining_requests is None


async def test_tpm_and_adjust_tokens(limits_state: State) -> None:
    lim = limits_state.limits
    scope = Scope("key:t", tpm=1000, estimated_tokens=400)
    assert (await lim.acquire([scope], NOW)).allowed
    assert (await lim.acquire([scope], NOW)).allowed
    refused = await lim.acquire([scope], NOW)
    assert not refused.allowed and refused.refused_limit == "tpm" and refused.figures[0].remaining_tokens == 200
    # the calls used less than estimated: 2 x 300 fewer
    await lim.adjust_tokens(["key:t"], -600, NOW + 1)
    d = await lim.acquire([scope], NOW + 2)
    assert d.allowed and d.figures[0].remaining_tokens == 1000 - 200 - 400
    await lim.adjust_tokens(["key:t"], 10_000, NOW + 3)
    assert not (await lim.acquire([Scope("key:t", tpm=1000, estimated_tokens=1)], NOW + 3)).allowed
    assert (await lim.acquire([scope], NOW + 60)).allowed


async def test_max_parallel_with_release(limits_state: State) -> None:
    lim = limits_state.limits
    scope = [Scope("key:p", max_parallel=2)]
    a, b, c = [await lim.acquire(scope, NOW) for _ in range(3)]
    assert a.allowed and b.allowed and not c.allowed
    assert c.refused_limit == "max_parallel" and c.retry_after > 0
    assert a.lease is not None
    await lim.release(a.lease)
    d = await lim.acquire(scope, NOW + 1)
    assert d.allowed
    # slots of a process that died free themselves once the lease expires
    assert not (await lim.acquire(scope, NOW + 2)).allowed
    assert (await lim.acquire(scope, NOW + 601)).allowed


async def test_all_or_nothing_across_key_and_team(limits_state: State) -> None:
    lim = limits_state.limits
    team = Scope("team:t1", rpm=3)
    # two other keys of the team use two of its three requests
    for other in ("key:x", "key:y"):
        assert (await lim.acquire([Scope(other, rpm=10), team], NOW)).allowed
    key = Scope("key:z", rpm=1)
    assert (await lim.acquire([key, team], NOW)).allowed
    # the team is full now: the key's second call is refused by the team and counts against neither
    d = await lim.acquire([Scope("key:w", rpm=5), team], NOW)
    assert not d.allowed and d.refused_scope == "team:t1" and d.refused_limit == "rpm"
    assert d.figures[0].remaining_requests == 5
    # a refusal by the key leaves the team untouched: next minute, the key is full, the team not
    assert (await lim.acquire([key, Scope("team:t2", rpm=1)], NOW + 60)).allowed
    refused = await lim.acquire([key, Scope("team:t2", rpm=1, max_parallel=1)], NOW + 61)
    assert not refused.allowed and refused.refused_scope == "key:z"
    assert not (await lim.acquire([Scope("team:t2", rpm=1)], NOW + 62)).allowed  # t2 used by the first call only
    t3 = Scope("team:t3", rpm=1, max_parallel=1)
    assert not (await lim.acquire([key, t3], NOW + 63)).allowed
    # t3 was neither counted nor given a slot by the refused call
    assert (await lim.acquire([Scope("key:q"), t3], NOW + 64)).allowed


async def test_take_grants_blocks_that_never_sum_beyond_the_limit(limits_state: State, limits_backend: Backend) -> None:
    other = await limits_backend.open()
    try:
        scope = Scope("key:blk", rpm=100)
        grants = await asyncio.gather(*((limits_state, other)[i % 2].limits.take(scope, 7, 0, NOW + 2) for i in range(30)))
    finally:
        await other.close()
    got = [g.requests for g in grants]
    assert sum(got) == 100  # 14 blocks of 7, one of the 2 left, the rest refused
    assert sorted(got, reverse=True)[:16] == [7] * 14 + [2, 0]
    refused = [g for g in grants if not g.requests]
    assert {g.refused_limit for g in refused} == {"rpm"} and refused[0].retry_after == 58.0
    assert refused[0].figures.remaining_requests == 0
    # a take counts like calls do: acquire sees the window as spent, and the next one is fresh
    assert not (await limits_state.limits.acquire([scope], NOW + 3)).allowed
    fresh = await limits_state.limits.take(scope, 7, 0, NOW + 60)
    assert fresh.requests == 7 and fresh.window_start == NOW + 60 and fresh.figures.remaining_requests == 93


async def test_take_of_tokens_needs_the_estimate(limits_state: State) -> None:
    lim = limits_state.limits
    g = await lim.take(Scope("key:tok", tpm=1000, estimated_tokens=300), 1 << 40, 800, NOW)
    assert (g.requests, g.tokens, g.figures.remaining_tokens) == (1 << 40, 800, 200)
    short = await lim.take(Scope("key:tok", tpm=1000, estimated_tokens=300), 1, 800, NOW)
    assert short.requests == 0 and short.refused_limit == "tpm" and short.figures.remaining_tokens == 200
    # less than asked, but as much as the call needs: granted
    part = await lim.take(Scope("key:tok", tpm=1000, estimated_tokens=150), 1, 800, NOW)
    assert (part.requests, part.tokens) == (1, 200)
    # usage pushed later (adjust) counts against the next take
    await lim.adjust_tokens(["key:tok"], 500, NOW + 60)
    assert (await lim.take(Scope("key:tok", tpm=1000, estimated_tokens=1), 1, 800, NOW + 61)).tokens == 500
