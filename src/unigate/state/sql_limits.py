"""Rate limits in SQL: a row of counters per scope and a row per held parallel slot.

Windows are exact fixed one-minute windows aligned to the UTC minute, not a sliding
approximation: a fixed window gives counts that are exact and testable to the request, and
its reset time is a fact the x-ratelimit-reset-* headers can state; the cost is that a client
can spend two windows' worth around a boundary, which the providers' own per-minute limits
behind the gateway allow too. The Redis backend applies the same rules (redis_limits.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from unigate.state.db import Database, Row, Sql, placeholders
from unigate.state.limit_types import (
    LEASE_SECONDS,
    Decision,
    Grant,
    Lease,
    Scope,
    WindowState,
    grant_of,
    judge,
    window_start,
)

_UPSERT = (
    "INSERT INTO rate_windows (scope_id, window_start, requests, tokens) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (scope_id) DO UPDATE SET window_start = excluded.window_start, requests = excluded.requests, "
    "tokens = excluded.tokens"
)


def _locks(scope_ids: Sequence[str]) -> list[str]:
    return ["rl:" + s for s in scope_ids]


class SqlLimits:
    def __init__(self, db: Database, lease_seconds: float = LEASE_SECONDS) -> None:
        self._db = db
        self._lease_seconds = lease_seconds

    async def acquire(self, scopes: Sequence[Scope], now: float) -> Decision:
        if not scopes:
            return Decision(True, ())
        scopes = list(scopes)
        ids = [s.id for s in scopes]
        held = [s.id for s in scopes if s.max_parallel is not None]
        # one statement for both reads: on PostgreSQL each statement is a round trip in the lock
        text = f"SELECT 'w', scope_id, window_start, requests, tokens FROM rate_windows WHERE scope_id IN ({placeholders(len(ids))})"
        args: list[object] = list(ids)
        if held:
            text += (
                " UNION ALL SELECT 'p', scope_id, count(*), 0, 0 FROM parallel_leases "
                f"WHERE scope_id IN ({placeholders(len(held))}) AND expires_at > ? GROUP BY scope_id"
            )
            args += [*held, now]
        reads = [Sql(text, args)]
        lease = Lease(secrets.token_hex(8), tuple(held)) if held else None
        ws = window_start(now)

        def decide(rows: list[list[Row]]) -> tuple[Decision, Sequence[Sql]]:
            stored = {r[1]: WindowState(float(r[2]), int(r[3]), int(r[4])) for r in rows[0] if r[0] == "w"}
            counts = {r[1]: int(r[2]) for r in rows[0] if r[0] == "p"}
            decision = judge(scopes, [stored.get(i) for i in ids], [counts.get(i, 0) for i in ids], now)
            if not decision.allowed:
                return decision, ()
            fresh = [stored.get(s.id) for s in scopes]
            writes = [Sql(_UPSERT, [
                (s.id, ws, (st.requests if st and st.window_start == ws else 0) + 1,
                 (st.tokens if st and st.window_start == ws else 0) + s.estimated_tokens)
                for s, st in zip(scopes, fresh, strict=True)
            ], many=True)]  # fmt: skip
            if lease is not None:
                writes.append(Sql(
                    f"DELETE FROM parallel_leases WHERE scope_id IN ({placeholders(len(held))}) AND expires_at <= ?",
                    [*held, now],
                ))  # fmt: skip
                expires = now + self._lease_seconds
                writes.append(Sql(
                    "INSERT INTO parallel_leases (scope_id, lease_id, expires_at) VALUES (?, ?, ?)",
                    [(i, lease.id, expires) for i in held], many=True,
                ))  # fmt: skip
                return Decision(True, decision.figures, lease=lease), writes
            return decision, writes

        return await self._db.atomic(_locks(ids), reads, decide, durable=False)

    async def take(self, scope: Scope, requests: int, tokens: int, now: float) -> Grant:
        ws = window_start(now)
        read = Sql("SELECT window_start, requests, tokens FROM rate_windows WHERE scope_id = ?", (scope.id,))

        def decide(rows: list[list[Row]]) -> tuple[Grant, Sequence[Sql]]:
            st = rows[0][0] if rows[0] else None
            r, t = (int(st[1]), int(st[2])) if st is not None and float(st[0]) == ws else (0, 0)
            grant, r_after, t_after = grant_of(scope, requests, tokens, r, t, now)
            if not grant.requests:
                return grant, ()
            return grant, [Sql(_UPSERT, (scope.id, ws, r_after, t_after))]

        return await self._db.atomic(_locks([scope.id]), [read], decide, durable=False)

    async def release(self, lease: Lease) -> None:
        if not lease.scope_ids:
            return
        ids = list(lease.scope_ids)
        delete = Sql(f"DELETE FROM parallel_leases WHERE scope_id IN ({placeholders(len(ids))}) AND lease_id = ?", [*ids, lease.id])
        await self._db.atomic(_locks(ids), (), lambda _rows: (None, [delete]), durable=False)

    async def adjust_tokens(self, scope_ids: Sequence[str], delta: int, now: float) -> None:
        if not scope_ids or not delta:
            return
        ids = list(scope_ids)
        ws = window_start(now)
        read = Sql(f"SELECT scope_id, window_start, requests, tokens FROM rate_windows WHERE scope_id IN ({placeholders(len(ids))})", ids)

        def decide(rows: list[list[Row]]) -> tuple[None, Sequence[Sql]]:
            stored = {r[0]: WindowState(float(r[1]), int(r[2]), int(r[3])) for r in rows[0]}
            values = []
            for i in ids:
                st = stored.get(i)
                # usage that lands after its window closed counts in the window it is known in
                r, t = (st.requests, st.tokens) if st is not None and st.window_start == ws else (0, 0)
                values.append((i, ws, r, max(0, t + delta)))
            return None, [Sql(_UPSERT, values, many=True)]

        await self._db.atomic(_locks(ids), [read], decide, durable=False)

    async def close(self) -> None:
        return None
