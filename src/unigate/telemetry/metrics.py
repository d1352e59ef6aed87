"""Prometheus metrics, fed from the usage ledger's batches so the request path pays nothing, and
one view of the whole node under `--workers N` (decision 17 in docs/decisions.md).

Each worker sums its ledger's batches into plain dicts (counters, and histograms of
milliseconds) and, with several workers, publishes a snapshot of them to a file of its own in a
directory made for this run (node.py). A scrape on any worker flushes that worker's ledger, takes
its own snapshot live, reads the others' files and renders the merge: counters and histograms
summed, in-flight calls summed over the workers alive, a deployment's breaker the worst state any
live worker sees. A record reaches another worker's scrape within the ledger's flush interval plus
the publish interval (about 0.75 s).

Label values are bounded: a model or deployment gets its own series once an upstream served it
(a client chooses the name), key ids and teams the first MAX_KEY_LABELS / MAX_TEAM_LABELS seen;
everything past that is counted under "other". Key ids only, never key material.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from unigate.accounting.ledger import Ledger, UsageRecord

if TYPE_CHECKING:
    from unigate.pipeline import Gateway
    from unigate.telemetry.node import NodeShare

#: the label a model name gets until an upstream has served it (and past MAX_MODEL_LABELS)
OTHER_MODEL = OTHER = "other"
#: the key / team label of a call without one (the master key, no auth, a key without a team)
NONE = "none"
MAX_MODEL_LABELS = 1000
MAX_DEPLOYMENT_LABELS = 1000
MAX_KEY_LABELS = 200
MAX_TEAM_LABELS = 100
#: error codes come from the gateway and from what adapters read out of upstream errors
MAX_CODE_LABELS = 64

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

Labels = tuple[str, ...]
#: per label values: a count per bucket (the last one is +Inf, not cumulative), and the sum in ms
HistSeries = tuple[list[int], list[float]]


class MsHistogram:
    """A Prometheus histogram fed whole lists of milliseconds, exported in seconds.

    prometheus_client's Histogram takes a lock and walks its buckets in Python on every
    observe(); here one value costs a C bisect and a list increment (bench/: metrics were 15 %
    of the Python a JSON request runs). Only the ledger's flush task writes it, on the event
    loop that also serves the scrape, so it needs no lock."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float],
                 registry: CollectorRegistry | None = None) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        self._bounds_ms = tuple(b * 1000 for b in self.bounds)
        # floatToGoString (prometheus_client.utils) has no annotations; it returns the str label
        self.le: list[str] = [floatToGoString(b) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        self.series: dict[Labels, HistSeries] = {}
        if registry is not None:
            registry.register(self)

    def observe_ms(self, labels: Labels, values_ms: Sequence[float]) -> None:
        s = self.series.get(labels)
        if s is None:
            s = self.series[labels] = ([0] * (len(self.bounds) + 1), [0.0])
        counts, bounds = s[0], self._bounds_ms
        for v in values_ms:
            counts[bisect_left(bounds, v)] += 1  # le: the first bound >= v
        s[1][0] += sum(values_ms)

    def family(self, series: Iterable[tuple[Labels, Sequence[int], float]]) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, counts, total_ms in series:
            fam.add_metric(list(labels), list(zip(self.le, accumulate(counts), strict=False)), total_ms / 1000)
        return fam

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        yield self.family((labels, counts, total[0]) for labels, (counts, total) in self.series.items())


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    doc: str
    labels: Labels
    #: how the workers' values add up: "sum" (counters, in-flight) or "max" (a breaker's state)
    merge: str = "sum"


# counters, fed from the ledger (and the enforcer's refusals)
REQUESTS = Family("unigate_requests", "Upstream attempts, one per ledger row (a call that fell back counts each "
                  "attempt), by outcome", ("model", "provider", "deployment", "endpoint", "key", "team", "status"))
ERRORS = Family("unigate_errors", "Upstream attempts that failed, by HTTP status and error code",
                ("model", "provider", "deployment", "status", "code"))
TOKENS = Family("unigate_tokens", "Tokens by kind", ("model", "provider", "key", "team", "kind"))
COST = Family("unigate_cost_usd", "Cost of calls with a known price (USD)", ("model", "provider", "key", "team"))
UNPRICED = Family("unigate_unpriced_calls", "Successful calls whose model has no known price", ("model", "provider"))
DISCONNECTS = Family("unigate_client_disconnects", "Streams the client left early", ("provider",))
REFUSALS = Family("unigate_refusals", "Calls a virtual key's limits refused before any upstream: rate_limit_exceeded "
                  "and budget_exceeded (429), insufficient_credits (402), model_price_unknown (403)",
                  ("reason", "status"))
COUNTERS = (REQUESTS, ERRORS, TOKENS, COST, UNPRICED, DISCONNECTS, REFUSALS)
# gauges, read when a snapshot is taken
IN_FLIGHT = Family("unigate_in_flight_requests", "Calls waiting for or streaming from an upstream now", ())
BREAKER = Family("unigate_breaker_state", "A deployment's circuit breaker: 0 closed, 1 half-open, 2 open (the worst "
                 "state any worker sees)", ("deployment",), merge="max")
DROPPED = Family("unigate_ledger_dropped_records", "Usage records dropped because the buffer was full", ())
WORKERS = Family("unigate_metrics_workers", "Worker processes whose figures this scrape adds up", ())
GAUGES = (IN_FLIGHT, BREAKER, DROPPED, WORKERS)
BREAKER_VALUE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}

