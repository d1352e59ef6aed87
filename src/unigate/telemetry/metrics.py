"""Prometheus metrics, fed from the usage ledger's batches so the request path pays nothing.

Counters lag by at most the ledger's flush interval (1 s). With `--workers N` each worker
exports its own series (scrape each, or sum by instance).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate
from operator import attrgetter
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from unigate.accounting.ledger import Ledger, UsageRecord

#: the label a model name gets until an upstream has served it (and past MAX_MODEL_LABELS)
OTHER_MODEL = "other"
MAX_MODEL_LABELS = 1000

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class MsHistogram:
    """A Prometheus histogram fed whole lists of milliseconds, exported in seconds.

    prometheus_client's Histogram takes a lock and walks its buckets in Python on every
    observe(); here one value costs a C bisect and a list increment (bench/: metrics were 15 %
    of the Python a JSON request runs). Only the ledger's flush task writes it, on the event
    loop that also serves the scrape, so it needs no lock."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float],
                 registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        self._bounds_ms = tuple(b * 1000 for b in self.bounds)
        # floatToGoString (prometheus_client.utils) has no annotations; it returns the str label
        self._le: list[str] = [floatToGoString(b) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        #: per label values: a count per bucket (the last one is +Inf, not cumulative), and the sum in ms
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}
        registry.register(self)

    def observe_ms(self, labels: tuple[str, ...], values_ms: Sequence[float]) -> None:
        s = self._series.get(labels)
        if s is None:
            s = self._series[labels] = ([0] * (len(self.bounds) + 1), [0.0])
        counts, bounds = s[0], self._bounds_ms
        for v in values_ms:
            counts[bisect_left(bounds, v)] += 1  # le: the first bound >= v
        s[1][0] += sum(values_ms)

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        fam = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, (counts, total) in self._series.items():
            fam.add_metric(list(labels), list(zip(self._le, accumulate(counts), strict=False)), total[0] / 1000)
        yield fam


_series_key = attrgetter("model", "provider", "endpoint", "status", "stream")
_prompt = attrgetter("prompt_tokens")
_completion = attrgetter("completion_tokens")
_cached = attrgetter("cached_tokens")
_cost = attrgetter("cost_usd")
_known = attrgetter("usage_known")
_gone = attrgetter("client_disconnected")
_latency = attrgetter("latency_ms")
_ttfb = attrgetter("ttfb_ms")


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, ledger: Ledger, unpriced: Callable[[], int] | None = None) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        labels = ("model", "provider", "endpoint", "status")
        self.requests = Counter("unigate_requests", "Calls that reached a provider", labels, registry=r)
        self.tokens = Counter("unigate_tokens", "Tokens by kind", ("model", "provider", "kind"), registry=r)
        self.cost = Counter("unigate_cost_usd", "Cost of calls with a known price (USD)", ("model", "provider"), registry=r)
        self.unpriced_calls = Counter("unigate_unpriced_calls", "Successful calls whose model has no known price",
                                      ("model", "provider"), registry=r)
        self.latency = MsHistogram("unigate_request_duration_seconds", "Time from dispatch to last byte",
                                   ("provider", "stream"), LATENCY_BUCKETS, r)
        self.ttfb = MsHistogram("unigate_time_to_first_byte_seconds", "Streams: time to the upstream's first chunk",
                                ("provider",), LATENCY_BUCKETS, r)
        self.disconnects = Counter("unigate_client_disconnects", "Streams the client left early", ("provider",), registry=r)
        dropped = Gauge("unigate_ledger_dropped_records", "Usage records dropped because the buffer was full", registry=r)
        dropped.set_function(lambda: ledger.dropped)
        self._children: dict[tuple[Any, ...], Any] = {}
        #: model names a series may carry: those an upstream has answered with a 2xx. Clients
        #: choose the name, so a name no upstream accepted (`openai/<random>` -> 404) must not
        #: make a series: 3,000 such names would be 24k exposition lines.
        self._models: set[str] = set()
        ledger.add_sink(self.observe)

    async def observe(self, batch: list[UsageRecord]) -> None:
        # Records are grouped per label set, then each group is summed with C-level map/sum
        # (no Python bytecode per record and field) and each series updated once:
        # prometheus_client takes a lock on every update.
        groups: dict[tuple[str, str, str, int, bool], list[UsageRecord]] = {}
        models = self._models
        for rec in batch:
            key = _series_key(rec)
            g = groups.get(key)
            if g is None:
                groups[key] = [rec]
            else:
                g.append(rec)
            if 200 <= key[3] < 300 and key[0] not in models and len(models) < MAX_MODEL_LABELS:
                models.add(key[0])
        for (m, p, endpoint, status, stream), recs in groups.items():
            if m not in models:
                m = OTHER_MODEL
            self._child(self.requests, m, p, endpoint, str(status)).inc(len(recs))
            for kind, field in (("prompt", _prompt), ("completion", _completion), ("cached", _cached)):
                n = sum(map(field, recs))
                if n:
                    self._child(self.tokens, m, p, kind).inc(n)
            costs = [c for c in map(_cost, recs) if c is not None]
            if costs:  # a priced $0 (a local model) still shows its series
                self._child(self.cost, m, p).inc(sum(costs))
            if status == 200:
                # a cost is only ever set on a record with usage, so the rest had no known price
                unpriced = sum(map(_known, recs)) - len(costs)
                if unpriced > 0:
                    self._child(self.unpriced_calls, m, p).inc(unpriced)
            gone = sum(map(_gone, recs))
            if gone:
                self._child(self.disconnects, p).inc(gone)
            self.latency.observe_ms((p, "true" if stream else "false"), list(map(_latency, recs)))
            if stream:
                ttfbs = [t for t in map(_ttfb, recs) if t is not None]
                if ttfbs:
                    self.ttfb.observe_ms((p,), ttfbs)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)
