"""The plain records the state layer stores and returns: keys, teams, audit rows, usage rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypedDict

Period = Literal["daily", "weekly", "monthly", "total"]
PERIODS: tuple[Period, ...] = ("daily", "weekly", "monthly", "total")
#: what a key may do on the admin API: nothing ("user"), read it ("viewer"), or all of it ("admin")
Role = Literal["user", "viewer", "admin"]
ROLES: tuple[Role, ...] = ("user", "viewer", "admin")


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    models: list[str] = field(default_factory=list)
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: float | None = None
    budget_period: Period = "monthly"
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    #: the team's keys pay their calls from the balance of the account "team:<id>"
    uses_credits: bool = False

    @property
    def account(self) -> str:
        return f"team:{self.id}"


@dataclass(frozen=True, slots=True)
class Key:
    """A virtual key. `secret_hash` is the sha256 hex of the secret; the secret itself is never
    stored. After a rotation `previous_hash` stays valid until `previous_valid_until`."""

    id: str
    name: str
    secret_hash: str
    team: str | None = None
    models: list[str] = field(default_factory=list)
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget_usd: float | None = None
    budget_period: Period = "monthly"
    #: calls are paid from the credit balance of the account "key:<id>"
    uses_credits: bool = False
    expires_at: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    revoked_at: float | None = None
    previous_hash: str | None = None
    previous_valid_until: float | None = None
    role: Role = "user"

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    @property
    def account(self) -> str:
        return f"key:{self.id}"


class KeyFields(TypedDict, total=False):
    """The settable fields of a key (create and update take any subset)."""

    name: str
    team: str | None
    models: list[str]
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    budget_usd: float | None
    budget_period: Period
    uses_credits: bool
    expires_at: float | None
    metadata: dict[str, Any]
    role: Role


class TeamFields(TypedDict, total=False):
    name: str
    models: list[str]
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    budget_usd: float | None
    budget_period: Period
    metadata: dict[str, Any]
    uses_credits: bool


@dataclass(frozen=True, slots=True)
class AuditEntry:
    time: float
    actor: str
    action: str
    target: str
    details: dict[str, Any]


class UsageRow(NamedTuple):
    """One row of the usage ledger. (request_id, attempt) identifies it: a flush that is retried
    writes the same rows again and they are ignored. `attempt` is 0 when a call writes one row.

    A tuple, in the usage table's column order (sql_ledger.py): a flush binds the rows as they
    are. (As a slotted dataclass its generated __init__ was the largest Python function of a
    JSON request, 215 bytecodes: bench/opcount.py, 4 Dec.)"""

    time: float
    request_id: str
    endpoint: str = ""
    attempt: int = 0
    key_id: str | None = None
    team: str | None = None
    requested_model: str = ""
    served_model: str = ""
    deployment: str = ""
    provider: str = ""
    #: deployments tried for this call
    attempts: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    #: None: no known price
    cost_usd: float | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    status: int = 0
    error_code: str | None = None
    client_disconnected: bool = False
    stream: bool = False


GroupBy = Literal["key", "team", "model", "provider", "day"]


class UsageFilter(TypedDict, total=False):
    key_id: str
    team: str
    #: the served model
    model: str
    provider: str


@dataclass(frozen=True, slots=True)
class UsageBucket:
    #: the key id, team, served model, provider, or the day's start (epoch seconds) as text;
    #: None for rows without one (a call with no key or team)
    group: str | None
    requests: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_usd: float
    errors: int
