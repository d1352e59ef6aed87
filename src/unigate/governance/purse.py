"""Budgets and credits per worker: one running reservation per set of accounts, spent locally.

A reservation per call would put a store transaction before and after every request. Instead a
worker holds, per set of accounts (a key, its team), one reservation taken atomically in the
store (`Spend.roll`), and admits a call locally while what its calls cost so far, what the calls
in flight may cost at worst, and this call's worst case fit inside it. When they do not, or
every `flush` (governance/enforce.py), the purse rolls: the store charges what was spent, keeps
the in-flight worst cases reserved, and adds a share of what is free (a 1/(4 x sharers) part,
so the workers and replicas sharing a budget each get theirs, shrinking as it runs out). Every
reservation is checked against the budget and the balance in one transaction, so all workers
together can never reserve more than there is: a budget is overspent at most by calls that cost
more than their worst case (a provider ignoring max_tokens), never by concurrency.

A reservation expires in the store if its worker dies (RESERVATION_SECONDS); a live purse rolls
well before that, at every period boundary of a budget (so spend lands in its own day, week or
month), and releases itself when idle.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from unigate.errors import PaymentRequired, RateLimited
from unigate.state.base import Spend
from unigate.state.records import Period
from unigate.state.spend_types import Account, Refusal, Reservation, period_start

#: a purse re-takes its reservation at least this often, far inside its life in the store
RENEW_SECONDS = 60.0
#: a purse with nothing in flight and no call for this long gives its reservation back
IDLE_SECONDS = 10.0
#: a refusal is answered locally this long before the store is asked again
REFUSAL_SECONDS = 1.0


@dataclass(slots=True)
class Purse:
    accounts: tuple[Account, ...]
    reservation: Reservation | None = None
    #: the reservation's amount, USD
    held: float = 0.0
    #: what admitted calls cost, not yet charged in the store
    spent: float = 0.0
    #: the worst cases of the calls in flight
    in_flight: float = 0.0
    renew_at: float = 0.0
    last_used: float = 0.0
    refusal: Refusal | None = None
    refused_until: float = 0.0
    rolling: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def fits(self, worst: float) -> bool:
        return self.spent + self.in_flight + worst <= self.held + 1e-12


class Purses:
    def __init__(self, spend: Spend, shares: int) -> None:
        self._spend = spend
        self._divisor = 4 * max(1, shares)
        self._purses: dict[tuple[Account, ...], Purse] = {}

    async def admit(self, accounts: tuple[Account, ...], worst: float, now: float) -> Purse:
        """Hold `worst` USD for one call, or raise (429 budget_exceeded, 402 insufficient_credits)."""
        p = self._purses.get(accounts)
        if p is None:
            p = self._purses[accounts] = Purse(accounts)
        p.last_used = now
        if not p.rolling and now < p.renew_at and p.held > 0 and p.fits(worst):
            p.in_flight += worst
            return p
        async with p.lock:
            if now >= p.renew_at or p.held <= 0 or not p.fits(worst):
                if p.refusal is not None and now < p.refused_until and now < p.renew_at:
                    raise _refused(p.refusal)
                for _ in range(2):  # calls that end during a roll leave their cost for the next
                    # at least a nano-dollar: a spent budget refuses even a call priced at $0
                    await self._roll(p, max(worst, 1e-9), now)
                    if p.fits(worst) or p.refusal is not None:
                        break
                if not p.fits(worst) or (worst == 0 and p.refusal is not None):
                    raise _refused(p.refusal or Refusal("budget_exceeded", accounts[0].id, 0.0, 0.0))
            p.in_flight += worst
            return p

    @staticmethod
    def settle(p: Purse, worst: float, cost: float) -> None:
        p.in_flight = max(p.in_flight - worst, 0.0)
        p.spent += cost

    async def _roll(self, p: Purse, need: float, now: float, *, release: bool = False) -> None:
        charge, keep = p.spent, p.in_flight
        p.rolling = True
        try:
            r = await self._spend.roll(p.accounts, p.reservation, charge, keep, need, 0 if release else self._divisor, now)
        finally:
            p.rolling = False
        p.spent -= charge  # calls that ended during the roll stay for the next one
        p.reservation, p.held = r.reservation, r.amount_usd
        p.refusal = r.refusal
        p.refused_until = now + REFUSAL_SECONDS if r.refusal is not None else 0.0
        p.renew_at = min(now + RENEW_SECONDS, _next_boundary(p.accounts, now))

    async def flush(self, now: float) -> None:
        """Charge what was spent; give back the reservations of idle purses."""
        for key, p in list(self._purses.items()):
            idle = p.in_flight == 0 and now - p.last_used > IDLE_SECONDS
            if not (p.spent or idle or now >= p.renew_at) or p.lock.locked():
                continue
            async with p.lock:
                if idle:
                    await self._roll(p, 0.0, now, release=True)
                    if p.reservation is None and not p.spent and p.in_flight == 0:
                        self._purses.pop(key, None)
                else:
                    await self._roll(p, 0.0, now)

    async def close(self, now: float) -> None:
        """Charge everything and give every reservation back (shutdown)."""
        for p in list(self._purses.values()):
            async with p.lock:
                await self._roll(p, 0.0, now, release=True)
        self._purses.clear()


def _refused(r: Refusal) -> RateLimited | PaymentRequired:
    kind, _, name = r.account_id.partition(":")
    if r.code == "insufficient_credits":
        return PaymentRequired(f"The credit balance of {kind} {name} does not cover this call (${r.limit_usd:.6g} "
                               f"left, less what calls in flight hold). Add credits to continue.")
    return RateLimited(f"The budget of {kind} {name} (${r.limit_usd:.6g}) is spent for this period.",
                       code="budget_exceeded")


def _next_boundary(accounts: tuple[Account, ...], now: float) -> float:
    """The next start of a budget period of these accounts (inf for none)."""
    ends = [_period_end(a.budget_period, now) for a in accounts if a.budget_usd is not None]
    return min(ends, default=float("inf"))


def _period_end(period: Period, now: float) -> float:
    if period == "total":
        return float("inf")
    if period == "daily":
        return period_start("daily", now) + 86400.0
    if period == "weekly":
        return period_start("weekly", now) + 7 * 86400.0
    start = datetime.fromtimestamp(period_start("monthly", now), UTC)
    nxt = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return nxt.timestamp()
