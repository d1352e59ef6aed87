from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from tests.unit.routing.clock import Clock
from unigate.routing.latency import LiveStats
from unigate.routing.strategies import (
    STRATEGIES,
    Candidate,
    Group,
    LeastBusy,
    LowestCost,
    LowestLatency,
    RequestFacts,
    RoundRobin,
    Usage,
    Weighted,
    headroom,
    strategy,
)


def cand(live: LiveStats, dep_id: str, **kw: Any) -> Candidate[str]:
    return Candidate(target=dep_id, id=dep_id, live=live.figures(dep_id), **kw)


def ids(order: list[Candidate[str]]) -> list[str]:
    return [c.id for c in order]


# ---------------------------------------------------------------------------- weighted


def test_weighted_first_choices_follow_the_weights_within_5_percent() -> None:
    live = LiveStats(now=Clock())
    weights = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    group = Group("g", [cand(live, k, weight=w) for k, w in weights.items()])
    s = Weighted(live, random.Random(1234))
    draws = 10_000
    firsts = Counter(s.order(group)[0].id for _ in range(draws))
    total = sum(weights.values())
    for k, w in weights.items():
        expected = draws * w / total
        assert abs(firsts[k] - expected) <= 0.05 * expected, (k, firsts[k], expected)


def test_weighted_returns_a_full_permutation_and_the_second_choice_is_weighted_too() -> None:
    live = LiveStats(now=Clock())
    group = Group("g", [cand(live, "a", weight=1.0), cand(live, "b", weight=1.0), cand(live, "c", weight=8.0)])
    s = Weighted(live, random.Random(5))
    seconds: Counter[str] = Counter()
    draws = 10_000
    for _ in range(draws):
        order = ids(s.order(group))
        assert sorted(order) == ["a", "b", "c"]
        if order[0] == "c":
            seconds[order[1]] += 1
    # with c first, a and b are equally likely second
    n = seconds["a"] + seconds["b"]
    assert abs(seconds["a"] - n / 2) <= 0.05 * n / 2


def test_priority_tiers_go_first_and_later_tiers_follow_as_fallbacks() -> None:
    live = LiveStats(now=Clock())
    group = Group("g", [
        cand(live, "backup", priority=1, weight=100.0),
        cand(live, "a", priority=0),
        cand(live, "b", priority=0),
        cand(live, "last", priority=5),
    ])
    for s in (Weighted(live, random.Random(1)), RoundRobin(live), LeastBusy(live, random.Random(1)),
              LowestLatency(live, random.Random(1)), LowestCost(live), Usage(live)):
        for _ in range(50):
            order = ids(s.order(group))
            assert sorted(order[:2]) == ["a", "b"], s.name
            assert order[2:] == ["backup", "last"], s.name


def test_a_one_member_group_and_a_bad_weight() -> None:
    live = LiveStats(now=Clock())
    group = Group("g", [cand(live, "only")])
    assert ids(Weighted(live, random.Random(0)).order(group)) == ["only"]
    with pytest.raises(ValueError):
        cand(live, "x", weight=0.0)


# ---------------------------------------------------------------------------- round-robin, least-busy


def test_round_robin_cycles_per_group() -> None:
    live = LiveStats(now=Clock())
    g1 = Group("g1", [cand(live, k) for k in "abc"])
    g2 = Group("g2", [cand(live, k) for k in "xy"])
    s = RoundRobin(live)
    assert ids(s.order(g1)) == ["a", "b", "c"]
    assert ids(s.order(g2)) == ["x", "y"]
    assert ids(s.order(g1)) == ["b", "c", "a"]
    assert ids(s.order(g1)) == ["c", "a", "b"]
    assert ids(s.order(g2)) == ["y", "x"]
    assert [s.order(g1)[0].id for _ in range(6)] == list("abcabc")


def test_least_busy_orders_by_requests_in_flight() -> None:
    live = LiveStats(now=Clock())
    a, b, c = cand(live, "a"), cand(live, "b"), cand(live, "c")
    for _ in range(3):
        live.start(a.live)
    live.start(b.live)
    for _ in range(2):
        live.start(c.live)
    s = LeastBusy(live, random.Random(3))
    assert ids(s.order(Group("g", [a, b, c]))) == ["b", "c", "a"]
    live.finish(a.live)
    live.finish(a.live)
    live.finish(a.live)
    assert s.order(Group("g", [a, b, c]))[0].id == "a"


def test_least_busy_spreads_ties() -> None:
    live = LiveStats(now=Clock())
    group = Group("g", [cand(live, k) for k in "abcd"])
    s = LeastBusy(live, random.Random(11))
    firsts = Counter(s.order(group)[0].id for _ in range(4000))
    assert set(firsts) == set("abcd")
    assert min(firsts.values()) > 800


