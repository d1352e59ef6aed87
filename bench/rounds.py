"""Interleaved rounds with fresh processes: the measurement that cannot flatter (issue 15).

Each round runs `bench/run.py --rounds 1` once per configuration, so every peer (floor, unigate,
the mocks) is a fresh process in every round, and the configurations take turns (their order
rotates from round to round), so a slow hour hits them all alike. The ratio unigate ÷ floor is
taken within each invocation; the report shows every round, the median, the worst round and the
spread, never the best run alone.

    .venv/bin/python bench/rounds.py --rounds 5                                # plain, JSON + stream
    .venv/bin/python bench/rounds.py --rounds 3 --configs plain,key,group,key+group --lat

Configurations (what unigate is loaded with; the floor is always the same):
    plain      master key, one deployment per model, the SQLite usage ledger (as every run)
    key        + a virtual key with rpm and budget_usd (bench/run.py --unigate-key)
    group      every model a two-deployment lowest-latency group with breakers (--unigate-group)
    key+group  both
Output: a markdown report on stdout; every invocation's results stay in bench/out/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY = "rpm=1000000,budget_usd=100000"
CONFIGS: dict[str, list[str]] = {
    "plain": [],
    "key": ["--unigate-key", KEY],
    "group": ["--unigate-group", "lowest-latency"],
    "key+group": ["--unigate-key", KEY, "--unigate-group", "lowest-latency"],
}


def invoke(config: str, a: argparse.Namespace) -> Path:
    """One run.py invocation (fresh processes); the path of its results file."""
    phases = a.phases or ("tput,lat" if a.lat else "tput")
    out = a.out / config.replace("+", "-")
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.glob("results-*.jsonl"))
    cmd = [sys.executable, str(HERE / "run.py"), "--peers", "floor,unigate", "--phases", phases, "--rounds", "1",
           "--duration", str(a.duration), "--out", str(out), *CONFIGS[config]]
    if a.unigate_cmd:
        cmd += ["--unigate-cmd", a.unigate_cmd]
    if a.pin:
        cmd.append("--pin")
    if a.slices > 1:
        cmd += ["--slices", str(a.slices)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=1800)
    new = sorted(set(out.glob("results-*.jsonl")) - before)
    if not new:
        raise RuntimeError(f"bench/run.py wrote no results for {config}")
    return new[-1]


def figures(path: Path) -> dict[str, float]:
    """unigate ÷ floor requests/s per mode, CPU per request ÷ floor's, and added p50/p99 (ms) at
    each latency concurrency (wrk's whole-request latency, and the streams' time to first event),
    from one invocation's results."""
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    tput = {(r["mode"], r["peer"]): r for r in recs if r.get("phase") == "tput"}
    lat = {(r["mode"], r.get("conns"), r["peer"]): r for r in recs if r.get("phase") == "lat"}
    out: dict[str, float] = {}
    for mode in ("json", "stream"):
        f, u = tput.get((mode, "floor")), tput.get((mode, "unigate"))
        if f and u and f.get("rps") and not u.get("errors"):
            out[f"{mode} ratio"] = u["rps"] / f["rps"]
            out[f"{mode} floor rps"] = f["rps"]
            if f.get("cpu_ms_per_req") and u.get("cpu_ms_per_req"):
                out[f"{mode} cpu ratio"] = u["cpu_ms_per_req"] / f["cpu_ms_per_req"]
            for peer, r in (("floor", f), ("unigate", u)):
                # where the peer ran and what the scheduler did to it: the slow-mode hunt's figures
                for k, name in (("sched_wait_us_per_req", "runqueue wait us/req"), ("share_cpu_with_wrk", "share of CPU with wrk"),
                                ("share_cpu_with_mock", "share of CPU with mock"), ("sched_migrations", "migrations"),
                                ("sched_ivcsw_per_kreq", "preempted /1k req"), ("steal_pct", "steal %")):
                    if r.get(k) is not None:
                        out[f"{mode} {peer} {name}"] = float(r[k])
    for (mode, conns, peer), r in lat.items():
        d = lat.get((mode, conns, "direct"))
        if peer in ("unigate", "floor") and d:
            for q in ("p50", "p99"):
                out[f"{peer} added {q} {mode} c{conns} ms"] = (r[f"{q}_us"] - d[f"{q}_us"]) / 1000
    ttfb = {(r.get("conns"), r["peer"]): r for r in recs if r.get("phase") == "ttfb"}
    for (conns, peer), r in ttfb.items():
        d = ttfb.get((conns, "direct"))
        if peer in ("unigate", "floor") and d:
            for q in ("p50", "p99"):
                out[f"{peer} added ttfb {q} c{conns} ms"] = r[f"ttfb_{q}_ms"] - d[f"ttfb_{q}_ms"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--configs", default="plain", help=f"comma-separated, from {','.join(CONFIGS)}")
    ap.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    ap.add_argument("--lat", action="store_true", help="also the latency phase (added p50/p99 at c1 and c10)")
    ap.add_argument("--phases", help="bench/run.py's phases instead (e.g. lat alone)")
    ap.add_argument("--unigate-cmd", help="as bench/run.py's")
    ap.add_argument("--pin", action="store_true", help="as bench/run.py's (taskset placement)")
    ap.add_argument("--slices", type=int, default=1, help="as bench/run.py's (peers take turns in slices)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "rounds")
    a = ap.parse_args()
    configs = [c for c in a.configs.split(",") if c]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        print(f"rounds: unknown configuration {', '.join(unknown)}", file=sys.stderr)
        return 2
    got: dict[str, list[dict[str, float]]] = {c: [] for c in configs}
    for rnd in range(a.rounds):
        order = configs[rnd % len(configs):] + configs[:rnd % len(configs)]
        for c in order:
            path = invoke(c, a)
            got[c].append(figures(path))
            print(f"round {rnd + 1} {c}: " + ", ".join(f"{k} {v:.3f}" for k, v in got[c][-1].items()
                                                         if "ratio" in k), file=sys.stderr, flush=True)
    print(report(got))
    return 0


def report(got: dict[str, list[dict[str, float]]]) -> str:
    lines = ["| configuration | figure | every round (in order) | median | worst | spread |", "|---|---|---|---:|---:|---:|"]
    for c, rounds in got.items():
        names: list[str] = []
        for r in rounds:
            names += [k for k in r if k not in names and "floor rps" not in k]
        for name in names:
            vals = [r[name] for r in rounds if name in r]
            if not vals:
                continue
            # a ratio of requests/s is worst at its lowest; a time, a CPU cost or a scheduler count at its highest
            worst = min(vals) if name.endswith(" ratio") and "cpu" not in name else max(vals)
            lines.append(f"| {c} | {name} | {' '.join(f'{v:.2f}' for v in vals)} | **{statistics.median(vals):.2f}** "
                         f"| {worst:.2f} | {max(vals) - min(vals):.2f} |")
        floor = [r["json floor rps"] for r in rounds if "json floor rps" in r]
        if floor:
            lines.append(f"| {c} | floor JSON req/s | {' '.join(f'{v:.0f}' for v in floor)} | {statistics.median(floor):.0f} "
                         f"| | {max(floor) - min(floor):.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
