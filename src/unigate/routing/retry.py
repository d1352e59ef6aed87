"""When to try the same deployment again, after how long, and how many retries the gateway
allows itself in all.

Design notes (the defaults and why)
-----------------------------------
* **Same deployment or the next one.** A fallback costs no wait, so with another deployment
  left the loop moves on (`next_step`), and retries the same deployment only when it is the
  last one. Which failures may be retried on the same deployment at all (`retryable_on_same`):
  5xx, connection failures and 429s, which are often transient; not a timeout (the attempt has
  already used the deployment's whole allowance, and the caller's deadline with it), not a
  refused key or model (it will be refused again), not the caller's own timeout or a request
  the upstream rejected as malformed.
* **Backoff** is exponential with full jitter: retry n waits uniform(0, min(cap, base * 2^(n-1))),
  base **0.5 s**, cap **8 s**. Full jitter spreads the retries of many clients that failed at
  the same moment, instead of sending them back together; **2 retries** per deployment at
  most, after which the upstream is not having a blip.
* **Retry-After** (`retry-after-ms` or `Retry-After`, already parsed into the error's
  `retry_after` by the adapters) replaces the backoff: the upstream knows when it will answer.
  A wait longer than `max_wait` (**20 s**) is not a retry the gateway makes: it falls back or
  fails with the upstream's advice passed on, rather than waiting less than asked (a retry
  certain to be refused again) or holding the client's connection for minutes.
* **The deadline.** A wait that would not end before the caller's remaining deadline means no
  retry: the attempt after it could not finish in time.
* **The retry budget** caps retries at **20 %** of the requests of the last **10 s**, plus **1 per
  second** so a quiet gateway can still retry. Without it, an outage multiplies the load on
  the failing upstream by the number of attempts (1 + 2 retries = 3x) exactly when it can
  least take it; with it, at most 1.2x. It is a token bucket whose deposits (0.2 per request)
  expire with the window, kept as counts in a rolling window (window.py). Share one budget per
  deployment, so one upstream's outage does not use up the retries of the others.

Randomness is an injected `random.Random`, time an injected monotonic clock.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from unigate.routing.outcome import FailureKind
from unigate.routing.window import RollingCounts

_SAME = frozenset({FailureKind.SERVER_ERROR, FailureKind.CONNECTION, FailureKind.RATE_LIMITED})


def retryable_on_same(kind: FailureKind | None) -> bool:
    """Whether this failure may be retried on the deployment that failed."""
    return kind in _SAME


def fallbackable(kind: FailureKind | None) -> bool:
    """Whether another deployment may be tried after this failure (the caller's own timeout
    has spent the deadline; a request the upstream refused as malformed will be refused
    elsewhere too)."""
    return kind is not None and kind is not FailureKind.CALLER_TIMEOUT


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base: float = 0.5
    cap: float = 8.0
    max_wait: float = 20.0
    max_retries: int = 2

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.max_wait < 0 or self.max_retries < 0:
            raise ValueError("a retry policy needs 0 < base <= cap, max_wait >= 0 and max_retries >= 0")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Full jitter: uniform(0, min(cap, base * 2^(retry-1))) for retry 1, 2, ..."""
        # the exponent is bounded: 2 ** 60 is past any cap, and 2.0 ** 2000 would overflow
        return rng.uniform(0.0, min(self.cap, self.base * 2.0 ** min(max(retry - 1, 0), 60)))

    def delay(self, retry: int, rng: random.Random, *, retry_after: float | None = None,
              remaining: float | None = None) -> float | None:
        """Seconds to wait before retry number `retry` (1 for the first) on the same deployment,
        or None: do not retry it. `retry_after` is the upstream's ask (seconds), `remaining`
        what is left of the caller's deadline (None: no deadline)."""
        if retry < 1 or retry > self.max_retries:
            return None
        if retry_after is not None:
            if retry_after > self.max_wait:
                return None
            wait = max(retry_after, 0.0)
        else:
            wait = self.backoff(retry, rng)
        if remaining is not None and wait >= remaining:
            return None
        return wait


class RetryBudget:
    """Retries allowed: at most `ratio` of the requests of the last `window` seconds, plus
    `min_per_second` (so over the window, `min_per_second * window` more)."""

    def __init__(self, ratio: float = 0.2, min_per_second: float = 1.0, window: float = 10.0, *,
                 buckets: int = 10, now: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= ratio <= 1 or min_per_second < 0:
            raise ValueError("a retry budget's ratio is in [0, 1] and its minimum is >= 0")
        self.ratio = ratio
        self.floor = min_per_second * window
        self._counts = RollingCounts(window, buckets)  # a: requests, b: retries
        self._now = now

    def record_request(self) -> None:
        """A request (not a retry) arrived: it earns the budget `ratio` of a retry."""
        self._counts.add(self._now(), 1.0, 0.0)

    def try_acquire(self) -> bool:
        """Take one retry from the budget if there is one left."""
        now = self._now()
        requests, retries = self._counts.totals(now)
        if retries + 1 > self.ratio * requests + self.floor:
            return False
        self._counts.add(now, 0.0, 1.0)
        return True

    def remaining(self) -> float:
        requests, retries = self._counts.totals(self._now())
        return max(self.ratio * requests + self.floor - retries, 0.0)


class Step(enum.Enum):
    RETRY = "retry"  # the same deployment again, after `Decision.wait`
    NEXT = "next"  # the next deployment in the plan
    GIVE_UP = "give_up"  # raise the error


@dataclass(frozen=True, slots=True)
class Decision:
    step: Step
    wait: float = 0.0


GIVE_UP = Decision(Step.GIVE_UP)
NEXT = Decision(Step.NEXT)


def next_step(kind: FailureKind | None, retry: int, *, has_next: bool, policy: RetryPolicy,
              budget: RetryBudget | None, rng: random.Random, retry_after: float | None = None,
              remaining: float | None = None) -> Decision:
    """What the attempt loop does after a failed attempt of `kind`; `retry` is the number the
    retry would have (1 after the first attempt), `has_next` whether the plan has another
    deployment. The budget is drawn from only when the answer is RETRY. Call it for errors
    `outcome.classify` gives a kind; for the others (kind None: a 400, a feature the adapter
    cannot express) the pipeline's own `GatewayError.fallbackable` rule stands."""
    if not fallbackable(kind):
        return GIVE_UP
    if has_next:
        return NEXT
    if retryable_on_same(kind):
        wait = policy.delay(retry, rng, retry_after=retry_after, remaining=remaining)
        if wait is not None and (budget is None or budget.try_acquire()):
            return Decision(Step.RETRY, wait)
    return GIVE_UP