# ---------------------------------------------------------------------------- lowest-latency


def serve(s: LowestLatency, live: LiveStats, clock: Clock, group: Group[str], ttft: dict[str, float],
          n: int) -> Counter[str]:
    """n sequential stream requests, 10 ms apart, each answered with its deployment's ttft."""
    firsts: Counter[str] = Counter()
    for _ in range(n):
        first = s.order(group, RequestFacts(stream=True))[0]
        firsts[first.id] += 1
        live.start(first.live)
        live.observe_ttft(first.live, ttft[first.id])
        live.finish(first.live)
        clock.advance(0.01)
    return firsts


def test_lowest_latency_prefers_the_faster_and_moves_away_when_it_slows() -> None:
    clock = Clock()
    live = LiveStats(now=clock)
    group = Group("g", [cand(live, "fast"), cand(live, "slow")])
    s = LowestLatency(live, random.Random(42))
    ttft = {"fast": 0.020, "slow": 0.080}
    warm = serve(s, live, clock, group, ttft, 200)
    assert warm["slow"] >= 1  # measured during warm-up
    counts = serve(s, live, clock, group, ttft, 1000)
    assert counts["fast"] >= 900, counts
    ttft["fast"] = 0.200
    counts = serve(s, live, clock, group, ttft, 1000)
    assert counts["slow"] >= 900, counts
    # it recovers: after its figure goes stale it is probed, and the fresh sample wins it back
    ttft["fast"] = 0.020
    counts = serve(s, live, clock, group, ttft, 6000)  # 60 s
    assert counts["fast"] >= 3000, counts


def test_lowest_latency_uses_the_per_token_figure_for_non_streams() -> None:
    clock = Clock()
    live = LiveStats(now=clock)
    a, b = cand(live, "a"), cand(live, "b")
    live.observe_ttft(a.live, 0.01)
    live.observe_ttft(b.live, 0.50)
    live.observe_completion(a.live, 10.0, 100)  # 0.1 s per token
    live.observe_completion(b.live, 1.0, 100)  # 0.01 s per token
    s = LowestLatency(live, random.Random(0))
    group = Group("g", [a, b])
    assert s.order(group, RequestFacts(stream=True))[0].id == "a"
    assert s.order(group, RequestFacts(stream=False))[0].id == "b"


def test_lowest_latency_counts_requests_in_flight_as_cost() -> None:
    clock = Clock()
    live = LiveStats(now=clock)
    a, b = cand(live, "a"), cand(live, "b")
    live.observe_ttft(a.live, 0.02)
    live.observe_ttft(b.live, 0.05)
    for _ in range(4):
        live.start(a.live)  # 0.02 * 5 > 0.05 * 1
    s = LowestLatency(live, random.Random(0))
    assert s.order(Group("g", [a, b]), RequestFacts(stream=True))[0].id == "b"


def test_an_unmeasured_deployment_is_probed_once_never_flooded_never_starved() -> None:
    clock = Clock()
    live = LiveStats(now=clock)
    a, b, new = cand(live, "a"), cand(live, "b"), cand(live, "new")
    live.observe_ttft(a.live, 0.02)
    live.observe_ttft(b.live, 0.03)
    group = Group("g", [a, b, new])
    s = LowestLatency(live, random.Random(9))
    facts = RequestFacts(stream=True)
    order = ids(s.order(group, facts))
    assert order[0] == "new"  # never sampled: probed at once
    assert order[-1] != "new" and sorted(order) == ["a", "b", "new"]
    live.start(new.live)
    # while its probe is in flight, nothing else goes to it first
    assert all(s.order(group, facts)[0].id != "new" for _ in range(500))
    assert s.order(group, facts)[-1].id == "new"  # unmeasured: after the measured ones
    live.finish(new.live)  # the probe failed: no sample
    # for a while only the small exploration chance probes it again
    picks = sum(s.order(group, facts)[0].id == "new" for _ in range(2000))
    assert 0 < picks <= 100, picks
    clock.advance(10.0)  # no sample for probe_after: probed for sure (a and b went stale too)
    live.observe_ttft(a.live, 0.02)
    live.observe_ttft(b.live, 0.03)
    assert s.order(group, facts)[0].id == "new"


