from __future__ import annotations

import pytest

from unigate.routing.window import RollingCounts


def test_counts_sum_within_the_window_and_expire_bucket_by_bucket() -> None:
    w = RollingCounts(span=10.0, buckets=10)
    for t in range(10):
        w.add(100.0 + t, 1.0, 2.0)
    assert w.totals(109.5) == (10.0, 20.0)
    # one second later the oldest bucket (t=100) has left the window
    assert w.totals(110.0) == (9.0, 18.0)
    assert w.totals(115.0) == (4.0, 8.0)
    # idle for longer than the window: nothing left
    assert w.totals(500.0) == (0.0, 0.0)


def test_a_clock_that_steps_back_counts_in_the_newest_bucket() -> None:
    w = RollingCounts(span=10.0, buckets=5)
    w.add(50.0, 1.0)
    w.add(49.0, 1.0)
    assert w.totals(50.0) == (2.0, 0.0)


def test_clear_and_bad_arguments() -> None:
    w = RollingCounts(span=1.0, buckets=2)
    w.add(0.0, 3.0, 1.0)
    w.clear()
    assert w.totals(0.0) == (0.0, 0.0)
    with pytest.raises(ValueError):
        RollingCounts(span=0.0, buckets=1)
    with pytest.raises(ValueError):
        RollingCounts(span=1.0, buckets=0)
