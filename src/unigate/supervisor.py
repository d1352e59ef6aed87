"""The parent of `--workers N`: forks the workers, restarts one that dies, forwards
SIGTERM/SIGINT, and makes sure no worker outlives it.

- A worker that exits while the parent is not stopping is restarted. Restarts back off
  (0 s, then 0.5, 1, 2, 4 s) and at most RESTART_LIMIT happen within RESTART_WINDOW seconds:
  past that the workers are in a crash loop (a bad port, a broken install), so the parent
  stops the rest and exits 1 with a log line saying so, instead of spinning.
- SIGTERM/SIGINT are forwarded to every worker as SIGTERM; each drains within its
  `shutdown_timeout`. One still alive KILL_GRACE seconds after that is SIGKILLed.
- Each worker asks the kernel for SIGTERM when the parent dies (Linux PR_SET_PDEATHSIG) and also
  polls os.getppid() once a second (server.py) for other platforms and for a parent killed
  between fork() and prctl(): a worker whose parent is gone exits instead of serving as an
  orphan nobody supervises.

The loop waits in select() on the signal wakeup pipe, so SIGCHLD and SIGTERM wake it at once
and no signal is lost between a check and the wait.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("unigate")

RESTART_LIMIT = 5
RESTART_WINDOW = 60.0
KILL_GRACE = 5.0
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """In a fresh worker: get SIGTERM when `parent` dies, or exit now if it already has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
                log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except (OSError, AttributeError):  # no usable libc: the getppid() poll still covers it
            pass
    # the parent may have died before prctl() took effect: the signal would then never come
    if os.getppid() != parent:
        os._exit(0)


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


class Supervisor:
    def __init__(self, workers: int, target: Callable[[int], int], shutdown_timeout: float) -> None:
        """`target(parent_pid)` runs a worker in the forked child and returns its exit status."""
        self.n = workers
        self.target = target
        self.shutdown_timeout = shutdown_timeout
        self.pids: set[int] = set()
        self.restarts: deque[float] = deque()  # monotonic times of the restarts in the window
        self.pending: list[float] = []  # when each worker slot waiting for a restart is due
        self.stopping: str | None = None  # why we are stopping: a signal's name, or the crash loop
        self.forwarded = False
        self.kill_at = 0.0
        self.status = 0
        self._wake_r = self._wake_w = -1

    # ------------------------------------------------------------------ the parent

    def run(self) -> int:
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        old_fd = signal.set_wakeup_fd(self._wake_w)
        old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)}
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        # a handler (not SIG_DFL) so SIGCHLD writes to the wakeup pipe
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)
        try:
            for _ in range(self.n):
                self._spawn()
            self._loop()
        finally:
            signal.set_wakeup_fd(old_fd)
            for s, h in old.items():
                if h is not None:  # None: set outside Python, nothing we can put back
                    signal.signal(s, h)
            os.close(self._wake_r)
            os.close(self._wake_w)
        return self.status

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        # only note it: the loop, woken by the wakeup pipe, does the work outside the handler
        if self.stopping is None:
            self.stopping = f"received {signal.Signals(signum).name}"

    def _loop(self) -> None:
        while True:
            self._reap()
            now = time.monotonic()
            if self.stopping is not None and not self.forwarded:
                self._stop_all(self.stopping, now)
            if self.stopping is not None:
                if not self.pids:
                    return
                if now >= self.kill_at:
                    log.error("%d worker(s) still running %.0f s after SIGTERM: killing them",
                              len(self.pids), self.shutdown_timeout + KILL_GRACE)
                    self._signal_all(signal.SIGKILL)
                    self.kill_at = now + 3600.0  # once; waitpid follows
                wait = self.kill_at - now
            else:
                due = [t for t in self.pending if t <= now]
                for t in due:
                    self.pending.remove(t)
                    self._spawn()
                wait = min(self.pending, default=now + 1.0) - now
            self._sleep(max(0.0, min(wait, 1.0)))

    def _sleep(self, seconds: float) -> None:
        try:
            ready, _, _ = select.select([self._wake_r], [], [], seconds)
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for safety
            return
        if ready:
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass

    def _reap(self) -> None:
        while self.pids:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.pids.clear()
                return
            if pid == 0:
                return
            if pid not in self.pids:
                continue
            self.pids.discard(pid)
            self._exited(pid, status)

    def _exited(self, pid: int, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        if self.stopping is not None:
            if code not in (0, -signal.SIGTERM):
                log.warning("worker %d %s while stopping", pid, _describe(status))
                self.status = 1
            return
        now = time.monotonic()
        while self.restarts and now - self.restarts[0] > RESTART_WINDOW:
            self.restarts.popleft()
        if len(self.restarts) >= RESTART_LIMIT:
            log.error("worker %d %s: %d restarts in the last %.0f s, the workers are crash-looping; "
                      "giving up and stopping", pid, _describe(status), len(self.restarts), RESTART_WINDOW)
            self.status = 1
            self.stopping = "crash loop"
            return
        delay = 0.0 if not self.restarts else min(0.5 * 2 ** (len(self.restarts) - 1), 8.0)
        self.restarts.append(now)
        log.warning("worker %d %s; starting a new one%s", pid, _describe(status),
                    f" in {delay:.1f} s" if delay else "")
        self.pending.append(now + delay)

    def _stop_all(self, why: str, now: float) -> None:
        self.forwarded = True
        self.pending.clear()
        log.info("%s: stopping %d worker(s)", why, len(self.pids))
        self._signal_all(signal.SIGTERM)
        self.kill_at = now + self.shutdown_timeout + KILL_GRACE

    def _signal_all(self, sig: int) -> None:
        for pid in list(self.pids):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    # ------------------------------------------------------------------ a worker

    def _spawn(self) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid:
            self.pids.add(pid)
            return
        code = 1
        try:
            self._become_worker(parent)
            code = self.target(parent)
        except KeyboardInterrupt:
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            log.exception("worker crashed")
        finally:
            # never return into the parent's loop from a child
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:  # noqa: BLE001 - a failed flush must not keep the worker from os._exit
                    pass
            os._exit(code)

    def _become_worker(self, parent: int) -> None:
        # the parent's handlers and wakeup pipe came along with fork(): a SIGTERM before the
        # worker's loop installs its own must stop this process, not set the parent's flag
        signal.set_wakeup_fd(-1)
        os.close(self._wake_r)
        os.close(self._wake_w)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        die_with_parent(parent)