_series_key = attrgetter("model", "provider", "deployment", "endpoint", "status", "stream", "key_id", "team",
                         "error_code")
_prompt = attrgetter("prompt_tokens")
_completion = attrgetter("completion_tokens")
_cached = attrgetter("cached_tokens")
_cost = attrgetter("cost_usd")
_known = attrgetter("usage_known")
_gone = attrgetter("client_disconnected")
_latency = attrgetter("latency_ms")
_ttfb = attrgetter("ttfb_ms")
_TOKEN_KINDS = (("prompt", _prompt), ("completion", _completion), ("cached", _cached))


class _Bounded:
    """The label values one label may take: the first `limit` admitted, then "other"."""

    __slots__ = ("limit", "values")

    def __init__(self, limit: int) -> None:
        self.values: set[str] = set()
        self.limit = limit

    def admit(self, value: str) -> None:
        if value not in self.values and len(self.values) < self.limit:
            self.values.add(value)

    def label(self, value: str) -> str:
        return value if value in self.values else OTHER


Snapshot = dict[str, Any]


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, ledger: Ledger, gateway: Gateway | None = None, *, max_keys: int = MAX_KEY_LABELS,
                 max_teams: int = MAX_TEAM_LABELS) -> None:
        self.ledger, self.gateway = ledger, gateway
        self.counters: dict[str, dict[Labels, float]] = {f.name: {} for f in COUNTERS}
        self.latency = MsHistogram("unigate_request_duration_seconds", "Time from dispatch to last byte",
                                   ("provider", "stream"), LATENCY_BUCKETS)
        self.ttfb = MsHistogram("unigate_time_to_first_byte_seconds", "Streams: time to the upstream's first chunk",
                                ("provider",), LATENCY_BUCKETS)
        self.histograms = (self.latency, self.ttfb)
        #: model names and deployments a series may carry: those an upstream answered with a 2xx.
        #: Clients choose the name, so a name no upstream accepted (`openai/<random>` -> 404)
        #: must not make a series: 3,000 such names would be 24k exposition lines.
        self._models = _Bounded(MAX_MODEL_LABELS)
        self._deployments = _Bounded(MAX_DEPLOYMENT_LABELS)
        self._keys, self._teams, self._codes = _Bounded(max_keys), _Bounded(max_teams), _Bounded(MAX_CODE_LABELS)
        #: the other workers of this node, when there are any (node.py)
        self.node: NodeShare | None = None
        ledger.add_sink(self.observe)

    # ------------------------------------------------------------------ feeding (ledger batches)

    async def observe(self, batch: list[UsageRecord]) -> None:
        # Records are grouped per label set, then each group is summed with C-level map/sum
        # (no Python bytecode per record and field) and each series updated once.
        groups: dict[tuple[Any, ...], list[UsageRecord]] = {}
        models, deployments = self._models, self._deployments
        for rec in batch:
            key = _series_key(rec)
            g = groups.get(key)
            if g is None:
                groups[key] = [rec]
            else:
                g.append(rec)
            if 200 <= key[4] < 300:
                models.admit(key[0])
                deployments.admit(key[2])
        c = self.counters
        requests, errors, tokens, cost = c[REQUESTS.name], c[ERRORS.name], c[TOKENS.name], c[COST.name]
        unpriced, disconnects = c[UNPRICED.name], c[DISCONNECTS.name]
        for (model, p, dep, endpoint, status, stream, key_id, team, code), recs in groups.items():
            m, d = models.label(model), deployments.label(dep)
            k, t = self._bounded(self._keys, key_id), self._bounded(self._teams, team)
            s, n = str(status), len(recs)
            _add(requests, (m, p, d, str(endpoint), k, t, s), n)
            if status != 200 or code is not None:
                _add(errors, (m, p, d, s, self._bounded(self._codes, code) if code else NONE), n)
            for kind, field in _TOKEN_KINDS:
                total = sum(map(field, recs))
                if total:
                    _add(tokens, (m, p, k, t, kind), total)
            costs = [x for x in map(_cost, recs) if x is not None]
            if costs:  # a priced $0 (a local model) still shows its series
                _add(cost, (m, p, k, t), sum(costs))
            if status == 200:
                # a cost is only ever set on a record with usage, so the rest had no known price
                left = sum(map(_known, recs)) - len(costs)
                if left > 0:
                    _add(unpriced, (m, p), left)
            gone = sum(map(_gone, recs))
            if gone:
                _add(disconnects, (p,), gone)
            self.latency.observe_ms((p, "true" if stream else "false"), list(map(_latency, recs)))
            if stream:
                ttfbs = [x for x in map(_ttfb, recs) if x is not None]
                if ttfbs:
                    self.ttfb.observe_ms((p,), ttfbs)

    @staticmethod
    def _bounded(values: _Bounded, value: str | None) -> str:
        if value is None:
            return NONE
        values.admit(value)
        return values.label(value)

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> Snapshot:
        """This worker's figures as plain JSON values: what it publishes and what a scrape merges."""
        counters = {name: [[*labels, v] for labels, v in series.items()] for name, series in self.counters.items()}
        gw = self.gateway
        gauges: dict[str, list[list[Any]]] = {DROPPED.name: [[float(self.ledger.dropped)]]}
        if gw is not None:
            gauges[IN_FLIGHT.name] = [[float(gw.drain.open)]]
            gauges[BREAKER.name] = self._breakers(gw)
            enforcer = gw.enforcer
            if enforcer is not None and enforcer.refused:
                counters[REFUSALS.name] = [[code, str(status), float(n)] for (code, status), n in enforcer.refused.items()]
        return {"pid": os.getpid(), "counters": counters, "gauges": gauges,
                "histograms": {h.name: [[*labels, counts, total[0]] for labels, (counts, total) in h.series.items()]
                               for h in self.histograms}}

    def _breakers(self, gw: Gateway) -> list[list[Any]]:
        # the configured deployments, and those that served once (bounded either way)
        breakers = gw.router.breakers
        ids = {d.id for d in gw.router.group_deployments()} | self._deployments.values
        return [[dep_id, BREAKER_VALUE.get(breakers.state(dep_id).state.value, 0.0)] for dep_id in sorted(ids)]

    # ------------------------------------------------------------------ the scrape

    def handler(self) -> Callable[[web.Request], Awaitable[web.Response]]:
        """GET /metrics: on the gateway's port, or on `metrics.port` (server.py)."""

        async def metrics(request: web.Request) -> web.Response:
            await self.ledger.flush()  # a scrape sees every call this worker finished so far
            return web.Response(body=self.render(), headers={"Content-Type": self.content_type})

        return metrics

    def render(self) -> bytes:
        """The node's figures: this worker's, live, plus every other worker's last snapshot."""
        snaps = [(self.snapshot(), True)]
        if self.node is not None:
            snaps.extend(self.node.peers())
        return render(merge(snaps), self.histograms)


