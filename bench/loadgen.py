"""Runs the load generators, bounded, while watching the peer's processes.

`wrk()` runs wrk with one of the Lua scripts in bench/wrk/ and returns its UBENCH line plus
the peer's CPU time per request and its memory (max over samples taken during the run).
`probe()` runs bench/streamprobe.py the same way.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from procs import Procs, busiest_cpu, cpu_seconds, machine_ticks, memory_kb, sched_counts, session_pids

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


@dataclass
class Placement:
    """Where the peer's busiest thread ran, sampled next to the load generator's and the mock's."""

    samples: int = 0
    with_wrk: int = 0
    with_mock: int = 0
    cpus: dict[int, int] = field(default_factory=dict)

    def take(self, peer: Sequence[int], wrk: Sequence[int], mock: Sequence[int]) -> None:
        c = busiest_cpu(peer)
        if c is None:
            return
        self.samples += 1
        self.cpus[c] = self.cpus.get(c, 0) + 1
        self.with_wrk += c == busiest_cpu(wrk)
        self.with_mock += bool(mock) and c == busiest_cpu(mock)


def _watch(proc_alive: Callable[[], bool], pids: Sequence[int], every: float,
           on_sample: Callable[[float, int, int], None] | None = None,
           placement: tuple[Placement, Sequence[int], Sequence[int]] | None = None) -> tuple[int, int]:
    """Sample the peer's memory (and where it runs) until the load generator exits; returns the
    max (RSS, PSS) KiB."""
    max_rss = max_pss = 0
    t0 = time.monotonic()
    while proc_alive():
        rss, pss = memory_kb(pids) if pids else (0, 0)
        max_rss, max_pss = max(max_rss, rss), max(max_pss, pss)
        if on_sample is not None:
            on_sample(time.monotonic() - t0, rss, pss)
        if placement is not None and pids:
            placement[0].take(pids, *placement[1:])
        time.sleep(every)
    return max_rss, max_pss


def wrk(procs: Procs, target: Target, *, key: str, conns: int, duration: int, peer_sid: int | None,
        script: str = "post.lua", sample_every: float = 0.5,
        on_sample: Callable[[float, int, int], None] | None = None, mock_sid: int | None = None) -> dict[str, float]:
    """One bounded wrk run (`wrk -t1 -c<conns> -d<duration>s`). Raises LoadError when wrk fails
    or prints no result. With the mock's session, also where the peer ran (sampled every
    `sample_every`) and what the scheduler did to it (per request)."""
    env = dict(os.environ)
    env.update(UBENCH_BODY=str(target.body), UBENCH_KEY=key, UBENCH_SSE="1" if target.stream else "0", UBENCH_WRK=str(WRK_DIR))
    if target.body2 is not None:
        env["UBENCH_BODY2"] = str(target.body2)
    if target.path2 is not None:
        env["UBENCH_PATH2"] = target.path2
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "10s", "-s", str(WRK_DIR / script), target.url]
    pids = session_pids(peer_sid) if peer_sid else []
    cpu0, sched0, ticks0 = cpu_seconds(pids), sched_counts(pids), machine_ticks()
    p = procs.spawn_bounded("wrk", argv, env=env)
    place = Placement() if mock_sid is not None else None
    mock = session_pids(mock_sid) if mock_sid is not None else []
    max_rss, max_pss = _watch(p.alive, pids, sample_every, on_sample, (place, [p.pid], mock) if place else None)
    rc, out, err = procs.finish(p, timeout=duration + 30)
    cpu = cpu_seconds(pids) - cpu0
    sched = {k: v - sched0[k] for k, v in sched_counts(pids).items()}
    ticks = machine_ticks()
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
    if place is not None and res["requests"] and pids:
        n = res["requests"]
        res["sched_run_us_per_req"] = round(sched["run_ns"] / 1000 / n, 2)
        res["sched_wait_us_per_req"] = round(sched["wait_ns"] / 1000 / n, 2)
        res["sched_ivcsw_per_kreq"] = round(sched["ivcsw"] * 1000 / n, 2)
        res["sched_vcsw_per_req"] = round(sched["vcsw"] / n, 3)
        res["sched_migrations"] = sched["migrations"]
        # the VM's CPUs taken by the host during this run: a slow round with a high share is the machine's
        res["steal_pct"] = round(100 * (ticks[0] - ticks0[0]) / max(ticks[1] - ticks0[1], 1), 2)
        if place.samples:
            res["share_cpu_with_wrk"] = round(place.with_wrk / place.samples, 3)
            res["share_cpu_with_mock"] = round(place.with_mock / place.samples, 3)
            res["cpu_samples"] = {str(k): v for k, v in sorted(place.cpus.items())}  # type: ignore[assignment]
    return res


def combine(parts: Sequence[dict[str, float]]) -> dict[str, float]:
    """Several wrk runs of one peer (the slices of a sliced throughput run) as one: requests,
    time, errors and CPU add up; per-request scheduler figures are weighted by requests, the
    steal share by time; a latency percentile is the median of the slices' (wrk's histograms are
    not kept). `slices_rps` lists each slice, so a slow stretch stays visible."""
    n = sum(p["requests"] for p in parts)
    secs = sum(p["duration_s"] for p in parts)
    out: dict[str, float] = dict(parts[-1])
    for k in ("requests", "bytes", "errors", "peer_cpu_s", "sched_migrations",
              "err_connect", "err_read", "err_write", "err_status", "err_timeout"):
        if k in parts[0]:
            out[k] = sum(p[k] for p in parts)
    out["duration_s"] = round(secs, 3)
    out["rps"] = round(n / secs, 2) if secs else 0.0
    out["peer_cpu_s"] = round(out.get("peer_cpu_s", 0.0), 3)
    out["cpu_ms_per_req"] = round(out["peer_cpu_s"] * 1000 / n, 4) if n else float("nan")
    for k in ("p50_us", "p75_us", "p90_us", "p99_us", "p999_us", "mean_us"):
        if k in parts[0]:
            out[k] = statistics.median(p[k] for p in parts)
    for k in ("max_us", "rss_max_kb", "pss_max_kb"):
        if k in parts[0]:
            out[k] = max(p[k] for p in parts)
    for k in ("sched_run_us_per_req", "sched_wait_us_per_req", "sched_ivcsw_per_kreq", "sched_vcsw_per_req",
              "share_cpu_with_wrk", "share_cpu_with_mock"):
        if all(k in p for p in parts) and n:
            out[k] = round(sum(p[k] * p["requests"] for p in parts) / n, 3)
    if all("steal_pct" in p for p in parts) and secs:
        out["steal_pct"] = round(sum(p["steal_pct"] * p["duration_s"] for p in parts) / secs, 2)
    out.pop("cpu_samples", None)
    out["slices"] = len(parts)
    out["slices_rps"] = [p["rps"] for p in parts]  # type: ignore[assignment]
    return out


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
