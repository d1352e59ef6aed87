"""What one node's metrics cost: prometheus_client's multiprocess mode against the workers'
snapshots (telemetry/node.py), for decision 17 in docs/decisions.md.

    python bench/metrics_node.py [--series 3000] [--workers 4]

Neither is on the request path (both are fed from the ledger's batches); what differs is the cost
of one update from a batch, of a worker's publish, and of a scrape that merges the workers. Runs
in a few seconds; each figure is the best of 5 repetitions."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

LABELS = ("model", "provider", "deployment", "endpoint", "key", "team", "status")


def best(fn: Callable[[], object], n: int = 5) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def label_sets(series: int) -> list[tuple[str, ...]]:
    return [(f"m{i % 50}", "openai", f"d{i % 50}", "chat", f"k{i // 50 % 100}", f"t{i % 7}", "200")
            for i in range(series)]


def multiprocess(series: int, workers: int) -> None:
    """In a child: PROMETHEUS_MULTIPROC_DIR must be set before prometheus_client is imported."""
    d = tempfile.mkdtemp(prefix="prom-mp-")
    code = f"""
import os, time, sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from metrics_node import best, label_sets
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
sets = label_sets({series})
# the same families and series the snapshots export
c = Counter("unigate_requests", "x", {LABELS!r})
tok = Counter("unigate_tokens", "x", ("model", "provider", "key", "team", "kind"))
cost = Counter("unigate_cost_usd", "x", ("model", "provider", "key", "team"))
h = Histogram("unigate_request_duration_seconds", "x", ("provider", "stream"))
hk = h.labels("openai", "false")
kids = [(c.labels(*s), tok.labels(s[0], s[1], s[4], s[5], "prompt"), tok.labels(s[0], s[1], s[4], s[5], "completion"),
         cost.labels(s[0], s[1], s[4], s[5])) for s in sets]
def feed():
    for a, b, c2, d in kids:
        a.inc(); b.inc(10); c2.inc(5); d.inc(1e-5); hk.observe(0.12)
t = best(feed)
print(f"multiprocess: one record of a batch, every series {{t / len(kids) * 1e6:6.2f}} us")
"""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": d}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    # the other workers: copies of this one's files under other pids' names
    files = os.listdir(d)
    for w in range(1, workers):
        for f in files:
            head = f.rpartition("_")[0]
            with open(os.path.join(d, f), "rb") as src, open(os.path.join(d, f"{head}_{900000 + w}.db"), "wb") as dst:
                dst.write(src.read())
    code = f"""
import time, sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from metrics_node import best
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
def scrape():
    r = CollectorRegistry()
    multiprocess.MultiProcessCollector(r)
    return generate_latest(r)
t = best(scrape)
print(f"multiprocess: a scrape merging {workers} workers            {{t * 1000:6.1f}} ms ({{len(scrape())}} bytes)")
"""
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def snapshots(series: int, workers: int) -> None:
    import orjson

    from unigate.accounting.ledger import Ledger, UsageRecord
    from unigate.telemetry.metrics import Metrics, merge, render

    m = Metrics(Ledger(), max_keys=100)
    sets = label_sets(series)
    batch = []
    for s in sets:
        r = UsageRecord(request_id="r", endpoint="chat", model=s[0], key_id=s[4], deployment=s[2], provider="openai",
                        status=200)
        r.team, r.latency_ms = s[5], 120.0
        r.set_usage({"prompt_tokens": 10, "completion_tokens": 5})
        r.cost_usd, r.priced = 1e-5, True
        batch.append(r)
    import asyncio

    t = best(lambda: asyncio.run(m.observe(batch)))
    print(f"snapshots:    one record of a batch, every series {t / len(batch) * 1e6:6.2f} us")
    data = orjson.dumps(m.snapshot())
    t = best(lambda: orjson.dumps(m.snapshot()))
    print(f"snapshots:    a worker's publish (snapshot+JSON)  {t * 1000:6.1f} ms ({len(data)} bytes), every 0.5 s")
    snaps = [(orjson.loads(data), True) for _ in range(workers)]
    t = best(lambda: render(merge(snaps), m.histograms))
    t_read = best(lambda: [orjson.loads(data) for _ in range(workers)])
    print(f"snapshots:    a scrape merging {workers} workers            {(t + t_read) * 1000:6.1f} ms "
          f"({len(render(merge(snaps), m.histograms))} bytes)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=4)
    a = ap.parse_args()
    print(f"{a.series} request series, {a.workers} workers")
    multiprocess(a.series, a.workers)
    snapshots(a.series, a.workers)


if __name__ == "__main__":
    main()
