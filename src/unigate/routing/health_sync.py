"""Breaker openings shared by the workers of one node (`--workers N`): each worker's breakers
publish what they open into a `SnapshotHealthStore` (health.py), and a background task here
moves them through one small SQLite file every `INTERVAL` seconds, in both directions. So a
deployment one worker found failing is left alone by the others within about half a second,
instead of each worker paying its own `min_requests` failures to learn it.

The file holds (deployment id, until: epoch seconds): openings expire by themselves, a closing
deletes its row. The I/O runs in a thread, off the event loop, and never on a request's path.
Replicas on other machines would share the same way through Redis (not built yet)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time

from unigate.routing.health import SnapshotHealthStore

log = logging.getLogger("unigate.health")
INTERVAL = 0.5


class SqliteHealthSync:
    def __init__(self, path: str, store: SnapshotHealthStore, interval: float = INTERVAL) -> None:
        self.path, self.store, self.interval = path, store, interval
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=5, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS breaker_open (dep_id TEXT PRIMARY KEY, until REAL NOT NULL)")
            self._conn = conn
        return self._conn

    def sync_once(self, outbox: dict[str, float | None]) -> dict[str, float]:
        """Write this worker's changes, read everyone's openings: {dep_id: remaining seconds}."""
        with self._lock:
            db = self._db()
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            try:
                for dep_id, remaining in outbox.items():
                    if remaining is None:
                        db.execute("DELETE FROM breaker_open WHERE dep_id = ?", (dep_id,))
                    else:
                        db.execute("INSERT INTO breaker_open (dep_id, until) VALUES (?, ?) ON CONFLICT(dep_id) "
                                   "DO UPDATE SET until = max(until, excluded.until)", (dep_id, now + remaining))
                db.execute("DELETE FROM breaker_open WHERE until <= ?", (now,))
                rows = db.execute("SELECT dep_id, until FROM breaker_open").fetchall()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return {dep_id: until - now for dep_id, until in rows}

    async def run(self) -> None:
        while True:
            try:
                outbox = self.store.take_outbox()
                self.store.apply_snapshot(await asyncio.to_thread(self.sync_once, outbox))
            except (sqlite3.Error, OSError) as e:
                log.warning("sharing breaker state through %s failed: %s", self.path, e)
            await asyncio.sleep(self.interval)

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            if self._conn is not None:
                self._conn.close()
                self._conn = None
