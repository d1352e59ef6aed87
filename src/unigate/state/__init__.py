"""The state shared by workers and replicas: virtual keys and teams, rate limits, budgets and
credits, and the usage ledger, behind the interfaces of `base`, opened by `open_state`.

An admitted call: `keys.find_by_secret` -> `limits.acquire` -> `spend.reserve`; when it ends:
`spend.settle`, `limits.adjust_tokens` and `limits.release`, then `ledger.write` (batched).
"""

from unigate.state.base import KeyStore, LedgerStore, Limits, Spend
from unigate.state.errors import Invalid, NotFound, StateError
from unigate.state.factory import State, open_state
from unigate.state.limit_types import Decision, Grant, Lease, Scope, ScopeFigures
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
from unigate.state.spend_types import Account, CreditEntry, Refusal, Reservation, Roll, period_start

__all__ = [
    "Account",
    "AuditEntry",
    "CreditEntry",
    "Decision",
    "Grant",
    "GroupBy",
    "Invalid",
    "Key",
    "KeyFields",
    "KeyStore",
    "Lease",
    "LedgerStore",
    "Limits",
    "NotFound",
    "Period",
    "Refusal",
    "Reservation",
    "Roll",
    "Scope",
    "ScopeFigures",
    "Spend",
    "State",
    "StateError",
    "Team",
    "TeamFields",
    "UsageBucket",
    "UsageFilter",
    "UsageRow",
    "open_state",
    "period_start",
]
