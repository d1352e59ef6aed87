"""unigate's load benchmark, in one command (loopback only, every load bounded):

    .venv/bin/python bench/run.py                 # full run: ~21 min with the 10-minute soak
    .venv/bin/python bench/run.py --quick         # smoke run, a few seconds per phase
    .venv/bin/python bench/run.py --check         # self-test of the harness at tiny durations
    .venv/bin/python bench/run.py --peers direct,floor,unigate --phases tput,lat --rounds 3
    .venv/bin/python bench/run.py --profile unigate --phases start   # py-spy under load only

It starts two mock upstreams (nginx, instant; aiohttp, paced), then each peer (direct, floor,
floor2, unigate, unigate2; see peers.py), measures the phases in phases.py round by round,
prints markdown tables with the ratios and the performance issue's targets, and appends every
result as a JSON line to bench/out/results-<time>.jsonl (bench/out/check-<time>.jsonl for
--check). Everything it starts runs in its own process group and is stopped on exit, error or
Ctrl-C. Needs `nginx` and `wrk` (Debian packages) and the project venv.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import phases
import report
from loadgen import LoadError
from peers import ALL_PEERS, Rig, StartError
from procs import Procs, session_pids

ALL_PHASES = ("start", "tput", "lat", "ttfb", "hold", "soak")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="short smoke run: a few seconds per phase, 30-s soak")
    mode.add_argument("--check", action="store_true", help="self-test: every phase at tiny durations, then verify the results")
    ap.add_argument("--peers", default="direct,floor,unigate,unigate2", help=f"comma-separated, from {','.join(ALL_PEERS)}")
    ap.add_argument("--phases", default=",".join(ALL_PHASES), help=f"comma-separated, from {','.join(ALL_PHASES)}")
    ap.add_argument("--rounds", type=int, default=1, help="repeat tput/lat/ttfb/hold; tables show medians")
    ap.add_argument("--duration", type=int, help="seconds per measured run (tput, lat, ttfb, hold); default 15")
    ap.add_argument("--conns", type=int, default=50, help="wrk connections in the throughput phase")
    ap.add_argument("--slices", type=int, default=1,
                    help="throughput: cut each peer's measured time in this many slices, the peers taking turns "
                         "(A B B A ...), so a change in the machine's speed meets every peer alike")
    ap.add_argument("--lat-conns", default="1,10", help="connection counts of the latency and TTFB phases")
    ap.add_argument("--streams", type=int, default=100, help="concurrent streams in the hold phase")
    ap.add_argument("--soak", type=float, help="soak minutes (default 10; 0.5 with --quick)")
    ap.add_argument("--soak-peers", default="unigate", help="peers to soak, comma-separated")
    ap.add_argument("--profile", default="", help="peers to profile with py-spy under saturation, comma-separated")
    ap.add_argument("--profile-duration", type=int, default=10)
    ap.add_argument("--ttfb-ms", type=float, default=50.0, help="the paced mock's time to first byte")
    ap.add_argument("--gap-ms", type=float, default=10.0, help="the paced mock's time between SSE events")
    ap.add_argument("--unigate-cmd", help="command that runs unigate (default: the venv's `unigate`)")
    ap.add_argument("--unigate-group", metavar="STRATEGY",
                    help="serve each model through a two-deployment group with this routing strategy")
    ap.add_argument("--unigate-key", metavar="FIELDS",
                    help="load unigate with a virtual key of these fields, e.g. rpm=1000000,budget_usd=100000 "
                         "(made through its admin API; the default is the master key, which skips enforcement)")
    ap.add_argument("--out", type=Path, default=HERE / "out", help="where results-*.jsonl and report-*.md go")
    ap.add_argument("--keep", action="store_true", help="keep the run directory (configs, logs) even on success")
    ap.add_argument("--pin", action="store_true",
                    help="keep the peer under test on CPU 1 and wrk and the mocks on CPU 0 (taskset): the same "
                         "placement for every peer and round")
    return ap.parse_args(argv)


def settings_for(a: argparse.Namespace) -> phases.Settings:
    s = phases.Settings(conns=a.conns, tput_slices=a.slices, lat_conns=tuple(int(c) for c in a.lat_conns.split(",")), hold_streams=a.streams,
                        profile_s=a.profile_duration)
    if a.quick:
        s.tput_s, s.tput_warm_s, s.lat_s, s.lat_warm_s, s.ttfb_s, s.hold_s = 3, 1, 3, 1, 3.0, 3.0
        s.soak_s, s.soak_sample_s, s.profile_s = 30.0, 2.0, min(a.profile_duration, 3)
    if a.check:
        s.tput_s, s.tput_warm_s, s.lat_s, s.lat_warm_s, s.ttfb_s, s.hold_s = 1, 0, 1, 0, 1.0, 2.0
        s.soak_s, s.soak_sample_s, s.profile_s = 6.0, 1.0, 1
    if a.duration:
        s.tput_s = s.lat_s = a.duration
        s.ttfb_s = s.hold_s = float(a.duration)
    if a.soak is not None:
        s.soak_s = a.soak * 60
    return s


def machine() -> dict[str, Any]:
    def cmd(*argv: str) -> str:
        try:
            r = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            return "?"

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "?")
    mem_kb = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")))
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for pkg in ("unigate", "aiohttp", "uvloop", "orjson", "msgspec"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {"kind": "machine", "nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem_kb / 1048576, 1),
            "kernel": platform.release(), "python": platform.python_version(), "nginx": cmd("nginx", "-v"),
            "wrk": cmd("wrk", "-v"), "loadavg_start": os.getloadavg(), **versions}


def check_results(recs: list[dict[str, Any]], peers: list[str], a: argparse.Namespace, s: phases.Settings,
                  sids: list[int]) -> list[str]:
    """--check: every phase produced sane numbers for every peer, and nothing was left running."""
    bad: list[str] = []
    want_phases = a.phases.split(",")

    def find(phase: str, peer: str, **kw: Any) -> list[dict[str, Any]]:
        return [r for r in recs if r.get("phase") == phase and r.get("peer") == peer and all(r.get(k) == v for k, v in kw.items())]

    for peer in peers:
        if "start" in want_phases and peer != "direct" and not find("start", peer):
            bad.append(f"no start-up record for {peer}")
        for mode in ("json", "stream"):
            for phase, conns_list in (("tput", [s.conns]), ("lat", list(s.lat_conns))):
                if phase not in want_phases:
                    continue
                for c in conns_list:
                    rs = find(phase, peer, mode=mode, conns=c)
                    if not rs:
                        bad.append(f"{phase} {mode} c{c} {peer}: no result")
                    for r in rs:
                        if r["requests"] <= 0 or r["errors"] or not r["rps"] > 0:
                            bad.append(f"{phase} {mode} c{c} {peer}: {r['requests']} requests, {r['errors']} errors")
        for phase in ("ttfb", "hold"):
            if phase in want_phases:
                rs = find(phase, peer)
                if not rs:
                    bad.append(f"{phase} {peer}: no result")
                for r in rs:
                    if not r["complete"] or r["incomplete"] or r.get("ttfb_p99_ms") is None:
                        bad.append(f"{phase} c{r['conns']} {peer}: {r['complete']} complete, {r['incomplete']} incomplete {r['errors_sample']}")
    if "soak" in want_phases and s.soak_s > 0:
        for peer in a.soak_peers.split(","):
            rs = find("soak", peer)
            if not rs or rs[0]["requests"] <= 0 or rs[0]["errors"] or rs[0]["rss_growth_pct"] is None:
                bad.append(f"soak {peer}: {rs[0] if rs else 'no result'}")
    for peer in filter(None, a.profile.split(",")):
        for mode in ("json", "stream"):
            rs = find("profile", peer, mode=mode)
            if not rs or not rs[0].get("samples"):
                bad.append(f"profile {peer} {mode}: {rs[0].get('error') if rs else 'no result'}")
    res = report.Results(recs)
    for t in report.targets(res):
        if t["unigate"] is None:
            bad.append(f"target row without a value: {t['check']}")
    if not report.tables(res).strip():
        bad.append("no tables")
    left = [pid for sid in sids for pid in session_pids(sid)]
    if left:
        bad.append(f"processes left running after the run: {left}")
    return bad


def key_fields(spec: str | None) -> dict[str, Any] | None:
    """"rpm=100,budget_usd=5" -> {"rpm": 100, "budget_usd": 5.0}."""
    if spec is None:
        return None
    out: dict[str, Any] = {}
    for part in spec.split(","):
        name, _, value = part.partition("=")
        out[name.strip()] = json.loads(value) if value.strip() not in ("daily", "weekly", "monthly", "total") else value.strip()
    return out


def _raise_interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.check:
        a.profile = a.profile or ("unigate" if "unigate" in a.peers.split(",") else "")
    peers = [p for p in a.peers.split(",") if p]
    unknown = [p for p in peers if p not in ALL_PEERS] + [p for p in a.phases.split(",") if p not in ALL_PHASES]
    if unknown:
        print(f"bench: unknown peer or phase: {', '.join(unknown)}", file=sys.stderr)
        return 2
    if "direct" not in peers:
        peers.insert(0, "direct")  # every "added" figure needs the baseline
    need_floor = {"floor2": "floor", "unigate2": "unigate"}
    for p, base in need_floor.items():
        if p in peers and base not in peers:
            print(f"bench: note: {p} without {base} gives no 2-worker ratio", file=sys.stderr)
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"bench: `{tool}` is not on PATH (apt-get install -y nginx wrk)", file=sys.stderr)
            return 2
    venv_unigate = Path(sys.executable).parent / "unigate"
    unigate_cmd = a.unigate_cmd.split() if a.unigate_cmd else ([str(venv_unigate)] if venv_unigate.exists() else [sys.executable, "-m", "unigate"])
    s = settings_for(a)
    want = set(a.phases.split(","))

    a.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    jsonl = a.out / f"{'check' if a.check else 'results'}-{stamp}.jsonl"
    rundir = Path(tempfile.mkdtemp(prefix="unigate-bench-"))
    rundir.chmod(0o755)
    recs: list[dict[str, Any]] = []

    def emit(rec: dict[str, Any]) -> None:
        rec = {"run": stamp, **rec, "loadavg": [round(x, 2) for x in os.getloadavg()]}
        recs.append(rec)
        with jsonl.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    where = {"floor": "1", "unigate": "1", "wrk": "0", "nginx-mock": "0", "slow-mock": "0", "streamprobe": "0"}
    procs = Procs(where if a.pin else None)
    sids: list[int] = []
    old = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    rc = 0
    try:
        m = machine()
        emit({**m, "args": vars(a) | {"out": str(a.out)}, "settings": vars(s)})
        print(f"bench: {m['nproc']} x {m['cpu']}, {m['mem_gib']} GiB, load {m['loadavg_start']}; results -> {jsonl}", file=sys.stderr)
        rig = Rig(procs, rundir, unigate_cmd, a.unigate_group, key_fields(a.unigate_key))
        rig.start_mocks(a.ttfb_ms, a.gap_ms)
        sids += [p.pid for p in rig.mocks]
        for p in peers:
            peer = rig.start_peer(p)
            if peer.proc is not None:
                sids.append(peer.proc.pid)
                emit({"phase": "start", "peer": p, **peer.info})
        for rnd in range(a.rounds):
            if "tput" in want:
                phases.throughput(rig, s, peers, rnd, emit)
            if "lat" in want:
                phases.latency(rig, s, peers, rnd, emit)
            if "ttfb" in want:
                phases.ttfb(rig, s, peers, rnd, emit)
            if "hold" in want:
                phases.hold(rig, s, peers, rnd, emit)
        if "soak" in want and s.soak_s > 0:
            for p in a.soak_peers.split(","):
                if p in rig.peers and p != "direct":
                    phases.soak(rig, s, p, emit)
        for p in filter(None, a.profile.split(",")):
            if p in rig.peers and p != "direct":
                phases.profile(rig, s, p, a.out, emit, tag=stamp)
        emit({"kind": "end", "loadavg_end": os.getloadavg()})
    except KeyboardInterrupt:
        print("\nbench: interrupted; stopping everything it started", file=sys.stderr)
        rc = 130
    except (StartError, LoadError, OSError) as e:
        print(f"bench: failed: {e}", file=sys.stderr)
        rc = 1
    finally:
        # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        procs.stop_all()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig, h in old.items():
            signal.signal(sig, h)
    res = report.Results(recs)
    md = report.tables(res)
    if md:
        print(md)
        (a.out / f"{'check' if a.check else 'report'}-{stamp}.md").write_text(md + "\n")
        summary = {"kind": "summary", "targets": report.targets(res),
                   "ratios": [dict(zip(("ratio", "json", "stream"), r)) for r in report.ratios(res)]}
        with jsonl.open("a") as f:
            f.write(json.dumps({"run": stamp, **summary}) + "\n")
    if a.check and rc == 0:
        problems = check_results(recs, peers, a, s, sids)
        for p in problems:
            print(f"check: FAIL {p}", file=sys.stderr)
        print(f"check: {'OK' if not problems else f'{len(problems)} problem(s)'} ({jsonl})", file=sys.stderr)
        rc = 1 if problems else 0
    if rc != 1 and not a.keep:
        shutil.rmtree(rundir, ignore_errors=True)
    else:
        print(f"bench: configs and logs kept in {rundir}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
