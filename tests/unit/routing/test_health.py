from __future__ import annotations

from typing import Any

import pytest

from tests.unit.routing.clock import Clock
from unigate.routing.health import (
    BreakerConfig,
    Breakers,
    InProcessHealthStore,
    SnapshotHealthStore,
    State,
)
from unigate.routing.outcome import FailureKind

FAIL = FailureKind.SERVER_ERROR


def make(clock: Clock, **kw: Any) -> Breakers:
    return Breakers(BreakerConfig(**kw), now=clock)


def test_does_not_open_before_the_minimum_request_count() -> None:
    clock = Clock()
    br = make(clock)
    for _ in range(9):
        br.record_failure("a", FAIL)
    st = br.state("a")
    assert st.state is State.CLOSED  # 9 of 9 failed, but 9 < min_requests
    assert (st.requests, st.failures, st.error_rate) == (9, 9, 1.0)
    br.record_failure("a", FAIL)
    st = br.state("a")
    assert st.state is State.OPEN
    assert st.reopens_at == pytest.approx(clock.t + 10.0)
    assert st.streak == 1


def test_opens_exactly_at_the_threshold() -> None:
    clock = Clock()
    br = make(clock)
    for _ in range(6):
        br.record_success("a")
    for _ in range(5):
        br.record_failure("a", FAIL)
    assert br.state("a").state is State.CLOSED  # 5 / 11 < 0.5
    br.record_failure("a", FAIL)
    st = br.state("a")
    assert st.error_rate == 0.5
    assert st.state is State.OPEN  # 6 / 12 reaches 0.5


def test_failures_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    br = make(clock)
    for _ in range(9):
        br.record_failure("a", FAIL)
    clock.advance(31.0)
    br.record_failure("a", FAIL)
    st = br.state("a")
    assert st.state is State.CLOSED
    assert st.requests == 1


def test_caller_timeouts_do_not_count() -> None:
    clock = Clock()
    br = make(clock)
    for _ in range(50):
        br.record_failure("a", FailureKind.CALLER_TIMEOUT)
    st = br.state("a")
    assert st.state is State.CLOSED
    assert st.requests == 0 and st.failures == 0


def test_a_429_with_retry_after_opens_at_once_for_that_long() -> None:
    clock = Clock()
    br = make(clock)
    br.record_failure("a", FailureKind.RATE_LIMITED, retry_after=7.0)
    st = br.state("a")
    assert st.state is State.OPEN
    assert st.reopens_at == pytest.approx(clock.t + 7.0)
    assert st.streak == 0  # advice, not a broken deployment: later cooldowns do not grow
    assert br.select(["a", "b"]) == ["b"]
    clock.advance(6.9)
    assert br.state("a").state is State.OPEN
    clock.advance(0.2)
    assert br.state("a").state is State.HALF_OPEN


def test_a_retry_after_is_capped_and_a_429_without_one_only_counts() -> None:
    clock = Clock()
    br = make(clock)
    br.record_failure("a", FailureKind.RATE_LIMITED, retry_after=86400.0)
    assert br.state("a").reopens_at == pytest.approx(clock.t + 300.0)
    br.record_failure("b", FailureKind.RATE_LIMITED)
    st = br.state("b")
    assert st.state is State.CLOSED and st.failures == 1


def trip(br: Breakers, dep: str = "a") -> None:
    for _ in range(10):
        br.record_failure(dep, FAIL)


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = Clock()
    br = make(clock)
    trip(br)
    assert br.select(["a", "b"]) == ["b"]
    clock.advance(10.0)
    assert br.state("a").state is State.HALF_OPEN
    assert br.available("a")
    # the first request gets the probe; every other one still sees it unavailable
    assert br.select(["a", "b"]) == ["a", "b"]
    for _ in range(20):
        assert br.select(["a", "b"]) == ["b"]
    assert not br.available("a")


def test_the_probe_succeeding_closes_and_resets_the_window() -> None:
    clock = Clock()
    br = make(clock)
    trip(br)
    clock.advance(10.0)
    assert br.select(["a"]) == ["a"]
    br.record_success("a")
    st = br.state("a")
    assert st.state is State.CLOSED
    assert st.requests == 0 and st.failures == 0
    assert br.select(["a", "b"]) == ["a", "b"]
    # the old failures are gone: 9 new ones are not enough to open it again
    for _ in range(9):
        br.record_failure("a", FAIL)
    assert br.state("a").state is State.CLOSED


def test_the_probe_failing_reopens_with_a_longer_cooldown() -> None:
    clock = Clock()
    br = make(clock)
    trip(br)
    cooldowns = []
    for _ in range(7):
        st = br.state("a")
        assert st.state is State.OPEN
        assert st.reopens_at is not None
        cooldowns.append(round(st.reopens_at - clock.t, 6))
        clock.t = st.reopens_at
        assert br.select(["a", "b"])[0] == "a"  # the probe
        br.record_failure("a", FAIL)
    assert cooldowns == [10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]


