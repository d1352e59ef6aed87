"""Prometheus metrics, fed from the usage ledger's batches so the request path pays nothing.

Counters lag by at most the ledger's flush interval (1 s). With `--workers N` each worker
exports its own series (scrape each, or sum by instance).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from unigate.accounting.ledger import Ledger, UsageRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


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
        # Sum per label set first: one locked update per series and batch, not per record.
        counts: dict[tuple[Any, ...], float] = defaultdict(float)
        for rec in batch:
            m, p = rec.model, rec.provider
            counts[(self.requests, m, p, rec.endpoint, str(rec.status))] += 1
            if rec.usage_known:
                if rec.prompt_tokens:
                    counts[(self.tokens, m, p, "prompt")] += rec.prompt_tokens
                if rec.completion_tokens:
                    counts[(self.tokens, m, p, "completion")] += rec.completion_tokens
                if rec.cached_tokens:
                    counts[(self.tokens, m, p, "cached")] += rec.cached_tokens
            if rec.cost_usd is not None:
                counts[(self.cost, m, p)] += rec.cost_usd
            elif rec.status == 200 and rec.usage_known:
                counts[(self.unpriced_calls, m, p)] += 1
            if rec.client_disconnected:
                counts[(self.disconnects, p)] += 1
            self._child(self.latency, p, "true" if rec.stream else "false").observe(rec.latency_ms / 1000)
            if rec.ttfb_ms is not None:
                self._child(self.ttfb, p).observe(rec.ttfb_ms / 1000)
        for (metric, *labels), n in counts.items():
            self._child(metric, *labels).inc(n)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)