def _add(series: dict[Labels, float], labels: Labels, n: float) -> None:
    series[labels] = series.get(labels, 0) + n


@dataclass(slots=True)
class Merged:
    counters: dict[str, dict[Labels, float]]
    gauges: dict[str, dict[Labels, float]]
    histograms: dict[str, dict[Labels, tuple[list[int], float]]]


_MAX_MERGE = {f.name for f in GAUGES if f.merge == "max"}


def merge(snapshots: Iterable[tuple[Snapshot, bool]]) -> Merged:
    """Sum the workers' snapshots: counters and histograms of every worker that ever published (a
    worker that died keeps its counts: the node's counters must not go down when it is
    replaced), gauges only of the workers alive (`(snapshot, alive)`)."""
    out = Merged({}, {}, {})
    workers = 0
    for snap, alive in snapshots:
        for name, rows in snap.get("counters", {}).items():
            series = out.counters.setdefault(name, {})
            for row in rows:
                _add(series, tuple(row[:-1]), row[-1])
        for name, rows in snap.get("histograms", {}).items():
            hs = out.histograms.setdefault(name, {})
            for row in rows:
                labels, counts, total = tuple(row[:-2]), row[-2], row[-1]
                have = hs.get(labels)
                if have is None:
                    hs[labels] = (list(counts), total)
                elif len(have[0]) == len(counts):  # a snapshot with other buckets is not mixed in
                    hs[labels] = ([a + b for a, b in zip(have[0], counts, strict=True)], have[1] + total)
        if not alive:
            continue
        workers += 1
        for name, rows in snap.get("gauges", {}).items():
            gs = out.gauges.setdefault(name, {})
            pick: Callable[[float, float], float] = max if name in _MAX_MERGE else float.__add__
            for row in rows:
                labels, v = tuple(row[:-1]), float(row[-1])
                gs[labels] = pick(gs[labels], v) if labels in gs else v
    out.gauges[WORKERS.name] = {(): float(workers)}
    return out


