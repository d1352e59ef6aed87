"""Ordering the deployments of a group for one request: first choice first, the rest as the
fallbacks, in the order they should be tried.

Design notes (the defaults and why)
-----------------------------------
* **Priority tiers.** Candidates are grouped by `priority` (lower first) once, when the `Group`
  is built. The strategy orders within each tier; a later tier only follows as fallbacks. A
  cheaper or on-premise tier is used until it fails, whatever the strategy.
* **weighted** (the default) draws the whole tier as a weighted random permutation (sampling
  without replacement), not only the first choice: when the breaker removes the first choice,
  the next is still drawn by weight, so an outage of one deployment spreads its traffic over
  the others in proportion to their weights.
* **round-robin** rotates a counter per group and tier: an even spread without randomness.
* **least-busy** orders by requests in flight; ties start from a random rotation, so idle
  deployments share the traffic instead of the first one taking it all.
* **lowest-latency** uses the power of two choices over peak-EWMA x (in flight + 1): two
  measured candidates are drawn at random and the better one goes first. Comparing two rather
  than taking the global best keeps every request from herding onto one deployment whose
  figure is momentarily lowest; weighting by in-flight requests makes a queue count as latency
  (Finagle's cost). The figure is time to first token for streams and seconds per output token
  otherwise (latency.py). An **unmeasured** deployment (never sampled, or its sample older
  than `stale_after`) is put first for one probe when nothing is in flight to it and either it
  has had no sample or probe for `probe_after` (**10 s**; at once for a new deployment) or a
  draw below `explore` (**2 %**) says so. So it is never starved (it is measured within seconds)
  and never flooded (one probe at a time, a few per second at most). The rest follow by cost,
  unmeasured ones last.
* **lowest-cost** orders by input price x estimated input tokens + output price x estimated
  output tokens (prices in USD per million tokens); a deployment with an unknown price that the
  request needs comes last (never assumed free). Without estimates, one token of each stands in.
  A tie keeps the configured order.
* **usage** orders by headroom, the smallest share left of the deployment's rpm and tpm after
  counting this request (requests in the last 60 s from `LiveStats.start`, tokens from
  `record_tokens`, plus this request's estimate). A deployment with no capacity configured has
  a headroom of 1 (nothing known limits it); ties go to the one that took fewer tokens, then
  fewer requests. An exhausted deployment stays in the list, last: the upstream decides.

Cost per request: one pass per tier, the result list and, for the sorting strategies, a sort of
the tier (a handful of candidates); no lookup by id (a `Candidate` holds its `LiveFigures`).
Randomness is the injected `rng`, time the `LiveStats` clock.

`targets` is what the router calls when every breaker is closed: the same order as `order`, as
the targets themselves. A group of exactly two candidates in one tier (the common routed group)
has its own few-float-op path in `weighted` and `lowest-latency`: the same distribution as the
general code (tested side by side), without its loops, lists and extra random draws (with two
candidates the power of two choices always draws both, so only a tie needs a coin).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Generic, NamedTuple, TypeVar

from unigate.config import STRATEGIES
from unigate.routing.latency import LiveFigures, LiveStats

T = TypeVar("T")


@dataclass(slots=True, eq=False)
class Candidate(Generic[T]):
    """One deployment as a strategy sees it; `target` is what the caller gets back (a
    `Deployment`). Build them once per group, not per request."""

    target: T
    id: str
    weight: float = 1.0
    priority: int = 0
    #: requests and tokens per minute the deployment is allowed (None: not limited)
    rpm: float | None = None
    tpm: float | None = None
    #: USD per million tokens (None: unknown)
    input_price: float | None = None
    output_price: float | None = None
    live: LiveFigures = field(default_factory=LiveFigures)

    def __post_init__(self) -> None:
        if not self.weight > 0 or math.isinf(self.weight):
            raise ValueError(f"deployment {self.id!r}: a weight is a finite number > 0")


class Group(Generic[T]):
    """The candidates under one name, split into priority tiers once."""

    __slots__ = ("candidates", "key", "pair", "rr", "tiers")

    def __init__(self, key: str, candidates: Sequence[Candidate[T]]) -> None:
        self.key = key
        self.candidates = tuple(candidates)
        tiers: dict[int, list[Candidate[T]]] = {}
        for c in self.candidates:
            tiers.setdefault(c.priority, []).append(c)
        self.tiers: tuple[tuple[Candidate[T], ...], ...] = tuple(tuple(tiers[p]) for p in sorted(tiers))
        #: round-robin's counter per tier
        self.rr = [0] * len(self.tiers)
        #: the two candidates when the group is one tier of exactly two (the strategies' fast path)
        self.pair: tuple[Candidate[T], Candidate[T]] | None = None
        if len(self.tiers) == 1 and len(self.tiers[0]) == 2:
            self.pair = (self.tiers[0][0], self.tiers[0][1])


class RequestFacts(NamedTuple):
    """What a strategy may know of the request (token counts are estimates, 0 when unknown).
    A NamedTuple, not a frozen dataclass: one is built per routed request, and a frozen
    dataclass's `__init__` costs ~25 bytecodes more (bench/opcount.py)."""

    stream: bool = False
    input_tokens: int = 0
    output_tokens: int = 0


