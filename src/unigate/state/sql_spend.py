"""Budgets and credits in SQL.

A reservation is one row per account, expiring after RESERVATION_SECONDS so a crashed caller
never blocks an account for longer. Settled spend is counted per (account, period, period
start); credits are an append-only ledger of entries with a running balance written in the same
transaction (the entries are the truth: the balance is their sum). A settlement marker per
reservation makes settle idempotent.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Sequence
from typing import cast

from unigate.state.audit_sql import audit_insert
from unigate.state.db import Database, Row, Sql, placeholders
from unigate.state.records import Period
from unigate.state.spend_types import (
    RESERVATION_SECONDS,
    Account,
    CreditEntry,
    CreditKind,
    Refusal,
    Reservation,
    Roll,
    period_start,
    to_nanos,
    to_usd,
)

#: settlement markers are kept this long after the fact, far beyond any reservation's life
SETTLED_KEEP_SECONDS = 7 * 86400.0

_ADD_SPEND = (
    "INSERT INTO period_spend (account_id, period, period_start, spent_nanos) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (account_id, period, period_start) DO UPDATE SET spent_nanos = period_spend.spent_nanos + excluded.spent_nanos"
)
_ADD_BALANCE = (
    "INSERT INTO credit_balances (account_id, balance_nanos) VALUES (?, ?) "
    "ON CONFLICT (account_id) DO UPDATE SET balance_nanos = credit_balances.balance_nanos + excluded.balance_nanos"
)
_ENTRY = (
    "INSERT INTO credit_entries (time, account_id, kind, amount_nanos, actor, note, reservation_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _locks(account_ids: Sequence[str]) -> list[str]:
    return ["sp:" + a for a in account_ids]


def _standing(accounts: Sequence[Account], now: float, excluding: str = "") -> Sql:
    """Where the accounts stand, in one statement (on PostgreSQL each statement is a round trip
    in the lock): live reservations (but `excluding`'s) and expired ones per account, the
    period spend of the capped ones, the balance of the paying ones."""
    ids = [a.id for a in accounts]
    paying = [a.id for a in accounts if a.uses_credits]
    parts = [
        "SELECT 'r', account_id, sum(CASE WHEN expires_at > ? AND id <> ? THEN amount_nanos ELSE 0 END), "
        "sum(CASE WHEN expires_at > ? THEN 0 ELSE 1 END) FROM reservations "
        f"WHERE account_id IN ({placeholders(len(ids))}) GROUP BY account_id"
    ]
    args: list[object] = [now, excluding, now, *ids]
    for a in accounts:
        if a.budget_usd is not None:
            parts.append(
                "SELECT 's', account_id, spent_nanos, 0 FROM period_spend "
                "WHERE account_id = ? AND period = ? AND period_start = ?"
            )
            args += [a.id, a.budget_period, period_start(a.budget_period, now)]
    if paying:
        parts.append(
            f"SELECT 'b', account_id, balance_nanos, 0 FROM credit_balances WHERE account_id IN ({placeholders(len(paying))})"
        )
        args += paying
    return Sql(" UNION ALL ".join(parts), args)


def _parse_standing(rows: list[Row]) -> tuple[dict[str, int], int, dict[str, int], dict[str, int]]:
    """_standing's rows: (reserved per account, expired reservations, spent per account, balances)."""
    pending = {r[1]: int(r[2]) for r in rows if r[0] == "r"}
    expired = sum(int(r[3]) for r in rows if r[0] == "r")
    spent = {r[1]: int(r[2]) for r in rows if r[0] == "s"}
    balances = {r[1]: int(r[2]) for r in rows if r[0] == "b"}
    return pending, expired, spent, balances


class SqlSpend:
    def __init__(self, db: Database, reservation_seconds: float = RESERVATION_SECONDS) -> None:
        self._db = db
        self._ttl = reservation_seconds

    async def reserve(self, accounts: Sequence[Account], amount_usd: float, now: float) -> Reservation | Refusal:
        accounts = tuple(accounts)
        ids = [a.id for a in accounts]
        amount = to_nanos(amount_usd)
        capped = [a for a in accounts if a.budget_usd is not None]
        paying = [a.id for a in accounts if a.uses_credits]
        reads = [_standing(accounts, now)]
        reservation = Reservation(secrets.token_hex(12), accounts, amount_usd, now, now + self._ttl)

        def decide(rows: list[list[Row]]) -> tuple[Reservation | Refusal, Sequence[Sql]]:
            pending, expired, spent, balances = _parse_standing(rows[0])
            for a in capped:
                budget = to_nanos(cast(float, a.budget_usd))
                free = budget - spent.get(a.id, 0) - pending.get(a.id, 0)
                if amount > free or free <= 0:
                    return Refusal("budget_exceeded", a.id, to_usd(budget), to_usd(max(0, free))), ()
            for a_id in paying:
                free = balances.get(a_id, 0) - pending.get(a_id, 0)
                if amount > free or free <= 0:
                    return Refusal("insufficient_credits", a_id, to_usd(balances.get(a_id, 0)), to_usd(max(0, free))), ()
            insert = Sql(
                "INSERT INTO reservations (account_id, id, amount_nanos, expires_at) VALUES (?, ?, ?, ?)",
                [(i, reservation.id, amount, reservation.expires_at) for i in ids], many=True,
            )  # fmt: skip
            if not expired:
                return reservation, [insert]
            purge = Sql(f"DELETE FROM reservations WHERE account_id IN ({placeholders(len(ids))}) AND expires_at <= ?", [*ids, now])
            return reservation, [purge, insert]

        return await self._db.atomic(_locks(ids), reads, decide, durable=False)

    async def settle(self, reservation: Reservation, actual_usd: float, now: float) -> None:
        ids = [a.id for a in reservation.accounts]
        actual = to_nanos(actual_usd)
        rid = reservation.id

        def decide(rows: list[list[Row]]) -> tuple[None, Sequence[Sql]]:
            if not rows[0]:
                return None, ()  # settled already: a retried settle must not charge twice
            writes = [
                Sql(f"DELETE FROM reservations WHERE account_id IN ({placeholders(len(ids))}) AND id = ?", [*ids, rid]),
            ]
            if actual:
                # spend lands in the period the reservation was checked against
                writes.append(Sql(_ADD_SPEND, [
                    (a.id, a.budget_period, period_start(a.budget_period, reservation.created_at), actual)
                    for a in reservation.accounts
                ], many=True))  # fmt: skip
                paying = [a.id for a in reservation.accounts if a.uses_credits]
                if paying:
                    writes.append(Sql(_ENTRY, [(now, i, "charge", -actual, "gateway", "", rid) for i in paying], many=True))
                    writes.append(Sql(_ADD_BALANCE, [(i, -actual) for i in paying], many=True))
            return None, writes

        # the marker's insert is the read: it returns the row only if this settle is the first
        marker = Sql(
            "INSERT INTO settlements (id, time, amount_nanos) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id",
            (rid, now, actual),
        )
        await self._db.atomic(_locks(ids), [marker], decide)

    async def add_credits(
        self, account_id: str, usd: float, *, actor: str, note: str = "", now: float | None = None
    ) -> float:
        if not math.isfinite(usd):  # to_nanos would raise an OverflowError for inf, a ValueError for NaN
            raise ValueError("a credit entry needs a finite amount")
        amount = to_nanos(usd)
        if amount == 0:
            raise ValueError("a credit entry needs a non-zero amount")
        t = time.time() if now is None else now
        kind = "topup" if amount > 0 else "adjustment"
        # the audit row commits with the entry: a top-up is never on the books without its trail
        audit = audit_insert(t, actor, "credits.add", account_id, {"amount_usd": to_usd(amount), "note": note})

        def decide(rows: list[list[Row]]) -> tuple[float, Sequence[Sql]]:
            before = int(rows[0][0][0]) if rows[0] else 0
            writes = [
                Sql(_ENTRY, (t, account_id, kind, amount, actor, note, None)), Sql(_ADD_BALANCE, (account_id, amount)),
                audit,
            ]  # fmt: skip
            return to_usd(before + amount), writes

        read = Sql("SELECT balance_nanos FROM credit_balances WHERE account_id = ?", (account_id,))
        return await self._db.atomic(_locks([account_id]), [read], decide)

    async def balance(self, account_id: str) -> float:
        rows = await self._db.fetch(Sql("SELECT balance_nanos FROM credit_balances WHERE account_id = ?", (account_id,)))
        return to_usd(int(rows[0][0])) if rows else 0.0

    async def credit_entries(self, account_id: str, *, limit: int = 100) -> list[CreditEntry]:
        rows = await self._db.fetch(Sql(
            "SELECT time, account_id, kind, amount_nanos, actor, note, reservation_id FROM credit_entries "
            "WHERE account_id = ? ORDER BY id DESC LIMIT ?",
            (account_id, limit),
        ))  # fmt: skip
        return [CreditEntry(float(r[0]), r[1], cast(CreditKind, r[2]), to_usd(int(r[3])), r[4], r[5], r[6]) for r in rows]

    async def spent(self, account_id: str, period: Period, now: float) -> float:
        rows = await self._db.fetch(Sql(
            "SELECT spent_nanos FROM period_spend WHERE account_id = ? AND period = ? AND period_start = ?",
            (account_id, period, period_start(period, now)),
        ))  # fmt: skip
        return to_usd(int(rows[0][0])) if rows else 0.0

    async def in_flight(self, account_id: str, now: float) -> float:
        rows = await self._db.fetch(Sql(
            "SELECT sum(amount_nanos) FROM reservations WHERE account_id = ? AND expires_at > ?", (account_id, now)
        ))  # fmt: skip
        return to_usd(int(rows[0][0] or 0))

    async def prune(self, now: float) -> None:
        writes = [
            Sql("DELETE FROM reservations WHERE expires_at <= ?", (now,)),
            Sql("DELETE FROM settlements WHERE time < ?", (now - SETTLED_KEEP_SECONDS,)),
        ]
        await self._db.atomic(["sp:prune"], (), lambda _rows: (None, writes))

    async def roll(
        self,
        accounts: Sequence[Account],
        old: Reservation | None,
        charge_usd: float,
        keep_usd: float,
        need_usd: float,
        divisor: int,
        now: float,
    ) -> Roll:
        """Settle a holder's running reservation and take its next one, in one transaction.

        A worker holds one reservation per set of accounts and admits calls against it locally
        (governance/purse.py). Rolling charges what those calls cost (`charge_usd`, to the period
        the old reservation was taken in), keeps `keep_usd` reserved for the calls still in
        flight, and adds an extra share of what is free: a 1/`divisor` part of it, at least
        `need_usd` (the next call's worst case), at most all of it. When less than `need_usd` is
        free the answer carries the refusal, and the reservation covers `keep_usd` only. `divisor`
        0 releases: no extra, only `keep_usd` stays reserved. Rolling the same `old` twice charges
        it once (its settlement marker)."""
        accounts = tuple(accounts)
        ids = [a.id for a in accounts]
        charge, keep, need = to_nanos(charge_usd), to_nanos(keep_usd), to_nanos(need_usd)
        capped = [a for a in accounts if a.budget_usd is not None]
        paying = [a.id for a in accounts if a.uses_credits]
        reads = [_standing(accounts, now, old.id if old is not None else "")]
        if old is not None:
            # the marker's insert is a read: it returns the row only if this is old's first settlement
            reads.append(Sql(
                "INSERT INTO settlements (id, time, amount_nanos) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id",
                (old.id, now, charge),
            ))  # fmt: skip
        new_id = secrets.token_hex(12)

        def decide(rows: list[list[Row]]) -> tuple[Roll, Sequence[Sql]]:
            pending, expired, spent, balances = _parse_standing(rows[0])
            charging = old is not None and bool(rows[1]) and charge > 0
            writes: list[Sql] = []
            if old is not None:
                writes.append(Sql(f"DELETE FROM reservations WHERE account_id IN ({placeholders(len(ids))}) AND id = ?", [*ids, old.id]))
            if charging:
                assert old is not None
                writes.append(Sql(_ADD_SPEND, [
                    (a.id, a.budget_period, period_start(a.budget_period, old.created_at), charge) for a in accounts
                ], many=True))  # fmt: skip
                if paying:
                    writes.append(Sql(_ENTRY, [(now, i, "charge", -charge, "gateway", "", old.id) for i in paying], many=True))
                    writes.append(Sql(_ADD_BALANCE, [(i, -charge) for i in paying], many=True))
            refusal: Refusal | None = None
            free: int | None = None
            for a in capped:
                budget = to_nanos(cast(float, a.budget_usd))
                used = spent.get(a.id, 0) + pending.get(a.id, 0)
                if charging and old is not None and period_start(a.budget_period, old.created_at) == period_start(a.budget_period, now):
                    used += charge
                f = budget - used
                if free is None or f < free:
                    free = f
                if f - keep < need and refusal is None:
                    refusal = Refusal("budget_exceeded", a.id, to_usd(budget), to_usd(max(0, f - keep)))
            for a_id in paying:
                bal = balances.get(a_id, 0) - (charge if charging else 0)
                f = bal - pending.get(a_id, 0)
                if free is None or f < free:
                    free = f
                if f - keep < need and refusal is None:
                    refusal = Refusal("insufficient_credits", a_id, to_usd(bal), to_usd(max(0, f - keep)))
            if refusal is not None or free is None or divisor <= 0:
                amount = keep  # refused, or a release (divisor 0): no extra
            else:
                avail = free - keep
                amount = keep + min(avail, max(need, avail // max(1, divisor)))
            reservation = None
            if amount > 0:
                reservation = Reservation(new_id, accounts, to_usd(amount), now, now + self._ttl)
                writes.append(Sql(
                    "INSERT INTO reservations (account_id, id, amount_nanos, expires_at) VALUES (?, ?, ?, ?)",
                    [(i, new_id, amount, reservation.expires_at) for i in ids], many=True,
                ))  # fmt: skip
            if expired:
                writes.insert(0, Sql(f"DELETE FROM reservations WHERE account_id IN ({placeholders(len(ids))}) AND expires_at <= ?", [*ids, now]))
            return Roll(reservation, refusal), writes

        return await self._db.atomic(_locks(ids), reads, decide)
