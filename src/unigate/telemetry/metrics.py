"""Prometheus metrics, fed from the usage ledger's batches so the request path pays nothing.

Counters lag by at most the ledger's flush interval (1 s). With `--workers N` each worker
exports its own series (scrape each, or sum by instance).
"""

from __future__ import annotations

from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from unigate.accounting.ledger import Ledger, UsageRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class _Group:
    """What one batch holds for one (model, provider, endpoint, status, stream)."""

    __slots__ = ("requests", "prompt", "completion", "cached", "cost", "unpriced", "disconnects", "latencies", "ttfbs")

    def __init__(self) -> None:
        self.requests = self.prompt = self.completion = self.cached = self.unpriced = self.disconnects = 0
        self.cost: float | None = None
        self.latencies: list[float] = []
        self.ttfbs: list[float] = []


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
        self.latency = Histogram("unigate_request_duration_seconds", "Time from dispatch to last byte",
                                 ("provider", "stream"), buckets=LATENCY_BUCKETS, registry=r)
        self.ttfb = Histogram("unigate_time_to_first_byte_seconds", "Streams: time to the upstream's first chunk",
                              ("provider",), buckets=LATENCY_BUCKETS, registry=r)
        self.disconnects = Counter("unigate_client_disconnects", "Streams the client left early", ("provider",), registry=r)
        dropped = Gauge("unigate_ledger_dropped_records", "Usage records dropped because the buffer was full", registry=r)
        dropped.set_function(lambda: ledger.dropped)
        self._children: dict[tuple[Any, ...], Any] = {}
        ledger.add_sink(self.observe)

    async def observe(self, batch: list[UsageRecord]) -> None:
        # Sum per label set first (one small key per record), then one update per series and
        # batch: prometheus_client takes a lock on every update.
        groups: dict[tuple[str, str, str, int, bool], _Group] = {}
        for rec in batch:
            key = (rec.model, rec.provider, rec.endpoint, rec.status, rec.stream)
            g = groups.get(key)
            if g is None:
                g = groups[key] = _Group()
            g.requests += 1
            if rec.usage_known:
                g.prompt += rec.prompt_tokens
                g.completion += rec.completion_tokens
                g.cached += rec.cached_tokens
            if rec.cost_usd is not None:
                g.cost = (g.cost or 0.0) + rec.cost_usd
            elif rec.status == 200 and rec.usage_known:
                g.unpriced += 1
            if rec.client_disconnected:
                g.disconnects += 1
            g.latencies.append(rec.latency_ms)
            if rec.ttfb_ms is not None:
                g.ttfbs.append(rec.ttfb_ms)
        for (m, p, endpoint, status, stream), g in groups.items():
            self._child(self.requests, m, p, endpoint, str(status)).inc(g.requests)
            for kind, n in (("prompt", g.prompt), ("completion", g.completion), ("cached", g.cached)):
                if n:
                    self._child(self.tokens, m, p, kind).inc(n)
            if g.cost is not None:  # a priced $0 (a local model) still shows its series
                self._child(self.cost, m, p).inc(g.cost)
            if g.unpriced:
                self._child(self.unpriced_calls, m, p).inc(g.unpriced)
            if g.disconnects:
                self._child(self.disconnects, p).inc(g.disconnects)
            observe = self._child(self.latency, p, "true" if stream else "false").observe
            for ms in g.latencies:
                observe(ms / 1000)
            if g.ttfbs:
                observe = self._child(self.ttfb, p).observe
                for ms in g.ttfbs:
                    observe(ms / 1000)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)
