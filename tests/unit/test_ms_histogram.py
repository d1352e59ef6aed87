"""MsHistogram (the metrics' own histogram) must export what prometheus_client's Histogram would
for the same observations: same bucket bounds (`le` inclusive), cumulative counts, sum, count."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from unigate.telemetry.metrics import LATENCY_BUCKETS, MsHistogram

# on a bound (le is inclusive), between bounds, below the first, above the last
VALUES_MS = [5.0, 0.1, 4.999, 5.001, 250.0, 999.9, 1000.0, 7_500.0, 300_000.0, 300_000.1, 1e9, 0.0]


def _samples(reg: CollectorRegistry) -> list[str]:
    return sorted(ln for ln in generate_latest(reg).decode().splitlines() if ln and "_created" not in ln)


def test_exports_what_prometheus_client_would() -> None:
    ours, ref = CollectorRegistry(), CollectorRegistry()
    h = MsHistogram("lat_seconds", "latency", ("provider", "stream"), LATENCY_BUCKETS, ours)
    r = Histogram("lat_seconds", "latency", ("provider", "stream"), buckets=LATENCY_BUCKETS, registry=ref)
    h.observe_ms(("p", "false"), VALUES_MS[:5])
    h.observe_ms(("p", "false"), VALUES_MS[5:])
    h.observe_ms(("q", "true"), [12.0])
    for v in VALUES_MS:
        r.labels("p", "false").observe(v / 1000)
    r.labels("q", "true").observe(0.012)
    got, want = _samples(ours), _samples(ref)
    # the sums differ only in float rounding (ms summed, then scaled once)
    assert [ln for ln in got if "_sum{" not in ln] == [ln for ln in want if "_sum{" not in ln]
    sums = [(float(a.rsplit(" ", 1)[1]), float(b.rsplit(" ", 1)[1])) for a, b in zip(got, want, strict=False) if "_sum{" in a]
    assert len(sums) == 2 and all(abs(a - b) <= 1e-9 * b for a, b in sums)
    assert 'lat_seconds_bucket{le="0.005",provider="p",stream="false"} 4.0' in got  # 0.0, 0.1, 4.999, 5.0
    assert 'lat_seconds_count{provider="p",stream="false"} 12.0' in got


def test_no_observation_no_series_and_an_empty_list_adds_nothing() -> None:
    reg = CollectorRegistry()
    h = MsHistogram("t_seconds", "ttfb", ("provider",), LATENCY_BUCKETS, reg)
    assert "t_seconds_count" not in generate_latest(reg).decode()
    h.observe_ms(("p",), [])
    text = generate_latest(reg).decode()
    assert 't_seconds_count{provider="p"} 0.0' in text and 't_seconds_sum{provider="p"} 0.0' in text
