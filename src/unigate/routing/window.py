"""A rolling window of two counters in fixed time buckets (requests and errors, requests and
tokens, requests and retries): what the breaker, the usage figures and the retry budget count.

Why buckets: memory is bounded (a ring of `buckets` slots per counter, whatever the traffic) and
both adding and reading are O(1) amortised, because running totals are kept and a bucket's counts
are subtracted from them when the window slides past it. The price is resolution: the window
forgets in steps of `span / buckets` (3 s for the breaker's 30 s in 10 buckets), which is finer
than any decision taken on these numbers needs.

No clock is read here: every call is given `now` (monotonic seconds) by its owner, which holds
the injectable clock, so tests drive time by hand.
"""

from __future__ import annotations

import math


class RollingCounts:
    """Two counters, `a` and `b`, summed over the last `span` seconds."""

    __slots__ = ("_a", "_b", "_head", "_n", "_slot", "_until", "_width", "a", "b")

    def __init__(self, span: float, buckets: int) -> None:
        if span <= 0 or buckets < 1:
            raise ValueError("a window needs a positive span and at least one bucket")
        self._n = buckets
        self._width = span / buckets
        self._a = [0.0] * buckets
        self._b = [0.0] * buckets
        #: the index (in bucket widths since the clock's zero) of the newest bucket
        self._head = -math.inf
        #: the newest bucket's end and slot: an add before the end needs no sliding (the hot path)
        self._until = -math.inf  # the first add advances
        self._slot = 0
        #: running totals over the live buckets
        self.a = 0.0
        self.b = 0.0

    def add(self, now: float, a: float = 0.0, b: float = 0.0) -> None:
        # `now < _until` alone: a clock that stepped back lands in the newest bucket either way
        slot = self._slot if now < self._until else self._advance(now)
        self._a[slot] += a
        self._b[slot] += b
        self.a += a
        self.b += b

    def add_a(self, now: float, a: float = 1.0) -> None:
        """`add(now, a, 0.0)` without touching `b` (a breaker's success: once per request)."""
        slot = self._slot if now < self._until else self._advance(now)
        self._a[slot] += a
        self.a += a

    def totals(self, now: float) -> tuple[float, float]:
        self._advance(now)
        return self.a, self.b

    def clear(self) -> None:
        for i in range(self._n):
            self._a[i] = self._b[i] = 0.0
        self.a = self.b = 0.0

    def _advance(self, now: float) -> int:
        idx = math.floor(now / self._width)
        head = self._head
        if idx > head:
            n = self._n
            if idx - head >= n:
                # idle for a whole window (or never used): everything has expired
                self.clear()
            else:
                for i in range(int(head) + 1, idx + 1):
                    slot = i % n
                    self.a -= self._a[slot]
                    self.b -= self._b[slot]
                    self._a[slot] = self._b[slot] = 0.0
                # float subtraction can leave -1e-16 behind; a count is never negative
                self.a = max(self.a, 0.0)
                self.b = max(self.b, 0.0)
            self._head = idx
            self._until = idx * self._width + self._width
            self._slot = idx % self._n
        # a clock that steps back (it should not: monotonic) lands in the newest bucket
        return int(self._head) % self._n
