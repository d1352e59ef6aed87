"""The workers of one node (`--workers N`) sharing their metrics through a directory the
supervisor makes for the run (server.py): each worker writes its snapshot (metrics.py) to
`worker-<pid>.json` every PUBLISH_INTERVAL, by a write to a temporary file and an atomic rename, so
a reader never sees half a file; a scrape reads the others' files and merges them with its own.

A worker that died leaves its last file: its counters stay in the node's sums (they must not go
down when the supervisor replaces it), its gauges are left out. The directory is removed when the
supervisor exits, so a new run starts from zero, as a single process does.

Nothing here runs on a request's path: the publish is a background task (the write in a thread),
the read is the scrape's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import orjson

from unigate.telemetry.metrics import Metrics, Snapshot

log = logging.getLogger("unigate.metrics")
PUBLISH_INTERVAL = 0.5
_PREFIX, _SUFFIX = "worker-", ".json"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


class NodeShare:
    def __init__(self, directory: str, metrics: Metrics, interval: float = PUBLISH_INTERVAL) -> None:
        self.dir, self.metrics, self.interval = directory, metrics, interval
        self.pid = os.getpid()
        self.name = f"{_PREFIX}{self.pid}{_SUFFIX}"
        self.path = os.path.join(directory, self.name)
        self._last = b""
        self._task: asyncio.Task[None] | None = None
        metrics.node = self

    def _write(self, data: bytes) -> None:
        tmp = f"{self.path}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, self.path)

    async def publish(self) -> None:
        data = orjson.dumps(self.metrics.snapshot())
        if data != self._last:  # an idle worker writes nothing
            await asyncio.to_thread(self._write, data)
            self._last = data

    async def _run(self) -> None:
        while True:
            try:
                await self.publish()
            except OSError as e:
                log.warning("publishing this worker's metrics to %s failed: %s", self.dir, e)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """After the ledger's last flush: the final figures, so a stopped worker's calls still count."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            self._write(orjson.dumps(self.metrics.snapshot()))
        except OSError as e:
            log.warning("publishing this worker's last metrics to %s failed: %s", self.dir, e)

    def peers(self) -> list[tuple[Snapshot, bool]]:
        """The other workers' last snapshots, each with whether that worker is alive."""
        out: list[tuple[Snapshot, bool]] = []
        try:
            names = os.listdir(self.dir)
        except OSError as e:
            log.warning("reading the other workers' metrics from %s failed: %s", self.dir, e)
            return out
        for name in names:
            if name == self.name or not name.startswith(_PREFIX) or not name.endswith(_SUFFIX):
                continue
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    snap = orjson.loads(f.read())
                pid = int(snap["pid"])
            except (OSError, ValueError, KeyError, TypeError):  # gone since listdir, or not ours
                continue
            out.append((snap, alive(pid)))
        return out