def _esc(v: str) -> str:
    # the text format's escapes for a label value (most values need none)
    if "\\" in v or '"' in v or "\n" in v:
        v = v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return v


def _num(v: float) -> str:
    if v != v:
        return "NaN"
    if v in (_INF, -_INF):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


_INF = float("inf")


def _head(out: list[str], name: str, doc: str, kind: str) -> None:
    doc = doc.replace("\\", "\\\\").replace("\n", "\\n")
    out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")


def _lines(out: list[str], name: str, labelnames: Labels, series: Iterable[tuple[Labels, float]]) -> None:
    # label names in sorted order, as prometheus_client writes them (and as tests and people grep)
    order = sorted(range(len(labelnames)), key=labelnames.__getitem__)
    names = [labelnames[i] for i in order]
    for labels, v in series:
        if names:
            inner = ",".join(f'{n}="{_esc(labels[i])}"' for n, i in zip(names, order, strict=True))
            out.append(f"{name}{{{inner}}} {_num(v)}\n")
        else:
            out.append(f"{name} {_num(v)}\n")


def render(merged: Merged, histograms: Sequence[MsHistogram]) -> bytes:
    """The text exposition format (0.0.4), written here: prometheus_client's generate_latest
    spent 75 % of a 4-worker scrape on re-validating and escaping label names it was given
    (bench/metrics_node.py); the output is the same (label names sorted, counters as _total)."""
    out: list[str] = []
    for f in COUNTERS:
        _head(out, f.name + "_total", f.doc, "counter")
        _lines(out, f.name + "_total", f.labels, merged.counters.get(f.name, {}).items())
    for h in histograms:
        _head(out, h.name, h.documentation, "histogram")
        names = (*h.labelnames, "le")
        for labels, (counts, total) in merged.histograms.get(h.name, {}).items():
            _lines(out, h.name + "_bucket", names, (((*labels, le), float(c)) for le, c
                                                    in zip(h.le, accumulate(counts), strict=False)))
            _lines(out, h.name + "_count", h.labelnames, [(labels, float(sum(counts)))])
            _lines(out, h.name + "_sum", h.labelnames, [(labels, total / 1000)])
    for f in GAUGES:
        _head(out, f.name, f.doc, "gauge")
        _lines(out, f.name, f.labels, merged.gauges.get(f.name, {}).items())
    return "".join(out).encode()


#: where create_app leaves the worker's Metrics (server.py shares them between workers)
METRICS_KEY: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
