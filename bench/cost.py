"""Per-request CPU cost that does not move with the machine's load: user-space instructions
(valgrind's callgrind) and system calls (strace) per request, for the floor and unigate.

wrk's requests/s on this shared VM moves 20-40 % within minutes; an instruction count is the
same for the same code and input whatever else the machine does. So hot-path changes are
compared here first (before/after, and ÷ floor), then confirmed with bench/run.py.

    .venv/bin/python bench/cost.py                           # floor and unigate, JSON and stream
    .venv/bin/python bench/cost.py --peers unigate --modes json --requests 500 --tool callgrind

Per peer: start it under the tool (callgrind: instrumentation off until the warm-up is done), send
`--warmup` requests, zero the counters, send `--requests` requests over `--conns` keep-alive
connections against the instant nginx mock, read the counters. Every answer is checked (HTTP 200
and the full body). Figures are totals ÷ requests; they include the event loop, aiohttp and the
interpreter, i.e. everything the process does per request, except the kernel's work (strace
counts the calls into it).
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import payloads
from peers import KEY, Rig
from procs import Procs
from run import key_fields


def drive(port: int, path: str, body: bytes, n: int, conns: int, expect_len: int, key: str = KEY) -> None:
    """Send n requests over `conns` keep-alive connections (threads); every answer must be a 200
    with the expected body length."""
    errors: list[str] = []
    per = [n // conns + (1 if i < n % conns else 0) for i in range(conns)]
    hdrs = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

    def worker(count: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            for _ in range(count):
                conn.request("POST", path, body=body, headers=hdrs)
                r = conn.getresponse()
                data = r.read()
                if r.status != 200 or len(data) != expect_len:
                    errors.append(f"HTTP {r.status}, {len(data)} bytes: {data[:200]!r}")
                    return
        except (OSError, http.client.HTTPException) as e:
            errors.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(c,)) for c in per if c]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} failed connections, first: {errors[0]}")


def request_of(rig: Rig, peer: str, mode: str) -> tuple[str, bytes, int]:
    """The path, body and expected answer length of one `mode` ("json" or "stream") request
    through `peer` to the instant mock (every peer relays the mock's bytes unchanged)."""
    stream = mode == "stream"
    t = rig.target(peer, "fast", stream)
    expect = len(payloads.sse_stream() if stream else payloads.completion_json())
    return "/" + t.url.split("/", 3)[3], t.body.read_bytes(), expect


def callgrind_events(path: Path) -> dict[str, int]:
    """The dump's totals by event: Ir (instructions), and with --cache-sim also the simulated
    cache misses (I1mr D1mr D1mw ILmr DLmr DLmw) and branch mispredictions (Bcm Bim)."""
    text = path.read_text(errors="replace")
    names = re.search(r"^events:\s*(.+)$", text, re.M)
    m = re.search(r"^(?:summary|totals):\s*([\d ]+)$", text, re.M)
    if not m or not names:
        raise RuntimeError(f"no totals in {path}")
    return dict(zip(names.group(1).split(), (int(x) for x in m.group(1).split()), strict=False))


def callgrind_total(path: Path) -> int:
    return callgrind_events(path)["Ir"]


def control(args: list[str]) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=120)


def strace_counts(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] not in ("total",) and parts[3].isdigit():
            out[parts[-1]] = int(parts[3])
    return out


