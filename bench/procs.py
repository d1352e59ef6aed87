"""Process control and /proc accounting for the bench driver.

Every process the bench starts goes through `Procs`: it runs in its own session (so one
signal to the process group reaches its workers, and the terminal's Ctrl-C does not race us),
it is remembered, and `stop_all()` — called from a `finally` — stops whatever is still alive:
SIGTERM to the group, a grace period, then SIGKILL to anything left in the session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path | None
    started: float  # time.monotonic() just before the exec
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n: int = 2000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_bytes()[-n:].decode(errors="replace")


class Procs:
    def __init__(self, pin: Mapping[str, str] | None = None) -> None:
        self._live: list[Proc] = []
        #: process name (a peer's without its worker-count digit) -> the CPUs `taskset` keeps it on
        self.pin = dict(pin or {})

    def _argv(self, name: str, argv: Sequence[str]) -> list[str]:
        cpus = self.pin.get(name) or self.pin.get(name.rstrip("0123456789"))
        return ["taskset", "-c", cpus, *argv] if cpus else list(argv)

    def start(self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              log_path: Path | None = None, cwd: str | None = None) -> Proc:
        log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - lives as long as the process
        t0 = time.monotonic()
        p = subprocess.Popen(self._argv(name, argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True)
        proc = Proc(name, p, log_path, t0, log if log_path else None)  # type: ignore[arg-type]
        self._live.append(proc)
        return proc

    def stop(self, proc: Proc, grace: float = 8.0) -> None:
        """SIGTERM to the group, wait up to `grace` s, then SIGKILL anything left in the session."""
        sid = proc.pid
        if proc.alive():
            _signal_group(sid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(sid, signal.SIGKILL)
                try:
                    proc.popen.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        # workers that outlived their parent (or ignored the group signal) are still in the session
        deadline = time.monotonic() + 2.0
        while session_pids(sid) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in session_pids(sid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc._log is not None:
            proc._log.close()
            proc._log = None
        if proc in self._live:
            self._live.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._live)):
            try:
                self.stop(proc, grace=5.0)
            except Exception as e:  # noqa: BLE001 - keep going: the next process must be stopped too
                print(f"bench: could not stop {proc.name} (pid {proc.pid}): {e}", flush=True)

    def run(self, name: str, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
        """Run a bounded command to completion; on timeout its whole group is killed. Returns
        (returncode, stdout, stderr); returncode is -9 after a timeout."""
        p = subprocess.Popen(self._argv(name, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             env=dict(env) if env is not None else None, start_new_session=True)
        proc = Proc(name, p, None, time.monotonic())
        self._live.append(proc)
        try:
            out, err = p.communicate(timeout=timeout)
            return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")
        except subprocess.TimeoutExpired:
            _signal_group(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            return -9, out.decode(errors="replace"), err.decode(errors="replace") + f"\n[bench: killed after {timeout:.0f} s]"
        finally:
            if p.poll() is None:
                _signal_group(p.pid, signal.SIGKILL)
                p.wait()
            if proc in self._live:
                self._live.remove(proc)

    def spawn_bounded(self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> Proc:
        """Start a bounded command whose output is read later with `finish()`."""
        p = subprocess.Popen(self._argv(name, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             env=dict(env) if env is not None else None, start_new_session=True)
        proc = Proc(name, p, None, time.monotonic())
        self._live.append(proc)
        return proc

    def finish(self, proc: Proc, timeout: float) -> tuple[int, str, str]:
        p = proc.popen
        try:
            out, err = p.communicate(timeout=timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            _signal_group(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            rc = -9
            err += f"\n[bench: killed after {timeout:.0f} s]".encode()
        if proc in self._live:
            self._live.remove(proc)
        return rc, out.decode(errors="replace"), err.decode(errors="replace")


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------------- /proc accounting


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name may hold spaces and parentheses: the fields start after the last ')'
    return raw[raw.rfind(")") + 2 :].split()


def session_pids(sid: int) -> list[int]:
    """Live processes in session `sid` (a process started by Procs and all its descendants)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            f = _stat_fields(int(entry))
            # f[0] state, f[1] ppid, f[2] pgrp, f[3] session; zombies hold no resources
            if f is not None and int(f[3]) == sid and f[0] != "Z":
                out.append(int(entry))
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU of the given processes (and of children they reaped)."""
    total = 0
    for pid in pids:
        f = _stat_fields(pid)
        if f is not None:
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])  # utime stime cutime cstime
    return total / CLK_TCK


def memory_kb(pids: Sequence[int]) -> tuple[int, int]:
    """(RSS, PSS) summed over the processes, in KiB. PSS shares pages between forked workers
    fairly, so it is the honest total for a multi-process peer."""
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return rss, pss


def _tasks(pids: Sequence[int]) -> list[Path]:
    out: list[Path] = []
    for pid in pids:
        try:
            out += [p for p in Path(f"/proc/{pid}/task").iterdir()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return out


def sched_counts(pids: Sequence[int]) -> dict[str, int]:
    """What the scheduler did to the processes' threads so far (issue 15's slow-mode hunt): time
    run and time spent runnable but waiting for a CPU (ns, /proc/<tid>/schedstat), context
    switches given up (voluntary) and taken (involuntary), and moves between CPUs."""
    run = wait = vol = invol = migr = 0
    for task in _tasks(pids):
        try:
            r, w, _ = (task / "schedstat").read_text().split()
            run, wait = run + int(r), wait + int(w)
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    vol += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    invol += int(line.split()[1])
            for line in (task / "sched").read_text().splitlines():
                if line.startswith("se.nr_migrations"):
                    migr += int(line.split(":")[1])
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
    return {"run_ns": run, "wait_ns": wait, "vcsw": vol, "ivcsw": invol, "migrations": migr}


def busiest_cpu(pids: Sequence[int]) -> int | None:
    """The CPU the busiest thread of these processes last ran on (/proc/<tid>/stat field 39)."""
    best: tuple[int, int] | None = None
    for task in _tasks(pids):
        try:
            raw = (task / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        f = raw[raw.rfind(")") + 2 :].split()
        used, cpu = int(f[11]) + int(f[12]), int(f[36])
        if best is None or used > best[0]:
            best = (used, cpu)
    return best[1] if best else None


def machine_ticks() -> tuple[int, int]:
    """(stolen, all) clock ticks of the machine's CPUs so far (/proc/stat): time the hypervisor
    ran something else while a vCPU wanted to run, out of all time."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice, already in user]
    return f[7], sum(f[:8])
