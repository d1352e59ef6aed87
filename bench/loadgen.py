"""Runs the load generators, bounded, while watching the peer's processes.

`wrk()` runs wrk with one of the Lua scripts in bench/wrk/ and returns its UBENCH line plus
the peer's CPU time per request and its memory (max over samples taken during the run).
`probe()` runs bench/streamprobe.py the same way.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from procs import Procs, cpu_seconds, memory_kb, session_pids

HERE = Path(__file__).resolve().parent
WRK_DIR = HERE / "wrk"


@dataclass(frozen=True)
class Target:
    """Where a load goes: the URL, the request body file and whether it is a stream."""

    url: str
    body: Path
    stream: bool
    path2: str | None = None  # mixed.lua: path of the second (streamed) request
    body2: Path | None = None


class LoadError(RuntimeError):
    pass


def _watch(proc_alive: Callable[[], bool], pids: Sequence[int], every: float,
           on_sample: Callable[[float, int, int], None] | None = None) -> tuple[int, int]:
    """Sample the peer's memory until the load generator exits; returns the max (RSS, PSS) KiB."""
    max_rss = max_pss = 0
    t0 = time.monotonic()
    while proc_alive():
        rss, pss = memory_kb(pids) if pids else (0, 0)
        max_rss, max_pss = max(max_rss, rss), max(max_pss, pss)
        if on_sample is not None:
            on_sample(time.monotonic() - t0, rss, pss)
        time.sleep(every)
    return max_rss, max_pss


def wrk(procs: Procs, target: Target, *, key: str, conns: int, duration: int, peer_sid: int | None,
        script: str = "post.lua", sample_every: float = 0.5,
        on_sample: Callable[[float, int, int], None] | None = None) -> dict[str, float]:
    """One bounded wrk run (`wrk -t1 -c<conns> -d<duration>s`). Raises LoadError when wrk fails
    or prints no result."""
    env = dict(os.environ)
    env.update(UBENCH_BODY=str(target.body), UBENCH_KEY=key, UBENCH_SSE="1" if target.stream else "0", UBENCH_WRK=str(WRK_DIR))
    if target.body2 is not None:
        env["UBENCH_BODY2"] = str(target.body2)
    if target.path2 is not None:
        env["UBENCH_PATH2"] = target.path2
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "10s", "-s", str(WRK_DIR / script), target.url]
    pids = session_pids(peer_sid) if peer_sid else []
    cpu0 = cpu_seconds(pids)
    p = procs.spawn_bounded("wrk", argv, env=env)
    max_rss, max_pss = _watch(p.alive, pids, sample_every, on_sample)
    rc, out, err = procs.finish(p, timeout=duration + 30)
    cpu = cpu_seconds(pids) - cpu0
    line = next((ln for ln in out.splitlines() if ln.startswith("UBENCH ")), None)
    if rc != 0 or line is None:
        raise LoadError(f"wrk failed (rc {rc}) on {target.url}: {err.strip()[-500:] or out.strip()[-500:]}")
    res: dict[str, float] = json.loads(line[len("UBENCH ") :])
    res["errors"] = sum(res[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
    res["conns"] = conns
    res["peer_cpu_s"] = round(cpu, 3)
    res["cpu_ms_per_req"] = round(cpu * 1000 / res["requests"], 4) if res["requests"] else float("nan")
    res["rss_max_kb"] = max_rss
    res["pss_max_kb"] = max_pss
    return res


def probe(procs: Procs, target: Target, *, key: str, concurrency: int, duration: float,
          expect_events: int, peer_sid: int | None, stall_ms: float = 500.0) -> dict[str, object]:
    """One bounded run of bench/streamprobe.py."""
    argv = [sys.executable, str(HERE / "streamprobe.py"), "--url", target.url, "--body", str(target.body),
            "--key", key, "--concurrency", str(concurrency), "--duration", str(duration),
            "--expect-events", str(expect_events), "--stall-ms", str(stall_ms)]
    pids = session_pids(peer_sid) if peer_sid else []
    p = procs.spawn_bounded("streamprobe", argv)
    max_rss, max_pss = _watch(p.alive, pids, 0.5)
    rc, out, err = procs.finish(p, timeout=duration + 60)
    try:
        res: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise LoadError(f"streamprobe failed (rc {rc}) on {target.url}: {err.strip()[-800:]}") from None
    res["rss_max_kb"] = max_rss
    res["pss_max_kb"] = max_pss
    return res
