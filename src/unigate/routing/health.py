"""A circuit breaker per deployment, and the choice of which deployments a request may try.

Design notes (the defaults and why)
-----------------------------------
* Outcomes are `record_success(dep)` and `record_failure(dep, kind, retry_after)`, the kind from
  `outcome.classify`. A `CALLER_TIMEOUT` (the caller's deadline was shorter than the
  deployment's own timeout) is not counted at all: it says nothing about the deployment, and
  counting it would let one impatient client open a healthy deployment for everyone.
* The error ratio is taken over a rolling window of **30 s in 10 buckets** (window.py: bounded
  memory, O(1) updates). 30 s is long enough that a handful of requests makes a ratio and short
  enough that an outage is noticed within one window.
* It opens when that ratio reaches **0.5** with at least **10 requests** in the window. The
  minimum count keeps a quiet deployment from opening on its first one or two failures (1 of 1
  is 100 %); half is a level a working upstream does not reach by bad luck, while a broken one
  reaches it at once.
* A 429 with a Retry-After opens it **at once** for that wait (capped at `max_cooldown`): the
  upstream has said when it will take requests again, so every request sent before then is a
  wasted round trip. Such an opening does not lengthen later cooldowns: it is advice, not a sign
  of a broken deployment. A 429 without a wait is counted like any failure.
* It stays open for a **10 s cooldown**, doubled on each opening that follows within a window of
  the last close (flapping), capped at **5 min**: a deployment that keeps failing is asked less
  and less often, and one that recovers is back within seconds of its first good answer.
* Then it is half-open: **exactly one** probe is let through (`select` claims it); every other
  request still sees the deployment as unavailable. The probe's success closes the breaker and
  forgets the window (old failures describe the outage, not the recovered deployment); its
  failure reopens it with the next, longer cooldown. A probe that is planned but not attempted
  (an earlier deployment answered) is handed back with `release`, and one whose outcome never
  comes (the caller died) expires after `probe_timeout` (60 s), so a breaker cannot stay stuck.
  Outcomes are not tagged as the probe's: once the cooldown is over, the next counted outcome
  decides (normally the probe's; a request sent before the opening and finishing this late is
  just as much evidence). Outcomes that arrive while it is open are counted and change nothing.
* `select` never returns an empty list for a non-empty one: when every deployment is
  unavailable it returns them all, soonest to reopen first. Refusing the request outright would
  turn a partial outage into a complete one; trying the best candidate costs one round trip.
* Sharing across workers and replicas goes through a `HealthStore`. The breaker publishes its
  openings and closings (no I/O on the request path: a shared store queues them) and reads
  others' openings from a local snapshot that a shared implementation refreshes in the
  background (`SnapshotHealthStore`); so a deployment opened in one process is avoided by the
  others within one refresh, without a network round trip per request. Only openings are
  shared, not the counts: each process decides from what it saw, and the union of their
  decisions is honoured. Times cross the wire as remaining durations, because monotonic clocks
  of different processes do not agree.

* `tripped` counts the breakers open or half-open here; while it is 0 and the store knows no
  opening, `select` would return its input unchanged and claim nothing, so the router skips it
  (`closed`) and the loop hands nothing back (`release`). Successes are counted into the window
  with one counter (`RollingCounts.add_a`): the request path's cost of a closed breaker.

Nothing here reads a clock or does I/O of its own: `now` is injected (monotonic seconds).
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from unigate.routing.outcome import FailureKind
from unigate.routing.window import RollingCounts

T = TypeVar("T")


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    window: float = 30.0
    buckets: int = 10
    threshold: float = 0.5
    min_requests: int = 10
    cooldown: float = 10.0
    max_cooldown: float = 300.0
    probe_timeout: float = 60.0
    #: deployments tracked before idle, closed ones are forgotten (direct `provider/model` ids
    #: make the set open-ended)
    max_tracked: int = 10_000

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError("the breaker's threshold is a ratio in (0, 1]")
        if self.min_requests < 1 or self.cooldown <= 0 or self.max_cooldown < self.cooldown:
            raise ValueError("the breaker needs min_requests >= 1 and 0 < cooldown <= max_cooldown")


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """A deployment's breaker as figures, for the admin surface, metrics and logs."""

    state: State
    error_rate: float
    requests: int
    failures: int
    #: when an open breaker becomes half-open (the `now` clock); None when closed
    reopens_at: float | None
    #: openings in the current run of failures (the cooldown is cooldown * 2 ** (streak - 1))
    streak: int
    #: whether this process or another has it open (`HealthStore`)
    opened_elsewhere: bool = False


class HealthStore(Protocol):
    """Breaker openings shared between processes. Every method is called on the request path,
    so none may block or do I/O: a shared implementation queues what is published and answers
    reads from a snapshot it refreshes in the background. Times are on the caller's `now` clock."""

    def publish_open(self, dep_id: str, until: float) -> None:
        """This process opened `dep_id` until `until`."""
        ...

    def publish_closed(self, dep_id: str) -> None:
        """This process's probe succeeded: `dep_id` answers again."""
        ...

    def opened_until(self, dep_id: str) -> float:
        """The latest time until which `dep_id` is known to be open anywhere; 0.0 when not."""
        ...

    def any_open(self) -> bool:
        """Whether any opening is known (an expired one may still count: False is what matters,
        it lets `Breakers.closed` skip the per-deployment checks)."""
        ...


