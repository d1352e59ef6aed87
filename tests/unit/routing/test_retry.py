from __future__ import annotations

import random

import pytest

from tests.unit.routing.clock import Clock
from unigate.routing.outcome import FailureKind
from unigate.routing.retry import (
    RetryBudget,
    RetryPolicy,
    Step,
    fallbackable,
    next_step,
    retryable_on_same,
)


def test_backoff_stays_within_its_bounds_and_jitters_over_the_whole_range() -> None:
    policy = RetryPolicy(base=0.5, cap=8.0)
    rng = random.Random(17)
    for retry, bound in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0), (100, 8.0), (5000, 8.0)]:
        waits = [policy.backoff(retry, rng) for _ in range(2000)]
        assert all(0.0 <= w <= bound for w in waits), retry
        # full jitter: spread from near 0 to near the bound, with a mean near half of it
        assert min(waits) < 0.02 * bound
        assert max(waits) > 0.98 * bound
        assert sum(waits) / len(waits) == pytest.approx(bound / 2, rel=0.05)


def test_retry_after_replaces_the_backoff_up_to_the_max_wait() -> None:
    policy = RetryPolicy(max_wait=20.0)
    rng = random.Random(0)
    assert policy.delay(1, rng, retry_after=3.0) == 3.0
    assert policy.delay(1, rng, retry_after=0.25) == 0.25  # retry-after-ms, as seconds
    assert policy.delay(2, rng, retry_after=20.0) == 20.0
    assert policy.delay(1, rng, retry_after=20.5) is None  # longer than we wait: fall back instead


def test_no_retry_that_would_outlast_the_callers_deadline() -> None:
    policy = RetryPolicy(base=0.5, cap=8.0)
    rng = random.Random(0)
    assert policy.delay(1, rng, retry_after=3.0, remaining=2.0) is None
    assert policy.delay(1, rng, retry_after=3.0, remaining=3.5) == 3.0
    # the backoff too: retry 1 waits under 0.5 s, which no longer fits in 0.0 s
    assert policy.delay(1, rng, remaining=0.0) is None
    wait = policy.delay(1, rng, remaining=10.0)
    assert wait is not None and 0.0 <= wait <= 0.5


def test_retries_per_deployment_are_capped() -> None:
    policy = RetryPolicy(max_retries=2)
    rng = random.Random(0)
    assert policy.delay(1, rng) is not None
    assert policy.delay(2, rng) is not None
    assert policy.delay(3, rng) is None
    assert policy.delay(0, rng) is None


def test_the_budget_caps_retries_at_the_share_during_an_outage() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.2, min_per_second=1.0, window=10.0, now=clock)
    granted_at: list[float] = []
    requests = 0
    # 60 s at 100 requests per second, every one of them failing and asking for a retry
    for _ in range(6000):
        budget.record_request()
        requests += 1
        if budget.try_acquire():
            granted_at.append(clock.t)
        clock.advance(0.01)
    granted = len(granted_at)
    # 20 % of the requests plus 1 per second, and not much less (the budget is used, not hoarded)
    assert granted <= 0.2 * requests + 1.0 * 60 + 10
    assert granted >= 0.2 * requests
    # and in every 10 s window: at most 20 % of that window's requests + 10
    for start in range(0, 51, 5):
        t0 = 1000.0 + start
        in_window = sum(t0 <= t < t0 + 10 for t in granted_at)
        assert in_window <= 0.2 * 1000 + 10 + 20  # + one bucket's slack at the window's edge


def test_a_quiet_gateway_can_still_retry() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.2, min_per_second=1.0, window=10.0, now=clock)
    budget.record_request()
    assert budget.try_acquire()  # 0.2 earned, but the floor of 10 per window allows it
    for _ in range(9):
        assert budget.try_acquire()
    assert not budget.try_acquire()
    assert budget.remaining() == pytest.approx(0.2)
    clock.advance(11.0)
    assert budget.try_acquire()


def test_which_failures_may_be_retried_on_the_same_deployment() -> None:
    same = {k for k in FailureKind if retryable_on_same(k)}
    assert same == {FailureKind.SERVER_ERROR, FailureKind.CONNECTION, FailureKind.RATE_LIMITED}
    assert not retryable_on_same(None)
    assert {k for k in FailureKind if not fallbackable(k)} == {FailureKind.CALLER_TIMEOUT}
    assert not fallbackable(None)


def test_next_step_falls_back_first_and_retries_only_the_last_deployment() -> None:
    policy, rng = RetryPolicy(), random.Random(3)
    clock = Clock()
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, window=10.0, now=clock)  # one retry in all
    kw = {"policy": policy, "rng": rng}
    assert next_step(FailureKind.SERVER_ERROR, 1, has_next=True, budget=budget, **kw).step is Step.NEXT
    assert next_step(FailureKind.TIMEOUT, 1, has_next=True, budget=budget, **kw).step is Step.NEXT
    assert next_step(FailureKind.TIMEOUT, 1, has_next=False, budget=budget, **kw).step is Step.GIVE_UP
    assert next_step(FailureKind.CALLER_TIMEOUT, 1, has_next=True, budget=budget, **kw).step is Step.GIVE_UP
    assert next_step(None, 1, has_next=True, budget=budget, **kw).step is Step.GIVE_UP
    d = next_step(FailureKind.RATE_LIMITED, 1, has_next=False, budget=budget, retry_after=2.0, **kw)
    assert d.step is Step.RETRY and d.wait == 2.0
    # the budget is spent now
    assert next_step(FailureKind.SERVER_ERROR, 1, has_next=False, budget=budget, **kw).step is Step.GIVE_UP
    d = next_step(FailureKind.CONNECTION, 2, has_next=False, budget=None, **kw)
    assert d.step is Step.RETRY and 0.0 <= d.wait <= 1.0
    assert next_step(FailureKind.CONNECTION, 3, has_next=False, budget=None, **kw).step is Step.GIVE_UP
    assert next_step(FailureKind.RATE_LIMITED, 1, has_next=False, budget=None, retry_after=60.0,
                     **kw).step is Step.GIVE_UP


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(base=0.0)
    with pytest.raises(ValueError):
        RetryBudget(ratio=1.5)