def measure(rig: Rig, procs: Procs, peer: str, tool: str, modes: list[str], a: argparse.Namespace,
            work: Path) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    wrap: list[str] = []
    if tool == "callgrind":
        wrap = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={work}/{peer}.cg.%p"]
        if a.cache_sim:
            wrap[2:2] = ["--cache-sim=yes", "--branch-sim=yes"]
    p = rig.start_peer(peer, wrap=wrap, ready_timeout=600 if tool == "callgrind" else 30)
    assert p.proc is not None
    pid = p.proc.pid
    try:
        for mode in modes:
            path, body, expect = request_of(rig, peer, mode)
            key = rig.key_for(peer)
            drive(p.port, path, body, a.warmup, a.conns, expect, key=key)
            rec: dict[str, Any] = {"peer": peer, "mode": mode, "tool": tool, "requests": a.requests, "conns": a.conns}
            if tool == "callgrind":
                for f in work.glob(f"{peer}.cg.*"):
                    f.unlink()
                control(["--instr=on", str(pid)])
                control(["--zero", str(pid)])
                drive(p.port, path, body, a.requests, a.conns, expect, key=key)
                control(["--dump", str(pid)])
                control(["--instr=off", str(pid)])
                dumps = sorted(work.glob(f"{peer}.cg.*"), key=lambda f: f.stat().st_mtime)
                if not dumps:
                    raise RuntimeError("callgrind wrote no dump")
                ev = callgrind_events(dumps[-1])
                total = ev["Ir"]
                rec["instructions_per_request"] = round(total / a.requests)
                if a.cache_sim:
                    # valgrind's model of this CPU's caches (the host's sizes), per request: the
                    # instruction cache, the data cache and the last level, and mispredicted branches
                    per = {"I1 misses": ev["I1mr"], "D1 misses": ev["D1mr"] + ev["D1mw"],
                           "LL misses": ev["ILmr"] + ev["DLmr"] + ev["DLmw"], "branch misses": ev["Bcm"] + ev["Bim"]}
                    rec.update({k: round(v / a.requests) for k, v in per.items()})
                if a.save:
                    a.save.mkdir(parents=True, exist_ok=True)
                    shutil.copy(dumps[-1], a.save / f"callgrind-{peer}-{mode}.out")
                if a.annotate:
                    ann = subprocess.run(["callgrind_annotate", "--inclusive=no", str(dumps[-1])],
                                         capture_output=True, text=True, timeout=300).stdout
                    fns = [ln for ln in ann.splitlines() if re.match(r"^\s*[\d,]+ \(", ln)]
                    print(f"--- {peer} {mode}: top functions by own instructions", *fns[: a.annotate], sep="\n")
            else:
                out = work / f"{peer}-{mode}.strace"
                st = subprocess.Popen(["strace", "-f", "-c", "-o", str(out), "-p", str(pid)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                time.sleep(1.0)  # strace attaches to every thread before the load starts
                drive(p.port, path, body, a.requests, a.conns, expect, key=key)
                st.send_signal(signal.SIGINT)
                st.wait(timeout=30)
                counts = strace_counts(out.read_text())
                total = sum(counts.values())
                rec["syscalls_per_request"] = round(total / a.requests, 2)
                rec["by_syscall"] = {k: round(v / a.requests, 2) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:8]}
            results.append(rec)
            print(rec, flush=True)
    finally:
        procs.stop(p.proc)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", default="floor,unigate")
    ap.add_argument("--modes", default="json,stream")
    ap.add_argument("--tool", default="callgrind,strace", help="callgrind, strace or both (comma-separated)")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--cache-sim", action="store_true",
                    help="callgrind: also simulated cache misses and branch mispredictions per request")
    ap.add_argument("--save", type=Path, help="callgrind: keep each dump in this directory (for callgrind_annotate)")
    ap.add_argument("--annotate", type=int, default=0, metavar="N", help="callgrind: print the top N functions")
    ap.add_argument("--unigate-cmd", default=str(HERE.parent / ".venv" / "bin" / "unigate"))
    ap.add_argument("--unigate-group", metavar="STRATEGY",
                    help="serve each model through a two-deployment group with this routing strategy")
    ap.add_argument("--unigate-key", metavar="FIELDS", help="load unigate with a virtual key (as run.py's)")
    ap.add_argument("--unigate-client", choices=("aiohttp", "lean"), help="unigate's server.upstream_client")
    a = ap.parse_args()
    procs = Procs()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="unigate-cost-") as d:
        work = Path(d)
        work.chmod(0o755)  # nginx workers read the mock bodies from here
        rig = Rig(procs, work, a.unigate_cmd.split(), a.unigate_group, key_fields(a.unigate_key), a.unigate_client)
        try:
            rig.start_mocks(50.0, 10.0)
            for tool in a.tool.split(","):
                for peer in a.peers.split(","):
                    rows += measure(rig, procs, peer, tool, a.modes.split(","), a, work)
        finally:
            procs.stop_all()
    sim = ("I1 misses", "D1 misses", "LL misses", "branch misses") if a.cache_sim else ()
    print()
    print("| peer | mode | instructions/request | syscalls/request |" + "".join(f" {k}/request |" for k in sim))
    print("|---|---|---:|---:|" + "---:|" * len(sim))
    keyed: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        keyed.setdefault((r["peer"], r["mode"]), {}).update(r)
    for (peer, mode), r in keyed.items():
        ins = r.get("instructions_per_request")
        sc = r.get("syscalls_per_request")
        extra = "".join(f" {r[k]:,} |" if k in r else " – |" for k in sim)
        print(f"| {peer} | {mode} | {'–' if ins is None else f'{ins:,}'} | {'–' if sc is None else sc} |{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
