"""Where the Python of one request goes: bytecodes executed per request, per function, for the
floor and unigate, and the difference.

bench/cost.py gives instructions per request, but under callgrind CPython is one big eval loop:
it says how much, not where. Here each peer runs under a `sys.settrace` opcode tracer that a
signal switches on for the measured requests only; every executed bytecode is counted against
its function. The count is exact and repeatable (the same code and input give the same count),
so a change to the hot path shows as a per-function difference.

    .venv/bin/python bench/opcount.py                                  # floor and unigate, JSON
    .venv/bin/python bench/opcount.py --modes json,stream --top 40

Per peer and mode: start it with the tracer installed (off), send `--warmup` requests, switch it
on (SIGUSR1), send `--requests` requests over `--conns` keep-alive connections against the
instant nginx mock (every answer checked), switch it off (SIGUSR1: the counts are written), stop
the peer. The tracer makes the peer ~20x slower; counts do not depend on speed, except for work
that runs on a timer (the ledger's flush), which is counted whenever it falls in the window.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------- inside the traced peer

def serve(dump: str, argv: list[str]) -> None:
    """Run `argv` (a Python script, optionally after the interpreter) in this process, with the
    tracer on SIGUSR1: the first signal starts counting, the second writes the counts to `dump`."""
    counts: Counter[tuple[str, str]] = Counter()
    on = False

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            co = frame.f_code
            counts[(co.co_filename, co.co_name)] += 1
        return local

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        return local

    def toggle(signum: int, frame: FrameType | None) -> None:
        nonlocal on
        if not on:
            counts.clear()
            on = True
            sys.settrace(on_call)  # the event loop runs in this (the main) thread
            return
        sys.settrace(None)
        on = False
        Path(dump).write_text(json.dumps([[f, n, c] for (f, n), c in counts.most_common()]))

    signal.signal(signal.SIGUSR1, toggle)
    if Path(argv[0]).name.startswith("python"):
        argv = argv[1:]
    sys.argv = argv
    sys.path.insert(0, str(Path(argv[0]).resolve().parent))
    runpy.run_path(argv[0], run_name="__main__")


# ---------------------------------------------------------------- the driver

def measure(peer: str, modes: list[str], a: argparse.Namespace, work: Path) -> dict[str, dict[tuple[str, str], float]]:
    from cost import drive, request_of
    from peers import Rig
    from procs import Procs

    procs = Procs()
    from run import key_fields

    rig = Rig(procs, work, a.unigate_cmd.split(), getattr(a, "unigate_group", None),
              key_fields(getattr(a, "unigate_key", None)), getattr(a, "unigate_client", None))
    out: dict[str, dict[tuple[str, str], float]] = {}
    try:
        rig.start_mocks(50.0, 10.0)
        dump = work / f"{peer}.ops.json"
        p = rig.start_peer(peer, wrap=[sys.executable, str(Path(__file__).resolve()), "--serve", str(dump), "--"],
                           ready_timeout=120)
        assert p.proc is not None
        for mode in modes:
            path, body, expect = request_of(rig, peer, mode)
            drive(p.port, path, body, a.warmup, a.conns, expect, key=rig.key_for(peer))
            dump.unlink(missing_ok=True)
            os.kill(p.proc.pid, signal.SIGUSR1)
            time.sleep(0.2)
            drive(p.port, path, body, a.requests, a.conns, expect, key=rig.key_for(peer))
            os.kill(p.proc.pid, signal.SIGUSR1)
            deadline = time.monotonic() + 30
            while not dump.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            if not dump.exists():
                raise RuntimeError(f"{peer} wrote no counts\n{p.proc.log_tail()}")
            time.sleep(0.2)  # the write is one call; let it finish
            out[mode] = {(_short(f), n): c / a.requests for f, n, c in json.loads(dump.read_text())}
            print(f"{peer} {mode}: {sum(out[mode].values()):,.0f} bytecodes per request", file=sys.stderr, flush=True)
    finally:
        procs.stop_all()
    return out


def _short(filename: str) -> str:
    for cut in ("site-packages/", "/src/", "/bench/", "/lib/python3."):
        if cut in filename:
            rest = filename.split(cut, 1)[1]
            return rest.split("/", 1)[1] if cut == "/lib/python3." and "/" in rest else rest
    return filename


def _package(fn: str) -> str:
    if fn.startswith("unigate/"):
        return fn
    return fn.split("/", 1)[0] if "/" in fn else fn


def report(res: dict[str, dict[str, dict[tuple[str, str], float]]], modes: list[str], top: int) -> None:
    peers = list(res)
    for mode in modes:
        tables = {p: res[p][mode] for p in peers if mode in res[p]}
        print(f"\n### {mode}: Python bytecodes per request\n")
        print("| " + " | ".join(peers) + " |")
        print("|" + "---:|" * len(peers))
        print("| " + " | ".join(f"{sum(t.values()):,.0f}" for t in tables.values()) + " |")
        if len(tables) != 2:
            continue
        (pa, a), (pb, b) = tables.items()
        by_a: Counter[str] = Counter()
        by_b: Counter[str] = Counter()
        for (f, _), c in a.items():
            by_a[_package(f)] += c
        for (f, _), c in b.items():
            by_b[_package(f)] += c
        print(f"\nBy module or package ({pb} − {pa}):\n")
        print(f"| {pa} | {pb} | difference | where |\n|---:|---:|---:|---|")
        for k in sorted(set(by_a) | set(by_b), key=lambda k: -(by_b[k] - by_a[k])):
            if abs(by_b[k] - by_a[k]) >= 1:
                print(f"| {by_a[k]:,.0f} | {by_b[k]:,.0f} | {by_b[k] - by_a[k]:+,.0f} | `{k}` |")
        print(f"\nTop {top} functions by difference:\n")
        print(f"| {pa} | {pb} | difference | function |\n|---:|---:|---:|---|")
        keys = sorted(set(a) | set(b), key=lambda k: -abs(b.get(k, 0) - a.get(k, 0)))
        for k in keys[:top]:
            print(f"| {a.get(k, 0):,.0f} | {b.get(k, 0):,.0f} | {b.get(k, 0) - a.get(k, 0):+,.0f} | `{k[0]}:{k[1]}` |")


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        dump, rest = sys.argv[2], sys.argv[3:]
        serve(dump, rest[1:] if rest[:1] == ["--"] else rest)
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", default="floor,unigate", help="two peers: the table shows the second minus the first")
    ap.add_argument("--modes", default="json")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--conns", type=int, default=10)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--unigate-cmd", default=str(HERE.parent / ".venv" / "bin" / "unigate"))
    ap.add_argument("--unigate-key", metavar="FIELDS", help="load unigate with a virtual key (as run.py's)")
    ap.add_argument("--unigate-client", choices=("aiohttp", "lean"), help="unigate's server.upstream_client")
    a = ap.parse_args()
    sys.path.insert(0, str(HERE))
    modes = a.modes.split(",")
    res: dict[str, dict[str, dict[tuple[str, str], float]]] = {}
    with tempfile.TemporaryDirectory(prefix="unigate-opcount-") as d:
        work = Path(d)
        work.chmod(0o755)  # nginx workers read the mock bodies from here
        for peer in a.peers.split(","):
            (work / peer).mkdir()
            (work / peer).chmod(0o755)
            res[peer] = measure(peer, modes, a, work / peer)
    report(res, modes, a.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