class InProcessHealthStore:
    """Openings shared by the breakers of one process (several `Breakers`, e.g. per worker
    thread or per gateway instance in tests). Expired entries are pruned as new ones arrive."""

    __slots__ = ("_now", "_until")

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._until: dict[str, float] = {}
        self._now = now

    def publish_open(self, dep_id: str, until: float) -> None:
        if len(self._until) > 1000:
            t = self._now()
            for k in [k for k, v in self._until.items() if v <= t]:
                del self._until[k]
        self._until[dep_id] = max(until, self._until.get(dep_id, 0.0))

    def publish_closed(self, dep_id: str) -> None:
        self._until.pop(dep_id, None)

    def opened_until(self, dep_id: str) -> float:
        return self._until.get(dep_id, 0.0)

    def any_open(self) -> bool:
        return bool(self._until)


class SnapshotHealthStore:
    """The request-path half of a shared store (Redis or any other); its I/O half is a
    background task that, every second or so, pushes `take_outbox()` (an opening as a key with a
    TTL of the remaining seconds, a closing as a delete) and loads the others' openings with
    `apply_snapshot({dep_id: remaining_seconds})`. Remaining durations on the wire, local
    deadlines here: the processes' monotonic clocks need not agree."""

    __slots__ = ("_now", "_outbox", "remote")

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        #: dep id -> local deadline of an opening known here (own or others'); read, not written,
        #: outside this class (the router's cheap path checks it is empty)
        self.remote: dict[str, float] = {}
        #: dep id -> remaining seconds to publish, or None for a closing; the latest wins
        self._outbox: dict[str, float | None] = {}

    def publish_open(self, dep_id: str, until: float) -> None:
        self._outbox[dep_id] = max(0.0, until - self._now())
        self.remote[dep_id] = max(until, self.remote.get(dep_id, 0.0))

    def publish_closed(self, dep_id: str) -> None:
        self._outbox[dep_id] = None
        self.remote.pop(dep_id, None)

    def opened_until(self, dep_id: str) -> float:
        return self.remote.get(dep_id, 0.0)

    def any_open(self) -> bool:
        return bool(self.remote)

    def take_outbox(self) -> dict[str, float | None]:
        out, self._outbox = self._outbox, {}
        return out

    def apply_snapshot(self, remaining: Mapping[str, float]) -> None:
        """Replace the known openings with the store's (the source of truth once refreshed)."""
        t = self._now()
        self.remote = {k: t + v for k, v in remaining.items() if v > 0}


class _Breaker:
    __slots__ = ("closed_at", "counts", "last_seen", "open_until", "probe_until", "streak", "tripped")

    def __init__(self, cfg: BreakerConfig, now: float) -> None:
        self.counts = RollingCounts(cfg.window, cfg.buckets)  # a: requests, b: failures
        self.tripped = False  # open or half-open
        self.open_until = 0.0  # when tripped: the end of the cooldown
        self.probe_until = 0.0  # half-open: the claimed probe's lease
        self.streak = 0
        self.closed_at = -math.inf
        self.last_seen = now


