"""Markdown tables, ratios and the issue's targets from the records of a run.

Every figure is the median over rounds. "Added" figures and ratios are computed within each
round first (peer minus direct, unigate over floor, measured minutes apart) and then the median
of those is taken, so that a slow hour on the shared machine moves both sides together.

    python bench/report.py bench/out/results-*.jsonl     # re-print the tables of saved runs
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from stats import median

Rec = dict[str, Any]


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000


def fmt(v: Any, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


class Results:
    def __init__(self, records: Iterable[Rec]) -> None:
        self.recs = [r for r in records if "phase" in r]
        order = ("direct", "floor", "floor2", "unigate", "unigate2")
        seen = {r["peer"] for r in self.recs}
        self.peers = [p for p in order if p in seen] + sorted(seen - set(order))

    def _match(self, phase: str, peer: str, mode: str | None, conns: int | None) -> list[Rec]:
        return [r for r in self.recs if r["phase"] == phase and r["peer"] == peer
                and (mode is None or r.get("mode") == mode) and (conns is None or r.get("conns") == conns)]

    def by_round(self, phase: str, peer: str, field: str, mode: str | None = None, conns: int | None = None) -> dict[Any, float]:
        # keyed by (run, round): pooled runs never pair a peer with another run's baseline
        return {(r.get("run"), r.get("round", 0)): r[field] for r in self._match(phase, peer, mode, conns) if r.get(field) is not None}

    def med(self, phase: str, peer: str, field: str, mode: str | None = None, conns: int | None = None) -> float | None:
        return median(self.by_round(phase, peer, field, mode, conns).values())

    def diff(self, phase: str, peer: str, base: str, field: str, mode: str | None, conns: int | None) -> float | None:
        a, b = self.by_round(phase, peer, field, mode, conns), self.by_round(phase, base, field, mode, conns)
        return median(a[k] - b[k] for k in a if k in b)

    def ratio(self, phase: str, peer: str, base: str, field: str, mode: str | None, conns: int | None = None) -> float | None:
        a, b = self.by_round(phase, peer, field, mode, conns), self.by_round(phase, base, field, mode, conns)
        return median(a[k] / b[k] for k in a if b.get(k))

    def added(self, phase: str, peer: str, field: str, mode: str | None, conns: int | None) -> float | None:
        """peer minus direct (None for direct itself)."""
        return None if peer == "direct" else self.diff(phase, peer, "direct", field, mode, conns)

    def has(self, phase: str, peer: str | None = None) -> bool:
        return any(r["phase"] == phase and (peer is None or r["peer"] == peer) for r in self.recs)

    def conns_of(self, phase: str) -> list[int]:
        return sorted({r["conns"] for r in self.recs if r["phase"] == phase and "conns" in r})


def _i(v: float | None) -> int | None:
    """A count (a median over rounds may be x.5; shown rounded)."""
    return None if v is None else round(v)


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], right_from: int = 1) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i < right_from else "---:" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return "\n".join(out)


def tables(res: Results) -> str:
    parts: list[str] = []
    P = res.peers
    rows: list[list[Any]]
    if res.has("start"):
        rows = [[p, _i(res.med("start", p, "processes")), res.med("start", p, "ready_s"),
                 (res.med("start", p, "idle_rss_kb") or 0) / 1024, (res.med("start", p, "idle_pss_kb") or 0) / 1024]
                for p in P if res.has("start", p) and p != "direct"]
        parts.append("### Start-up and idle memory\n\n" + _table(
            ["peer", "processes", "/health ready after (s)", "idle RSS (MB)", "idle PSS (MB)"], rows))
    if res.has("tput"):
        rows = []
        for mode in ("json", "stream"):
            for p in P:
                if not res._match("tput", p, mode, None):
                    continue
                g = partial(res.med, "tput", p, mode=mode)
                rows.append([p, mode, g("rps"), res.ratio("tput", p, "floor", "rps", mode) if "floor" in P else None,
                             _ms(g("p50_us")), _ms(g("p90_us")), _ms(g("p99_us")), g("cpu_ms_per_req"),
                             (g("rss_max_kb") or 0) / 1024, (g("pss_max_kb") or 0) / 1024, _i(g("errors"))])
        conns = res.conns_of("tput")
        parts.append(f"### Throughput: instant nginx mock, wrk -t1 -c{','.join(map(str, conns))}\n\n" + _table(
            ["peer", "mode", "req/s", "÷ floor", "p50 ms", "p90 ms", "p99 ms", "CPU ms/req", "RSS MB", "PSS MB", "errors"],
            rows, right_from=2) + "\n\n(CPU and memory of the peer's process tree; for `direct` they are the nginx mock's.)")
    if res.has("lat"):
        rows = []
        for c in res.conns_of("lat"):
            for mode in ("json", "stream"):
                for p in P:
                    if not res._match("lat", p, mode, c):
                        continue
                    g = partial(res.med, "lat", p, mode=mode, conns=c)
                    add = partial(res.added, "lat", p, mode=mode, conns=c)
                    rows.append([p, mode, c, _ms(g("p50_us")), _ms(g("p90_us")), _ms(g("p99_us")),
                                 _ms(add("p50_us")), _ms(add("p99_us")), g("rps"), _i(g("errors"))])
        parts.append("### Latency: paced mock (50 ms to first byte, 10 ms between events), wrk -t1\n\n" + _table(
            ["peer", "mode", "conns", "p50 ms", "p90 ms", "p99 ms", "added p50 ms", "added p99 ms", "req/s", "errors"],
            rows, right_from=2) + "\n\n(A stream's latency is to its last byte: 50 ms + 33 × 10 ms on the mock.)")
    if res.has("ttfb"):
        rows = []
        for c in res.conns_of("ttfb"):
            for p in P:
                if not res._match("ttfb", p, None, c):
                    continue
                g = partial(res.med, "ttfb", p, mode=None, conns=c)
                add = partial(res.added, "ttfb", p, mode=None, conns=c)
                rows.append([p, c, g("ttfb_p50_ms"), g("ttfb_p90_ms"), g("ttfb_p99_ms"), add("ttfb_p50_ms"), add("ttfb_p99_ms"),
                             g("total_p50_ms"), _i(g("complete")), _i(g("incomplete"))])
        parts.append("### Time to first byte of a stream: paced mock, streamprobe\n\n" + _table(
            ["peer", "conns", "TTFB p50 ms", "p90 ms", "p99 ms", "added p50 ms", "added p99 ms", "total p50 ms",
             "streams", "incomplete"], rows))
    if res.has("hold"):
        rows = []
        for p in P:
            if not res.has("hold", p):
                continue
            g = partial(res.med, "hold", p)
            rows.append([p, _i(g("concurrency")), _i(g("streams")), _i(g("complete")), _i(g("stalled")), g("streams_per_s"),
                         g("gap_p50_ms"), g("gap_p99_ms"), g("gap_max_ms"), g("total_p50_ms"), g("total_max_ms")])
        parts.append("### Concurrent streams held: paced mock, streamprobe\n\n" + _table(
            ["peer", "concurrent", "streams", "complete", "stalled", "streams/s", "max gap p50 ms", "max gap p99 ms",
             "worst gap ms", "stream p50 ms", "slowest stream ms"], rows)
            + "\n\n(Gap: the longest wait between two reads of one stream; the mock sends an event every 10 ms. "
            "Stalled: a gap over the stall threshold, or an incomplete stream.)")
    if res.has("soak"):
        rows = []
        for r in res.recs:
            if r["phase"] == "soak":
                rows.append([r["peer"], r["soak_s"] / 60, r["warm_s"], r["requests"], r["rps"], _i(r["errors"]),
                             r["rss_warm_kb"] / 1024, r["rss_end_kb"] / 1024, r["rss_max_kb"] / 1024, r["rss_growth_pct"]])
        parts.append("### Memory soak: paced mock, wrk mixed.lua (plain and streamed requests in turn)\n\n" + _table(
            ["peer", "minutes", "warm-up s", "requests", "req/s", "errors", "RSS after warm-up MB", "RSS at end MB",
             "RSS max MB", "growth %"], rows))
    ratio_rows = ratios(res)
    if ratio_rows:
        parts.append("### Ratios (each computed within a round, then the median over rounds)\n\n"
                     + _table(["ratio", "json", "stream"], ratio_rows))
    targets_md = targets_table(res)
    if targets_md:
        parts.append(targets_md)
    for r in res.recs:
        if r["phase"] == "profile" and r.get("self"):
            import pyspy_top

            parts.append(pyspy_top.markdown(r, f"py-spy, {r['peer']} {r['mode']} at saturation "
                                                f"({fmt(r.get('rps_under_profiler'), 0)} req/s under the profiler)"))
    return "\n\n".join(parts)


def ratios(res: Results) -> list[list[Any]]:
    rows = []
    for label, phase, a, b, field in (
        ("unigate ÷ floor, req/s at saturation", "tput", "unigate", "floor", "rps"),
        ("unigate ÷ floor, CPU ms per request", "tput", "unigate", "floor", "cpu_ms_per_req"),
        ("unigate2 ÷ unigate, req/s (2 workers ÷ 1)", "tput", "unigate2", "unigate", "rps"),
        ("floor2 ÷ floor, req/s (2 workers ÷ 1)", "tput", "floor2", "floor", "rps"),
        ("unigate2 ÷ floor2, req/s", "tput", "unigate2", "floor2", "rps"),
        ("direct ÷ unigate, req/s (the mock's headroom)", "tput", "direct", "unigate", "rps"),
    ):
        if res.has(phase, a) and res.has(phase, b):
            rows.append([label, res.ratio(phase, a, b, field, "json"), res.ratio(phase, a, b, field, "stream")])
    return rows


def targets(res: Results) -> list[dict[str, Any]]:
    """The issue's "Done when" checks: (what, target, unigate's value, the floor's, ok)."""
    rows: list[dict[str, Any]] = []

    def add(what: str, target: str, value: float | None, floor: float | None, ok: bool | None) -> None:
        rows.append({"check": what, "target": target, "unigate": value, "floor": floor, "ok": ok})

    def le(v: float | None, lim: float) -> bool | None:
        return None if v is None else v <= lim

    def ge(v: float | None, lim: float) -> bool | None:
        return None if v is None else v >= lim

    if res.has("tput", "unigate") and res.has("tput", "floor"):
        r = res.ratio("tput", "unigate", "floor", "rps", "json")
        add("1 worker JSON req/s ÷ floor (auth + ledger on)", "≥ 0.75", r, 1.0, ge(r, 0.75))
        p99 = _ms(res.med("tput", "unigate", "p99_us", "json"))
        add("  p99 at that load (ms)", "< 30", p99, _ms(res.med("tput", "floor", "p99_us", "json")), None if p99 is None else p99 < 30)
        r = res.ratio("tput", "unigate", "floor", "rps", "stream")
        add("streams/s ÷ floor", "≥ 0.75", r, 1.0, ge(r, 0.75))
    for c, lim50, lim99 in ((1, 1.0, 2.0), (10, 1.5, 4.0)):
        if res.has("lat", "unigate") and c in res.conns_of("lat"):
            for q, lim in (("p50", lim50), ("p99", lim99)):
                v = _ms(res.diff("lat", "unigate", "direct", f"{q}_us", "json", c))
                fl = _ms(res.diff("lat", "floor", "direct", f"{q}_us", "json", c)) if res.has("lat", "floor") else None
                add(f"added latency c{c} {q}, JSON (ms)", f"≤ {lim:g}", v, fl, le(v, lim))
    for c in res.conns_of("ttfb"):
        if res.has("ttfb", "unigate"):
            v = res.diff("ttfb", "unigate", "direct", "ttfb_p99_ms", None, c)
            fl = res.diff("ttfb", "floor", "direct", "ttfb_p99_ms", None, c) if res.has("ttfb", "floor") else None
            add(f"added stream TTFB p99, c{c} (ms)", "≤ 2", v, fl, le(v, 2.0))
    for peer in ("unigate", "unigate2"):
        if res.has("hold", peer):
            v = _i(res.med("hold", peer, "stalled"))
            label = "" if peer == "unigate" else " (2 workers)"
            add(f"{res.med('hold', peer, 'concurrency'):.0f} concurrent streams: stalled or incomplete{label}", "0", v,
                _i(res.med("hold", "floor", "stalled")), None if v is None else v == 0)
    if res.has("tput", "unigate2") and res.has("tput", "unigate"):
        r = res.ratio("tput", "unigate2", "unigate", "rps", "json")
        fl = res.ratio("tput", "floor2", "floor", "rps", "json") if res.has("tput", "floor2") else None
        add("2 workers ÷ 1 worker JSON req/s", "≥ 1.5", r, fl, ge(r, 1.5))
    if res.has("start", "unigate"):
        v = (res.med("start", "unigate", "idle_rss_kb") or 0) / 1024
        add("idle RSS, 1 worker, no local model (MB)", "≤ 80", v, (res.med("start", "floor", "idle_rss_kb") or 0) / 1024, le(v, 80))
    if res.has("soak", "unigate"):
        v = res.med("soak", "unigate", "rss_growth_pct")
        add("soak: RSS end vs after warm-up (%)", "≤ 5", v, res.med("soak", "floor", "rss_growth_pct"), le(v, 5.0))
    if res.has("start", "unigate"):
        v = res.med("start", "unigate", "ready_s")
        add("/health/ready after process start (s)", "≤ 1", v, res.med("start", "floor", "ready_s"), le(v, 1.0))
    return rows


def targets_table(res: Results) -> str:
    rows = targets(res)
    if not rows:
        return ""
    verdict = {True: "met", False: "**MISSED**", None: "–"}
    body = [[r["check"], r["target"], r["unigate"], r["floor"], verdict[r["ok"]]] for r in rows]
    return "### The performance issue's targets (unigate measured next to the floor in the same run)\n\n" + _table(
        ["check", "target", "unigate", "floor (reference)", "verdict"], body, right_from=2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    a = ap.parse_args()
    recs: list[Rec] = []
    for f in a.files:
        recs += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    print(tables(Results(recs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
