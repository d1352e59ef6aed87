"""The interfaces of the state layer. Every backend implements these; callers depend on nothing else.

Times are epoch seconds and every method that depends on the clock takes `now`, so tests (and
a caller with its own clock) decide it; methods where it is optional read time.time().
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from unigate.state.limit_types import Decision, Grant, Lease, Scope
from unigate.state.records import (
    AuditEntry,
    GroupBy,
    Key,
    KeyFields,
    Period,
    Team,
    TeamFields,
    UsageBucket,
    UsageFilter,
    UsageRow,
)
from unigate.state.spend_types import Account, CreditEntry, Refusal, Reservation, Roll


class KeyStore(Protocol):
    """Virtual keys and teams. Each change bumps `version()` and writes an audit row."""

    async def create_key(self, fields: KeyFields, *, actor: str, now: float | None = None) -> tuple[Key, str]:
        """The new key and its secret: the only time the secret is seen."""
        ...

    async def get_key(self, key_id: str) -> Key | None: ...

    async def list_keys(self, *, team: str | None = None) -> list[Key]: ...

    async def update_key(self, key_id: str, changes: KeyFields, *, actor: str, now: float | None = None) -> Key: ...

    async def revoke_key(self, key_id: str, *, actor: str, now: float | None = None) -> Key: ...

    async def rotate_key(
        self, key_id: str, grace_seconds: float, *, actor: str, now: float | None = None
    ) -> tuple[Key, str]:
        """A new secret; the previous one keeps working until now + grace_seconds."""
        ...

    async def find_by_secret(self, secret: str, now: float | None = None) -> Key | None:
        """The key this secret opens, if it is active (not revoked, not expired)."""
        ...

    async def create_team(
        self, fields: TeamFields, *, actor: str, team_id: str | None = None, now: float | None = None
    ) -> Team: ...

    async def get_team(self, team_id: str) -> Team | None: ...

    async def list_teams(self) -> list[Team]: ...

    async def update_team(self, team_id: str, changes: TeamFields, *, actor: str, now: float | None = None) -> Team: ...

    async def version(self) -> int:
        """A counter bumped by every key or team change: poll it and drop caches when it moves."""
        ...

    async def list_audit(self, *, target: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """Newest first."""
        ...


class Limits(Protocol):
    """rpm, tpm and max_parallel per scope, all-or-nothing across the scopes of one call."""

    async def acquire(self, scopes: Sequence[Scope], now: float) -> Decision: ...

    async def take(self, scope: Scope, requests: int, tokens: int, now: float) -> Grant:
        """Up to `requests` requests and `tokens` tokens of the scope's current window, at once:
        as many as are left, counted as used. Refused (a grant of 0) when no request is left,
        or fewer tokens than `scope.estimated_tokens` (the next call's estimate)."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give back the parallel slots of an admitted call when it ends."""
        ...

    async def adjust_tokens(self, scope_ids: Sequence[str], delta: int, now: float) -> None:
        """Correct the token count by (actual - estimated) once the usage is known."""
        ...

    async def close(self) -> None: ...


class Spend(Protocol):
    """Budgets and credits: reserve before the call, settle after it."""

    async def reserve(self, accounts: Sequence[Account], amount_usd: float, now: float) -> Reservation | Refusal: ...

    async def settle(self, reservation: Reservation, actual_usd: float, now: float) -> None:
        """Replace the reservation by the real charge. Settling twice charges once; settling an
        expired reservation still charges (the call happened)."""
        ...

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
        """Charge a running reservation's calls and take the next one, atomically (sql_spend.py)."""
        ...

    async def add_credits(
        self, account_id: str, usd: float, *, actor: str, note: str = "", now: float | None = None
    ) -> float:
        """Append a top-up (or, negative, an adjustment); returns the new balance."""
        ...

    async def balance(self, account_id: str) -> float: ...

    async def credit_entries(self, account_id: str, *, limit: int = 100) -> list[CreditEntry]:
        """Newest first."""
        ...

    async def spent(self, account_id: str, period: Period, now: float) -> float:
        """Settled spend in the period holding `now`."""
        ...

    async def in_flight(self, account_id: str, now: float) -> float: ...

    async def prune(self, now: float) -> None:
        """Housekeeping: drop expired reservations and old settlement markers."""
        ...


class LedgerStore(Protocol):
    async def write(self, rows: Sequence[UsageRow]) -> int:
        """Store a batch; rows already stored (same request_id and attempt) are skipped.
        Returns how many were new."""
        ...

    async def usage(
        self, since: float, until: float, group_by: GroupBy, filters: UsageFilter | None = None
    ) -> list[UsageBucket]:
        """Totals of the calls with since <= time < until, per group."""
        ...