class Breakers:
    """The breakers of all deployments in this process."""

    def __init__(self, config: BreakerConfig | None = None, *, now: Callable[[], float] = time.monotonic,
                 store: HealthStore | None = None) -> None:
        self.config = config or BreakerConfig()
        self._now = now
        self._store = store
        self._by_id: dict[str, _Breaker] = {}
        #: breakers open or half-open here (read-only outside): while 0 and the store knows no
        #: opening, every deployment is available and there is no probe to claim or release
        self.tripped = 0

    # ------------------------------------------------------------------ outcomes

    def record_success(self, dep_id: str) -> None:
        now = self._now()
        b = self._by_id.get(dep_id) or self._get(dep_id, now)
        b.last_seen = now
        b.counts.add_a(now)
        if b.tripped and now >= b.open_until:
            # the half-open probe (or any answer once the cooldown is over) closes it
            b.tripped = False
            self.tripped -= 1
            b.probe_until = 0.0
            b.closed_at = now
            b.counts.clear()
            if self._store is not None:
                self._store.publish_closed(dep_id)

    def record_failure(self, dep_id: str, kind: FailureKind, retry_after: float | None = None) -> None:
        now = self._now()
        b = self._get(dep_id, now)
        b.last_seen = now
        if not kind.counts:
            # the caller's own deadline: if it was the probe, let another one go
            b.probe_until = 0.0
            return
        b.counts.add(now, 1.0, 1.0)
        cfg = self.config
        if kind is FailureKind.RATE_LIMITED and retry_after is not None and retry_after > 0:
            self._open(dep_id, b, now + min(retry_after, cfg.max_cooldown))
            return
        if b.tripped:
            if now >= b.open_until:
                # the half-open probe failed: open again, for longer
                b.streak += 1
                self._open(dep_id, b, now + self._cooldown(b.streak))
            # else a request sent before it opened, failing late: already accounted for
            return
        requests, failures = b.counts.a, b.counts.b
        if requests >= cfg.min_requests and failures >= cfg.threshold * requests:
            if now - b.closed_at > cfg.window:
                b.streak = 0  # closed for a whole window since the last opening: a new episode
            b.streak += 1
            self._open(dep_id, b, now + self._cooldown(b.streak))

    def release(self, dep_id: str) -> None:
        """A half-open deployment `select` chose for its probe was not attempted after all."""
        if not self.tripped:
            return  # nothing is half-open: no probe was claimed
        b = self._by_id.get(dep_id)
        if b is not None:
            b.probe_until = 0.0

    # ------------------------------------------------------------------ reading

    def closed(self) -> bool:
        """Every breaker is closed, here and as far as the store knows: `select` would return its
        input unchanged and claim nothing (the router's cheap path, a few attribute reads)."""
        if self.tripped:
            return False
        store = self._store
        return store is None or not store.any_open()

    def state(self, dep_id: str) -> BreakerStatus:
        now = self._now()
        elsewhere = self._store.opened_until(dep_id) if self._store is not None else 0.0
        b = self._by_id.get(dep_id)
        if b is None:
            if elsewhere > now:
                return BreakerStatus(State.OPEN, 0.0, 0, 0, elsewhere, 0, True)
            return BreakerStatus(State.CLOSED, 0.0, 0, 0, None, 0)
        requests, failures = b.counts.totals(now)
        rate = failures / requests if requests else 0.0
        if (b.tripped and now < b.open_until) or elsewhere > now:
            until = max(b.open_until if b.tripped else 0.0, elsewhere)
            state, reopens = State.OPEN, until
        elif b.tripped:
            state, reopens = State.HALF_OPEN, b.open_until
        else:
            state, reopens = State.CLOSED, None
        return BreakerStatus(state, rate, round(requests), round(failures), reopens, b.streak, elsewhere > now)

    def select(self, dep_ids: Sequence[str]) -> list[str]:
        """The deployments to try, in the given order, without those that are unavailable; a
        half-open one is included only to carry its one probe, which this claims (hand it back
        with `release` if it is not attempted). Never empty for a non-empty input."""
        return self.select_items(dep_ids, _identity)

    def select_items(self, items: Sequence[T], id_of: Callable[[T], str]) -> list[T]:
        """`select` over any objects carrying a deployment id (`Deployment`, a strategy's
        candidates), so the caller keeps its objects and builds no list of ids."""
        now = self._now()
        by_id, store = self._by_id, self._store
        out: list[T] = []
        for item in items:
            dep_id = id_of(item)
            if store is not None and store.opened_until(dep_id) > now:
                continue
            b = by_id.get(dep_id)
            if b is None or not b.tripped:
                out.append(item)
            elif now >= b.open_until and now >= b.probe_until:
                b.probe_until = now + self.config.probe_timeout
                out.append(item)
        if out or not items:
            return out
        # everything is open: all of them, soonest to reopen first (a stable sort keeps the
        # given order among equals); this runs only in an outage, so its sort costs nothing
        return sorted(items, key=lambda it: self._reopens(id_of(it), now))

    def available(self, dep_id: str) -> bool:
        """Whether a request may go to `dep_id` now (claims nothing: for display and tests)."""
        now = self._now()
        if self._store is not None and self._store.opened_until(dep_id) > now:
            return False
        b = self._by_id.get(dep_id)
        return b is None or not b.tripped or (now >= b.open_until and now >= b.probe_until)

    # ------------------------------------------------------------------ internals

    def _reopens(self, dep_id: str, now: float) -> float:
        b = self._by_id.get(dep_id)
        # a half-open one (its probe out) counts as reopened: its cooldown is over
        local = 0.0 if b is None or not b.tripped else b.open_until
        return max(local, self._store.opened_until(dep_id) if self._store is not None else 0.0)

    def _cooldown(self, streak: int) -> float:
        cfg = self.config
        # 2 ** 30 is far past any cap: bound the exponent so a long outage cannot overflow it
        return min(cfg.max_cooldown, cfg.cooldown * 2.0 ** min(streak - 1, 30))

    def _open(self, dep_id: str, b: _Breaker, until: float) -> None:
        if b.tripped:
            until = max(until, b.open_until)
        else:
            self.tripped += 1
        b.tripped = True
        b.open_until = until
        b.probe_until = 0.0
        if self._store is not None:
            self._store.publish_open(dep_id, until)

    def _get(self, dep_id: str, now: float) -> _Breaker:
        b = self._by_id.get(dep_id)
        if b is None:
            if len(self._by_id) >= self.config.max_tracked:
                self._forget_idle(now)
            b = self._by_id[dep_id] = _Breaker(self.config, now)
        return b

    def _forget_idle(self, now: float) -> None:
        horizon = now - self.config.window
        for k in [k for k, b in self._by_id.items() if not b.tripped and b.last_seen < horizon]:
            del self._by_id[k]


def _identity(s: str) -> str:
    return s