def test_an_opening_soon_after_a_close_continues_the_streak_a_later_one_starts_over() -> None:
    clock = Clock()
    br = make(clock)
    trip(br)
    clock.advance(10.0)
    br.record_success("a")  # closed; streak 1 remembered
    trip(br)
    st = br.state("a")
    assert st.streak == 2 and st.reopens_at == pytest.approx(clock.t + 20.0)
    clock.advance(20.0)
    br.record_success("a")
    clock.advance(31.0)  # a whole window closed
    trip(br)
    st = br.state("a")
    assert st.streak == 1 and st.reopens_at == pytest.approx(clock.t + 10.0)


def test_an_unused_probe_is_released_and_a_lost_one_expires() -> None:
    clock = Clock()
    br = make(clock, probe_timeout=5.0)
    trip(br)
    clock.advance(10.0)
    assert br.select(["a", "b"]) == ["a", "b"]
    assert br.select(["a", "b"]) == ["b"]
    br.release("a")  # "b" answered first; the probe was never sent
    assert br.select(["a", "b"]) == ["a", "b"]
    assert br.select(["a", "b"]) == ["b"]
    clock.advance(5.0)  # its outcome never came
    assert br.select(["a", "b"]) == ["a", "b"]


def test_a_caller_timeout_on_the_probe_lets_another_probe_go() -> None:
    clock = Clock()
    br = make(clock)
    trip(br)
    clock.advance(10.0)
    assert br.select(["a", "b"]) == ["a", "b"]
    br.record_failure("a", FailureKind.CALLER_TIMEOUT)
    assert br.state("a").state is State.HALF_OPEN
    assert br.select(["a", "b"]) == ["a", "b"]


def test_select_is_never_empty_and_orders_an_all_open_group_by_soonest_reopen() -> None:
    clock = Clock()
    br = make(clock)
    trip(br, "a")  # reopens at +10
    clock.advance(1.0)
    br.record_failure("b", FailureKind.RATE_LIMITED, retry_after=3.0)  # reopens at +4
    br.record_failure("c", FailureKind.RATE_LIMITED, retry_after=60.0)  # reopens at +61
    assert br.select(["a", "b", "c"]) == ["b", "a", "c"]
    assert br.select(["c"]) == ["c"]
    assert br.select([]) == []
    # a half-open one whose probe is out counts as reopened
    clock.advance(9.5)  # a: half-open
    assert br.select(["c", "a"]) == ["a"]  # the probe
    assert br.select(["c", "a"]) == ["a", "c"]


def test_select_items_keeps_the_callers_objects() -> None:
    clock = Clock()
    br = make(clock)
    trip(br, "x")
    items = [("x", 1), ("y", 2)]
    assert br.select_items(items, lambda it: it[0]) == [("y", 2)]


def test_an_opening_is_honoured_by_another_process_through_the_store() -> None:
    clock = Clock()
    store = InProcessHealthStore(now=clock)
    one = Breakers(now=clock, store=store)
    two = Breakers(now=clock, store=store)
    trip(one)
    assert two.select(["a", "b"]) == ["b"]
    st = two.state("a")
    assert st.state is State.OPEN and st.opened_elsewhere
    assert st.reopens_at == pytest.approx(clock.t + 10.0)
    clock.advance(10.0)
    assert one.select(["a"]) == ["a"]  # one's probe
    one.record_success("a")
    assert two.select(["a", "b"]) == ["a", "b"]


def test_the_snapshot_store_sends_remaining_durations_and_reads_them_back() -> None:
    clock = Clock(5000.0)
    store = SnapshotHealthStore(now=clock)
    br = Breakers(now=clock, store=store)
    trip(br)
    assert store.take_outbox() == {"a": pytest.approx(10.0)}
    assert store.take_outbox() == {}
    # another process's opening of "z", 4 s left, as the background refresh loads it
    store.apply_snapshot({"z": 4.0, "gone": 0.0})
    assert br.select(["z", "y"]) == ["y"]
    assert br.state("z").reopens_at == pytest.approx(5004.0)
    assert store.opened_until("gone") == 0.0
    clock.advance(4.0)
    assert br.select(["z", "y"]) == ["z", "y"]
    clock.advance(6.0)
    assert br.select(["a"]) == ["a"]
    br.record_success("a")
    assert store.take_outbox() == {"a": None}


def test_idle_closed_breakers_are_forgotten_past_the_limit() -> None:
    clock = Clock()
    br = make(clock, max_tracked=3)
    trip(br, "open")
    br.record_success("b")
    br.record_success("c")
    clock.advance(60.0)
    br.record_success("d")
    assert br.state("open").state is State.HALF_OPEN  # a tripped one is kept
    assert br.state("b").requests == 0
    assert set(br._by_id) == {"open", "d"}


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        BreakerConfig(threshold=0.0)
    with pytest.raises(ValueError):
        BreakerConfig(cooldown=10.0, max_cooldown=5.0)
