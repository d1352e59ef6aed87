"""The router's cheap path for a group (every breaker closed: the strategy's targets are the plan)
against its general path (order, then the breakers' select): the same plans, the same spreads,
and the general path back as soon as anything is open."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tests.unit.routing.clock import Clock
from unigate.config import parse_config
from unigate.providers.registry import build_providers
from unigate.routing.health import Breakers, InProcessHealthStore, SnapshotHealthStore
from unigate.routing.latency import LiveStats, PeakEwma
from unigate.routing.outcome import FailureKind
from unigate.routing.router import Router
from unigate.routing.strategies import Candidate, Group, LowestLatency, RequestFacts, RoundRobin, Weighted
from unigate.routing.window import RollingCounts

STREAM = RequestFacts(stream=True)


def cand(live: LiveStats, dep_id: str, weight: float = 1.0) -> Candidate[str]:
    return Candidate(target=dep_id, id=dep_id, weight=weight, live=live.figures(dep_id))


def router(clock: Clock, strategy: str, fallbacks: tuple[str, ...] = (), seed: int = 7) -> Router:
    cfg = parse_config({
        "providers": {p: {"preset": "openai", "api_key": "sk-x", "base_url": f"http://127.0.0.1:9/{p}/v1"}
                      for p in ("one", "two", "three")},
        "deployments": [{"name": "g", "model": "one/m", "weight": 3}, {"name": "g", "model": "two/m", "weight": 1},
                        {"name": "other", "model": "three/m"}],
        "routing": {"groups": {"g": {"strategy": strategy, "fallbacks": list(fallbacks)}}},
    }, where="test", env={})
    return Router(cfg, build_providers(cfg, env={}), now=clock, rng=random.Random(seed))


def ids(plan: list[object]) -> list[str]:
    return [d.id for d in plan]  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- strategies' targets


def test_weighted_pair_targets_follow_the_weights_as_order_does() -> None:
    live = LiveStats(now=Clock())
    group = Group("g", [cand(live, "a", 1.0), cand(live, "b", 3.0)])
    assert group.pair is not None
    draws = 10_000
    fast_s, slow_s = Weighted(live, random.Random(1)), Weighted(live, random.Random(2))
    fast = Counter(fast_s.targets(group)[0] for _ in range(draws))
    slow = Counter(slow_s.order(group)[0].id for _ in range(draws))
    for firsts in (fast, slow):
        assert abs(firsts["b"] - 7500) <= 0.05 * 7500, firsts
        assert abs(firsts["a"] - 2500) <= 0.05 * 2500, firsts
    assert sorted(Weighted(live, random.Random(3)).targets(group)) == ["a", "b"]


def test_lowest_latency_pair_targets_agree_with_order() -> None:
    clock = Clock()
    live = LiveStats(now=clock)
    a, b = cand(live, "a"), cand(live, "b")
    group = Group("g", [a, b])
    s = LowestLatency(live, random.Random(0))
    live.observe_ttft(a.live, 0.08)
    live.observe_ttft(b.live, 0.02)
    assert s.targets(group, STREAM) == ["b", "a"] == [c.id for c in s.order(group, STREAM)]
    for _ in range(4):
        live.start(b.live)  # 0.02 * 5 > 0.08: a queue counts as latency
    assert s.targets(group, STREAM) == ["a", "b"] == [c.id for c in s.order(group, STREAM)]
    for _ in range(4):
        live.finish(b.live)
    live.observe_completion(a.live, 1.0, 100)  # non-streams use the per-token figure
    live.observe_completion(b.live, 5.0, 100)
    assert s.targets(group, RequestFacts()) == ["a", "b"] == [c.id for c in s.order(group, RequestFacts())]


def test_lowest_latency_pair_tie_is_a_coin_toss() -> None:
    live = LiveStats(now=Clock())
    a, b = cand(live, "a"), cand(live, "b")
    live.observe_ttft(a.live, 0.05)
    live.observe_ttft(b.live, 0.05)
    s = LowestLatency(live, random.Random(4))
    firsts = Counter(s.targets(Group("g", [a, b]), STREAM)[0] for _ in range(4000))
    assert 1800 <= firsts["a"] <= 2200, firsts


def test_lowest_latency_pair_with_an_unmeasured_one_still_probes_it_once() -> None:
    clock = Clock()
    live = LiveStats(now=clock)
    a, new = cand(live, "a"), cand(live, "new")
    live.observe_ttft(a.live, 0.02)
    s = LowestLatency(live, random.Random(9))
    group = Group("g", [a, new])
    assert s.targets(group, STREAM) == ["new", "a"]  # never sampled: probed at once
    live.start(new.live)
    assert all(s.targets(group, STREAM)[0] == "a" for _ in range(200))  # its probe is in flight
    live.finish(new.live)
    live.observe_ttft(new.live, 0.01)
    assert s.targets(group, STREAM) == ["new", "a"]  # measured now, and faster
    clock.advance(31.0)  # both stale: the general path (a probe) again
    assert s.targets(group, STREAM)[0] in ("a", "new")


def test_groups_other_than_a_pair_use_the_general_order() -> None:
    live = LiveStats(now=Clock())
    three = Group("g", [cand(live, k) for k in "abc"])
    assert three.pair is None
    assert RoundRobin(live).targets(three) == ["a", "b", "c"]
    assert RoundRobin(live).targets(Group("h", [cand(live, "x"), cand(live, "y")])) == ["x", "y"]
    tiers = Group("t", [Candidate("p", "p", priority=1, live=live.figures("p")), cand(live, "q")])
    assert tiers.pair is None  # two tiers of one
    assert Weighted(live, random.Random(0)).targets(tiers) == ["q", "p"]


# ---------------------------------------------------------------------------- breakers.closed


@pytest.mark.parametrize("store_kind", ["none", "in-process", "snapshot"])
def test_closed_follows_every_opening_and_closing(store_kind: str) -> None:
    clock = Clock()
    store = {"none": None, "in-process": InProcessHealthStore(clock), "snapshot": SnapshotHealthStore(clock)}[store_kind]
    br = Breakers(now=clock, store=store)
    assert br.closed()
    br.record_success("a")
    assert br.closed()
    br.record_failure("a", FailureKind.RATE_LIMITED, retry_after=5.0)
    br.record_failure("a", FailureKind.RATE_LIMITED, retry_after=8.0)  # opened again: counted once
    assert not br.closed()
    clock.advance(9.0)
    assert br.select(["a"]) == ["a"]  # half-open: still not closed, the probe is claimed
    assert not br.closed()
    br.record_success("a")  # the probe closes it
    assert br.closed()


def test_closed_is_false_while_another_worker_has_one_open() -> None:
    clock = Clock()
    store = SnapshotHealthStore(clock)
    br = Breakers(now=clock, store=store)
    store.apply_snapshot({"b": 10.0})
    assert not br.closed()
    store.apply_snapshot({})
    assert br.closed()


def test_release_with_nothing_tripped_changes_nothing() -> None:
    clock = Clock()
    br = Breakers(now=clock)
    for _ in range(10):
        br.record_failure("a", FailureKind.SERVER_ERROR)
    clock.advance(10.0)
    assert br.select(["a", "b"]) == ["a", "b"]  # a's probe claimed
    assert br.select(["a", "b"]) == ["b"]
    br.release("a")
    assert br.select(["a", "b"]) == ["a", "b"]


def test_add_a_is_add_without_b() -> None:
    one, two = RollingCounts(30.0, 10), RollingCounts(30.0, 10)
    for t in (1000.0, 1001.0, 1004.5, 1010.0, 1035.0, 1036.0, 1034.0, 1100.0, 1101.0):
        one.add_a(t)
        two.add(t, 1.0, 0.0)
        assert one.totals(t) == two.totals(t)
    assert one.a == 2.0 and one.b == 0.0


def test_observe_completion_is_a_peak_ewma() -> None:
    clock = Clock()
    live = LiveStats(now=clock)
    fig = live.figures("a")
    live.observe_completion(fig, 2.0, 100)
    assert fig.per_token.value == pytest.approx(0.02)
    clock.advance(10.0)
    live.observe_completion(fig, 1.0, 100)  # lower: pulled down by 1 - exp(-1)
    assert fig.per_token.value == pytest.approx(0.01 + 0.01 * 0.36787944, rel=1e-6)
    live.observe_completion(fig, 5.0, 100)  # higher: at once
    assert fig.per_token.value == pytest.approx(0.05)
    live.observe_completion(fig, 5.0, 0)  # no output tokens: no sample
    assert fig.per_token.last_sample == clock.t


def test_observe_ttft_is_the_same_peak_ewma_as_peakewma_observe() -> None:
    clock = Clock()
    live = LiveStats(now=clock)
    fig = live.figures("a")
    ref = PeakEwma()
    for dt, sample in ((0.0, 0.5), (3.0, 0.1), (0.0, 0.05), (12.0, 0.9), (1.0, 0.2), (40.0, 0.01)):
        clock.advance(dt)
        live.observe_ttft(fig, sample)
        ref.observe(sample, clock.t, live.config.tau)
        assert fig.ttft.value == pytest.approx(ref.value, rel=1e-12)
        assert fig.ttft.last_sample == ref.last_sample == clock.t


# ---------------------------------------------------------------------------- the router


def test_the_router_plan_is_the_strategys_while_all_is_closed_and_the_breakers_when_not() -> None:
    clock = Clock()
    r = router(clock, "weighted")
    assert ids(r.resolve("g")) in (["g#0", "g#1"], ["g#1", "g#0"])  # builds the route
    firsts = Counter(r.resolve("g")[0].id for _ in range(4000))
    assert abs(firsts["g#0"] - 3000) <= 150, firsts
    for _ in range(10):
        r.breakers.record_failure("g#0", FailureKind.SERVER_ERROR)
    assert not r.breakers.closed()
    assert all(ids(r.resolve("g")) == ["g#1"] for _ in range(50))  # the open one is left out
    clock.advance(10.0)
    plans = [ids(r.resolve("g")) for _ in range(50)]
    assert sum("g#0" in p for p in plans) == 1  # half-open: exactly one probe
    r.breakers.record_success("g#0")
    assert r.breakers.closed()
    assert Counter(r.resolve("g")[0].id for _ in range(400))["g#0"] > 200  # back on the cheap path


def test_a_group_with_fallbacks_keeps_the_general_path() -> None:
    r = router(Clock(), "lowest-latency", fallbacks=("other",))
    plan = ids(r.resolve("g", STREAM))
    assert sorted(plan[:2]) == ["g#0", "g#1"] and plan[2:] == ["other#2"]
    assert ids(r.resolve("g", STREAM))[2:] == ["other#2"]


def test_planned_answers_only_what_needs_no_token_estimate() -> None:
    clock = Clock()
    r = router(clock, "lowest-latency")
    assert r.planned("g", {}) is None  # not resolved yet: the caller resolves (and caches) it
    r.resolve("g")
    r.resolve("three/m")
    assert ids(r.planned("three/m", {}) or []) == ["three/m"]  # a lone deployment
    g0, g1 = (r.live.figures(d) for d in ("g#0", "g#1"))
    r.live.observe_ttft(g0, 0.2)
    r.live.observe_ttft(g1, 0.01)
    r.live.observe_completion(g0, 0.1, 10)
    r.live.observe_completion(g1, 5.0, 10)
    assert ids(r.planned("g", {"stream": True}) or []) == ["g#1", "g#0"]  # the stream figure
    assert ids(r.planned("g", {"stream": False}) or []) == ["g#0", "g#1"]  # the per-token figure
    r.breakers.record_failure("g#1", FailureKind.RATE_LIMITED, retry_after=5.0)
    assert r.planned("g", {"stream": True}) is None  # a breaker is open: resolve decides
    assert ids(r.resolve("g", STREAM)) == ["g#0"]
    cost = router(clock, "lowest-cost")
    cost.resolve("g")
    assert cost.planned("g", {}) is None  # its order reads the token estimates
    assert sorted(ids(cost.resolve("g", RequestFacts(False, 100, 10)))) == ["g#0", "g#1"]