NO_FACTS = RequestFacts()
STREAM_FACTS = RequestFacts(stream=True)


class Strategy:
    """Orders a group for one request: every candidate, first choice first."""

    name: ClassVar[str] = ""
    #: whether the order depends on the request's token estimates (else only on `stream`)
    reads_tokens: ClassVar[bool] = False

    def __init__(self, live: LiveStats, rng: random.Random | None = None) -> None:
        self.live = live
        self.rng = rng or random.Random()

    def order(self, group: Group[T], facts: RequestFacts = NO_FACTS) -> list[Candidate[T]]:
        out: list[Candidate[T]] = []
        for i, tier in enumerate(group.tiers):
            start = len(out)
            out.extend(tier)
            if len(tier) > 1:
                self._order_tier(out, start, group, i, facts)
        return out

    def targets(self, group: Group[T], facts: RequestFacts = NO_FACTS) -> list[T]:
        """`order`'s candidates' targets (the router's path when no breaker is tripped)."""
        return [c.target for c in self.order(group, facts)]

    def _order_tier(self, out: list[Candidate[T]], start: int, group: Group[T], tier: int,
                    facts: RequestFacts) -> None:
        """Reorder out[start:] (one tier, more than one candidate) in place."""
        raise NotImplementedError


class Weighted(Strategy):
    name = "weighted"

    def targets(self, group: Group[T], facts: RequestFacts = NO_FACTS) -> list[T]:
        pair = group.pair
        if pair is None:
            return [c.target for c in self.order(group, facts)]
        a, b = pair
        # the general draw with two: `a` first when random() * total falls below a's weight
        if self.rng.random() * (a.weight + b.weight) < a.weight:
            return [a.target, b.target]
        return [b.target, a.target]

    def _order_tier(self, out: list[Candidate[T]], start: int, group: Group[T], tier: int,
                    facts: RequestFacts) -> None:
        rng, end = self.rng, len(out)
        total = 0.0
        for k in range(start, end):
            total += out[k].weight
        # sampling without replacement, in place: pick position i from what is left, by weight
        for i in range(start, end - 1):
            r = rng.random() * total
            j, acc = i, out[i].weight
            while acc <= r and j < end - 1:
                j += 1
                acc += out[j].weight
            out[i], out[j] = out[j], out[i]
            total -= out[i].weight


class RoundRobin(Strategy):
    name = "round-robin"

    def _order_tier(self, out: list[Candidate[T]], start: int, group: Group[T], tier: int,
                    facts: RequestFacts) -> None:
        n = len(out) - start
        first = group.rr[tier] % n
        group.rr[tier] = first + 1
        if first:
            out[start:] = out[start + first:] + out[start:start + first]


class LeastBusy(Strategy):
    name = "least-busy"

    def _order_tier(self, out: list[Candidate[T]], start: int, group: Group[T], tier: int,
                    facts: RequestFacts) -> None:
        n = len(out) - start
        first = self.rng.randrange(n)
        rotated = out[start + first:] + out[start:start + first]
        rotated.sort(key=_in_flight)  # stable: ties keep the random rotation
        out[start:] = rotated


def _in_flight(c: Candidate[T]) -> int:
    return c.live.in_flight


