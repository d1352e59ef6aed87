"""What budgets and credits take and answer: accounts, reservations, refusals, credit entries.

Money is held as integer nano-dollars inside the stores: sums of many small charges stay exact,
so "credits for exactly 1,000 calls" means exactly 1,000 and not 999 after float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple

from unigate.state.records import Period

#: an unsettled reservation (its process crashed) stops counting after this
RESERVATION_SECONDS = 600.0
NANOS = 1_000_000_000

RefusalCode = Literal["budget_exceeded", "insufficient_credits"]
CreditKind = Literal["topup", "charge", "adjustment"]


def to_nanos(usd: float) -> int:
    return round(usd * NANOS)


def to_usd(nanos: int) -> float:
    return nanos / NANOS


class Account(NamedTuple):
    """A party that pays or is capped: "key:abc", "team:t1". A tuple: each admitted call looks
    its purse up by the key's accounts, and a tuple hashes and compares in C where a frozen
    dataclass runs its generated __hash__ and __eq__ (bench/opcount.py)."""

    id: str
    budget_usd: float | None = None
    budget_period: Period = "monthly"
    uses_credits: bool = False


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    accounts: tuple[Account, ...]
    amount_usd: float
    created_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Refusal:
    code: RefusalCode
    account_id: str
    #: the budget or the balance, in USD
    limit_usd: float
    #: what was still available to reserve, in USD
    available_usd: float


@dataclass(frozen=True, slots=True)
class Roll:
    """What `Spend.roll` answers: the holder's new reservation (None when it holds nothing now)
    and, when the extra it needed was not there, why (the reservation then covers only `keep`)."""

    reservation: Reservation | None
    refusal: Refusal | None = None

    @property
    def amount_usd(self) -> float:
        return 0.0 if self.reservation is None else self.reservation.amount_usd


@dataclass(frozen=True, slots=True)
class CreditEntry:
    time: float
    account_id: str
    kind: CreditKind
    #: positive for a top-up, negative for a charge
    amount_usd: float
    actor: str
    note: str
    reservation_id: str | None


def period_start(period: Period, now: float) -> float:
    """The start of the calendar-aligned UTC period holding `now` (0 for "total")."""
    if period == "total":
        return 0.0
    t = datetime.fromtimestamp(now, UTC)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        start = day
    elif period == "weekly":
        start = day - timedelta(days=day.weekday())  # ISO weeks start on Monday
    else:
        start = day.replace(day=1)
    return start.timestamp()