def test_a_stale_figure_is_reprobed_and_the_new_sample_mostly_replaces_it() -> None:
    clock = Clock()
    live = LiveStats(now=clock)
    a, b = cand(live, "a"), cand(live, "b")
    live.observe_ttft(a.live, 0.02)
    live.observe_ttft(b.live, 5.0)  # b measured very slow
    s = LowestLatency(live, random.Random(2))
    group = Group("g", [a, b])
    facts = RequestFacts(stream=True)
    assert s.order(group, facts)[0].id == "a"
    clock.advance(29.0)
    live.observe_ttft(a.live, 0.02)
    clock.advance(2.0)  # b's sample is 31 s old: unmeasured again
    assert s.order(group, facts)[0].id == "b"
    live.observe_ttft(b.live, 0.01)
    # weighted by the 31 s since the old sample: only exp(-3.1) of the old 5 s remains
    assert b.live.ttft.value == pytest.approx(0.01 + (5.0 - 0.01) * 0.0450492, rel=1e-5)
    # measured again, and still behind a: one fast answer does not win all the traffic back
    assert b.live.ttft.measured(clock(), 30.0)
    assert ids(s.order(group, facts)) == ["a", "b"]


def test_peak_ewma_takes_a_peak_at_once_and_decays_with_time() -> None:
    clock = Clock()
    live = LiveStats(now=clock)
    fig = live.figures("a").ttft
    live.observe_ttft(live.figures("a"), 0.1)
    assert fig.value == 0.1
    clock.advance(1.0)
    live.observe_ttft(live.figures("a"), 1.0)
    assert fig.value == 1.0
    clock.advance(10.0)  # one time constant
    live.observe_ttft(live.figures("a"), 0.0)
    assert fig.value == pytest.approx(1.0 * 0.36787944, rel=1e-6)


# ---------------------------------------------------------------------------- lowest-cost, usage


def test_lowest_cost_orders_by_estimated_price_unknown_last() -> None:
    live = LiveStats(now=Clock())
    group = Group("g", [
        cand(live, "unknown"),
        cand(live, "pricey", input_price=3.0, output_price=15.0),
        cand(live, "cheap_out", input_price=5.0, output_price=1.0),
        cand(live, "no_out_price", input_price=0.1),
        cand(live, "cheap_in", input_price=0.5, output_price=4.0),
    ])
    s = LowestCost(live)
    # a long prompt, a short answer: input price dominates
    assert ids(s.order(group, RequestFacts(input_tokens=10_000, output_tokens=100))) == [
        "cheap_in", "pricey", "cheap_out", "unknown", "no_out_price"]
    # a short prompt, a long answer: output price dominates
    assert ids(s.order(group, RequestFacts(input_tokens=100, output_tokens=10_000))) == [
        "cheap_out", "cheap_in", "pricey", "unknown", "no_out_price"]
    # no output (embeddings): an unknown output price does not matter
    assert ids(s.order(group, RequestFacts(input_tokens=1000, output_tokens=0)))[:2] == ["no_out_price", "cheap_in"]


def test_usage_prefers_the_most_headroom() -> None:
    clock = Clock()
    live = LiveStats(now=clock)
    busy = cand(live, "busy", rpm=100)
    roomy = cand(live, "roomy", rpm=100)
    tokens = cand(live, "tokens", tpm=10_000)
    for _ in range(80):
        live.start(busy.live)
        live.finish(busy.live)
    for _ in range(10):
        live.start(roomy.live)
        live.finish(roomy.live)
    live.record_tokens(tokens.live, 5_000)
    group = Group("g", [busy, tokens, roomy])
    s = Usage(live)
    now = clock()
    assert headroom(roomy, now) == pytest.approx(1 - 11 / 100)
    assert headroom(tokens, now, 1000) == pytest.approx(1 - 6000 / 10_000)
    assert ids(s.order(group, RequestFacts(input_tokens=800, output_tokens=200))) == ["roomy", "tokens", "busy"]
    # a big request exhausts the token-limited one
    assert ids(s.order(group, RequestFacts(input_tokens=6000)))[-1] == "tokens"
    # the counts leave the 60 s window
    clock.advance(61.0)
    assert headroom(busy, clock()) == pytest.approx(0.99)


def test_usage_without_capacity_balances_by_recent_tokens() -> None:
    clock = Clock()
    live = LiveStats(now=clock)
    a, b = cand(live, "a"), cand(live, "b")
    live.record_tokens(a.live, 500)
    live.record_tokens(b.live, 100)
    assert ids(Usage(live).order(Group("g", [a, b]))) == ["b", "a"]


def test_every_named_strategy_is_built_and_an_unknown_one_refused() -> None:
    live = LiveStats(now=Clock())
    group = Group("g", [cand(live, "a"), cand(live, "b")])
    for name in STRATEGIES:
        s = strategy(name, live, random.Random(0))
        assert s.name == name
        assert sorted(ids(s.order(group))) == ["a", "b"]
    with pytest.raises(ValueError, match="unknown routing strategy"):
        strategy("fastest", live)