class LowestLatency(Strategy):
    name = "lowest-latency"

    def __init__(self, live: LiveStats, rng: random.Random | None = None, *,
                 probe_after: float = 10.0, explore: float = 0.02) -> None:
        super().__init__(live, rng)
        self.probe_after = probe_after
        self.explore = explore
        self._stale = live.config.stale_after

    def targets(self, group: Group[T], facts: RequestFacts = NO_FACTS) -> list[T]:
        pair = group.pair
        if pair is not None:
            a, b = pair
            la = a.live
            lb = b.live
            if facts.stream:
                fa = la.ttft
                fb = lb.ttft
            else:
                fa = la.per_token
                fb = lb.per_token
            now, stale = self.live.now(), self._stale
            if now - fa.last_sample <= stale and now - fb.last_sample <= stale:
                # both measured, so no probe is due: the power of two choices over two draws
                # both, and the cheaper goes first (a tie is a coin toss, as the draw's order is)
                ca = fa.value * (la.in_flight + 1)
                cb = fb.value * (lb.in_flight + 1)
                if ca < cb or (ca == cb and self.rng.random() < 0.5):
                    return [a.target, b.target]
                return [b.target, a.target]
        return [c.target for c in self.order(group, facts)]

    def _order_tier(self, out: list[Candidate[T]], start: int, group: Group[T], tier: int,
                    facts: RequestFacts) -> None:
        now, stale, stream, rng = self.live.now(), self._stale, facts.stream, self.rng
        end = len(out)
        # an unmeasured deployment due for its probe goes first (at most one per request)
        for k in range(start, end):
            c = out[k]
            fig = c.live.latency(stream)
            if not fig.measured(now, stale) and c.live.in_flight == 0 and (
                    now - max(fig.last_sample, fig.last_probe) >= self.probe_after or rng.random() < self.explore):
                fig.last_probe = now
                if k != start:
                    out.insert(start, out.pop(k))
                start += 1
                break
        # then the measured ones, then the unmeasured (a stable partition: the tier is small)
        m_end = start
        for k in range(start, end):
            if out[k].live.latency(stream).measured(now, stale):
                if k != m_end:
                    out.insert(m_end, out.pop(k))
                m_end += 1
        m = m_end - start
        if m >= 2:
            i = rng.randrange(m)
            j = rng.randrange(m - 1)
            if j >= i:
                j += 1
            a, b = out[start + i], out[start + j]
            win = a if _latency_cost(a, stream) <= _latency_cost(b, stream) else b
            measured = [c for c in out[start:m_end] if c is not win]
            measured.sort(key=lambda c: _latency_cost(c, stream))
            out[start:m_end] = [win, *measured]


def _latency_cost(c: Candidate[T], stream: bool) -> float:
    return c.live.latency(stream).value * (c.live.in_flight + 1)


class LowestCost(Strategy):
    name = "lowest-cost"
    reads_tokens = True

    def _order_tier(self, out: list[Candidate[T]], start: int, group: Group[T], tier: int,
                    facts: RequestFacts) -> None:
        i_tok, o_tok = facts.input_tokens, facts.output_tokens
        if i_tok <= 0 and o_tok <= 0:
            i_tok = o_tok = 1
        out[start:] = sorted(out[start:], key=lambda c: _price(c, i_tok, o_tok))


def _price(c: Candidate[T], i_tok: int, o_tok: int) -> float:
    """USD for the request's estimated tokens; infinite when a price it needs is unknown."""
    cost = 0.0
    if i_tok > 0:
        if c.input_price is None:
            return math.inf
        cost += c.input_price * i_tok
    if o_tok > 0:
        if c.output_price is None:
            return math.inf
        cost += c.output_price * o_tok
    return cost / 1e6


class Usage(Strategy):
    name = "usage"
    reads_tokens = True

    def _order_tier(self, out: list[Candidate[T]], start: int, group: Group[T], tier: int,
                    facts: RequestFacts) -> None:
        now = self.live.now()
        tokens = max(facts.input_tokens, 0) + max(facts.output_tokens, 0)
        out[start:] = sorted(out[start:], key=lambda c: _headroom_key(c, now, tokens))


def headroom(c: Candidate[T], now: float, tokens: int = 0) -> float:
    """The smallest share of the deployment's rpm/tpm left after a request of `tokens`; 1.0 when
    it has no capacity configured, negative when it is already over."""
    requests, used = c.live.usage.totals(now)
    return _room(c, requests, used, tokens)


def _room(c: Candidate[T], requests: float, used: float, tokens: int) -> float:
    room = 1.0
    if c.rpm is not None and c.rpm > 0:
        room = min(room, 1.0 - (requests + 1) / c.rpm)
    if c.tpm is not None and c.tpm > 0:
        room = min(room, 1.0 - (used + tokens) / c.tpm)
    return room


def _headroom_key(c: Candidate[T], now: float, tokens: int) -> tuple[float, float, float]:
    requests, used = c.live.usage.totals(now)
    return -_room(c, requests, used, tokens), used, requests


_BY_NAME: dict[str, type[Strategy]] = {
    s.name: s for s in (Weighted, RoundRobin, LeastBusy, LowestLatency, LowestCost, Usage)
}


def strategy(name: str, live: LiveStats, rng: random.Random | None = None) -> Strategy:
    """The strategy called `name` (one of STRATEGIES). Raises ValueError for another name."""
    cls = _BY_NAME.get(name)
    if cls is None:
        raise ValueError(f"unknown routing strategy {name!r}; one of: {', '.join(STRATEGIES)}")
    return cls(live, rng)
