"""The measurements. Each phase takes the rig (mocks + running peers), the settings and an
`emit(record)` callback that stores one result; peers are measured one after the other inside
each case, so that the numbers compared in a ratio are taken minutes apart at most.

  tput     instant nginx mock, wrk -t1 -c<conns>, JSON and stream: requests/s, p50/p90/p99,
           the peer's CPU ms per request and its memory under load
  lat      paced mock (50 ms to the first byte, 10 ms between events), wrk -t1 at each of
           <lat_conns> connections, JSON and stream: latency percentiles (added = peer - direct)
  ttfb     paced mock, streamprobe at each of <lat_conns>: time to the first SSE event
  hold     paced mock, streamprobe with 100 concurrent streams: none may stall
  soak     paced mock, wrk with mixed.lua (plain and streamed in turn): RSS over time
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loadgen
import payloads
import pyspy_top
from peers import Rig

Emit = Callable[[dict[str, Any]], None]


@dataclass
class Settings:
    tput_s: int = 15
    tput_warm_s: int = 3
    #: >1: each peer's measured time is cut in this many slices, the peers taking turns (run.py --slices)
    tput_slices: int = 1
    conns: int = 50
    lat_s: int = 15
    lat_warm_s: int = 2
    lat_conns: tuple[int, ...] = (1, 10)
    ttfb_s: float = 15.0
    hold_s: float = 10.0
    hold_streams: int = 100
    stall_ms: float = 500.0
    soak_s: float = 600.0
    soak_conns: int = 20
    soak_sample_s: float = 5.0
    profile_s: int = 10


def _rotate(peers: list[str], rnd: int) -> list[str]:
    # a different peer goes first each round, so no peer always meets the machine at one moment
    k = rnd % len(peers) if peers else 0
    return peers[k:] + peers[:k]


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def throughput(rig: Rig, s: Settings, peers: list[str], rnd: int, emit: Emit) -> None:
    if s.tput_slices > 1:
        sliced_throughput(rig, s, peers, rnd, emit)
        return
    for stream in (False, True):
        for peer in _rotate(peers, rnd):
            t = rig.target(peer, "fast", stream)
            sid = rig.peers[peer].sid if peer != "direct" else rig.mocks[0].pid
            mode = "stream" if stream else "json"
            _log(f"tput {mode:6} {peer:9} warm-up {s.tput_warm_s}s + {s.tput_s}s at c{s.conns}")
            if s.tput_warm_s:
                loadgen.wrk(rig.procs, t, key=rig.key_for(peer), conns=s.conns, duration=s.tput_warm_s, peer_sid=None)
            r = loadgen.wrk(rig.procs, t, key=rig.key_for(peer), conns=s.conns, duration=s.tput_s, peer_sid=sid,
                            sample_every=0.1, mock_sid=rig.mocks[0].pid)
            emit({"phase": "tput", "peer": peer, "mode": mode, "round": rnd, **r})


def sliced_throughput(rig: Rig, s: Settings, peers: list[str], rnd: int, emit: Emit) -> None:
    """The peers take turns in short slices (A B B A A B ...) instead of one long run each.

    This VM's speed moves by 20 % and more within half a minute, inside one process as much as
    between processes (docs/benchmarks.md, 6 Dec): one 8-s run per peer compares two different
    machines. Slices of a second or two, in an order that mirrors itself, give every peer the
    same mix of fast and slow stretches; a steady drift cancels exactly."""
    slice_s = max(1, round(s.tput_s / s.tput_slices))
    for stream in (False, True):
        mode = "stream" if stream else "json"
        order = _rotate(peers, rnd)
        targets = {p: rig.target(p, "fast", stream) for p in order}
        for peer in order:
            _log(f"tput {mode:6} {peer:9} warm-up {s.tput_warm_s}s")
            if s.tput_warm_s:
                loadgen.wrk(rig.procs, targets[peer], key=rig.key_for(peer), conns=s.conns, duration=s.tput_warm_s,
                            peer_sid=None)
        _log(f"tput {mode:6} {'/'.join(order)}: {s.tput_slices} slices of {slice_s}s each at c{s.conns}")
        parts: dict[str, list[dict[str, float]]] = {p: [] for p in order}
        for k in range(s.tput_slices):
            for peer in (order if k % 2 == 0 else order[::-1]):
                sid = rig.peers[peer].sid if peer != "direct" else rig.mocks[0].pid
                parts[peer].append(loadgen.wrk(rig.procs, targets[peer], key=rig.key_for(peer), conns=s.conns,
                                               duration=slice_s, peer_sid=sid, sample_every=0.1,
                                               mock_sid=rig.mocks[0].pid))
        for peer in order:
            emit({"phase": "tput", "peer": peer, "mode": mode, "round": rnd, **loadgen.combine(parts[peer])})


def latency(rig: Rig, s: Settings, peers: list[str], rnd: int, emit: Emit) -> None:
    for conns in s.lat_conns:
        for stream in (False, True):
            for peer in _rotate(peers, rnd):
                t = rig.target(peer, "slow", stream)
                mode = "stream" if stream else "json"
                _log(f"lat  {mode:6} {peer:9} c{conns} warm-up {s.lat_warm_s}s + {s.lat_s}s")
                if s.lat_warm_s:
                    loadgen.wrk(rig.procs, t, key=rig.key_for(peer), conns=conns, duration=s.lat_warm_s, peer_sid=None)
                r = loadgen.wrk(rig.procs, t, key=rig.key_for(peer), conns=conns, duration=s.lat_s, peer_sid=rig.peers[peer].sid)
                emit({"phase": "lat", "peer": peer, "mode": mode, "round": rnd, **r})


def ttfb(rig: Rig, s: Settings, peers: list[str], rnd: int, emit: Emit) -> None:
    for conns in s.lat_conns:
        for peer in _rotate(peers, rnd):
            _log(f"ttfb stream {peer:9} c{conns} {s.ttfb_s:g}s")
            r = loadgen.probe(rig.procs, rig.target(peer, "slow", True), key=rig.key_for(peer), concurrency=conns, duration=s.ttfb_s,
                              expect_events=payloads.EVENTS, peer_sid=rig.peers[peer].sid, stall_ms=s.stall_ms)
            emit({"phase": "ttfb", "peer": peer, "mode": "stream", "conns": conns, "round": rnd, **r})


def hold(rig: Rig, s: Settings, peers: list[str], rnd: int, emit: Emit) -> None:
    for peer in _rotate(peers, rnd):
        _log(f"hold {s.hold_streams} streams {peer:9} {s.hold_s:g}s")
        r = loadgen.probe(rig.procs, rig.target(peer, "slow", True), key=rig.key_for(peer), concurrency=s.hold_streams,
                          duration=s.hold_s, expect_events=payloads.EVENTS, peer_sid=rig.peers[peer].sid, stall_ms=s.stall_ms)
        emit({"phase": "hold", "peer": peer, "mode": "stream", "conns": s.hold_streams, "round": rnd, **r})


def soak(rig: Rig, s: Settings, peer: str, emit: Emit) -> None:
    """Mixed load for `soak_s`; RSS is sampled every `soak_sample_s`. Warm-up is the first fifth
    of the soak, at most 60 s: the RSS at its end is the reference for the growth."""
    warm_s = min(60.0, s.soak_s / 5)
    samples: list[tuple[float, int, int]] = []
    _log(f"soak {peer} {s.soak_s:g}s at c{s.soak_conns} (warm-up {warm_s:g}s)")
    r = loadgen.wrk(rig.procs, rig.mixed_target(peer), key=rig.key_for(peer), conns=s.soak_conns, duration=max(1, round(s.soak_s)),
                    peer_sid=rig.peers[peer].sid, script="mixed.lua", sample_every=s.soak_sample_s,
                    on_sample=lambda t, rss, pss: samples.append((round(t, 1), rss, pss)))
    after_warm = next((x for x in samples if x[0] >= warm_s), samples[-1] if samples else (0.0, 0, 0))
    end = samples[-1] if samples else (0.0, 0, 0)
    growth = 100.0 * (end[1] - after_warm[1]) / after_warm[1] if after_warm[1] else None
    emit({"phase": "soak", "peer": peer, "mode": "mixed", "soak_s": s.soak_s, "warm_s": warm_s,
          "rss_warm_kb": after_warm[1], "rss_end_kb": end[1], "pss_warm_kb": after_warm[2], "pss_end_kb": end[2],
          "rss_growth_pct": round(growth, 2) if growth is not None else None,
          "samples": samples, **{k: r[k] for k in ("requests", "rps", "errors", "p50_us", "p99_us", "rss_max_kb")}})


def profile(rig: Rig, s: Settings, peer: str, outdir: Path, emit: Emit, tag: str = "") -> None:
    """py-spy (`record -r 500 -f raw`) on the peer while wrk saturates it, JSON then stream."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    pid = rig.peers[peer].sid
    assert pid is not None
    for stream in (False, True):
        mode = "stream" if stream else "json"
        out = outdir / ("-".join(x for x in ("pyspy", tag, peer, mode) if x) + ".txt")
        argv = [spy, "record", "-r", "500", "-f", "raw", "-d", str(s.profile_s), "-o", str(out), "-p", str(pid)]
        if peer.endswith("2"):
            argv.append("--subprocesses")
        _log(f"profile {peer} {mode} {s.profile_s}s with py-spy")
        spy_proc = rig.procs.spawn_bounded("py-spy", argv)
        time.sleep(0.5)  # py-spy attaches before the load starts
        r = loadgen.wrk(rig.procs, rig.target(peer, "fast", stream), key=rig.key_for(peer), conns=s.conns, duration=s.profile_s, peer_sid=pid)
        rc, _, err = rig.procs.finish(spy_proc, timeout=s.profile_s + 30)
        if rc != 0 or not out.exists():
            emit({"phase": "profile", "peer": peer, "mode": mode, "error": err.strip()[-400:]})
            continue
        emit({"phase": "profile", "peer": peer, "mode": mode, "file": str(out), "rps_under_profiler": r["rps"],
              **pyspy_top.summarise(out, top=15)})

