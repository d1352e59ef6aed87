"""What rate limiting takes and answers: scopes, the decision, and the figures for headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

WINDOW_SECONDS = 60.0
#: a parallel slot whose holder never released it (a crashed process) frees itself after this
LEASE_SECONDS = 600.0

LimitName = Literal["rpm", "tpm", "max_parallel"]


@dataclass(frozen=True, slots=True)
class Scope:
    """One limited party of a call ("key:abc", "team:t1"). None: that limit is off."""

    id: str
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    estimated_tokens: int = 0


class ScopeFigures(NamedTuple):
    """The OpenAI-style x-ratelimit-* figures of one scope (None where that limit is off). A
    tuple: a call with rpm/tpm limits builds one for its headers (a frozen dataclass's __init__
    costs ~50 bytecodes more: bench/opcount.py)."""

    scope_id: str
    limit_requests: int | None
    remaining_requests: int | None
    limit_tokens: int | None
    remaining_tokens: int | None
    #: seconds until the window (both counters) resets
    reset_seconds: float


@dataclass(frozen=True, slots=True)
class Lease:
    """The parallel slots an admitted call holds; give it back to `Limits.release`."""

    id: str
    scope_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    figures: tuple[ScopeFigures, ...]
    refused_scope: str | None = None
    refused_limit: LimitName | None = None
    retry_after: float = 0.0
    lease: Lease | None = None


@dataclass(slots=True)
class WindowState:
    """One scope's counters as stored: the fixed window they belong to and its counts."""

    window_start: float
    requests: int
    tokens: int


@dataclass(frozen=True, slots=True)
class Grant:
    """A block of one scope's window taken at once (`Limits.take`): a worker spends it locally,
    request by request, so the store is met once per block and not once per call. `requests`
    is 0 when the scope refused: then `retry_after` says when the window resets."""

    requests: int
    tokens: int
    window_start: float
    figures: ScopeFigures
    refused_limit: LimitName | None = None
    retry_after: float = 0.0


def grant_of(scope: Scope, requests: int, tokens: int, used_requests: int, used_tokens: int,
             now: float) -> tuple[Grant, int, int]:
    """The block a take of (requests, tokens) gets from a window that has used (used_requests,
    used_tokens), and the window's counts after it. Shared by the SQL backends; the Redis Lua
    script applies the same rules. A refused take counts nothing."""
    ws = window_start(now)
    reset = ws + WINDOW_SECONDS - now
    r = requests if scope.rpm is None else min(requests, scope.rpm - used_requests)
    t = tokens if scope.tpm is None else min(tokens, scope.tpm - used_tokens)
    refused: LimitName | None = None
    if r < 1:
        refused = "rpm"
    elif scope.tpm is not None and t < max(scope.estimated_tokens, 1):
        refused = "tpm"
    if refused is not None:
        fig = figures_of(scope, used_requests, used_tokens, reset)
        return Grant(0, 0, ws, fig, refused, reset), used_requests, used_tokens
    r_after, t_after = used_requests + r, used_tokens + max(t, 0)
    return Grant(r, max(t, 0), ws, figures_of(scope, r_after, t_after, reset)), r_after, t_after


def window_start(now: float) -> float:
    return float(int(now // WINDOW_SECONDS) * int(WINDOW_SECONDS))


def judge(scopes: list[Scope], states: list[WindowState | None], parallel: list[int], now: float) -> Decision:
    """Decide one acquire from the stored counters; the caller stores the counts only when it
    is allowed, so a refused call counts against no scope. Shared by the SQL backends; the Redis
    Lua script applies the same rules."""
    ws = window_start(now)
    reset = ws + WINDOW_SECONDS - now
    used: list[tuple[int, int]] = []
    refused: tuple[str, LimitName, float] | None = None
    for scope, state, held in zip(scopes, states, parallel, strict=True):
        r, t = (state.requests, state.tokens) if state is not None and state.window_start == ws else (0, 0)
        used.append((r, t))
        if refused is not None:
            continue
        if scope.rpm is not None and r + 1 > scope.rpm:
            refused = (scope.id, "rpm", reset)
        elif scope.tpm is not None and t + scope.estimated_tokens > scope.tpm:
            refused = (scope.id, "tpm", reset)
        elif scope.max_parallel is not None and held + 1 > scope.max_parallel:
            # no clock says when a slot frees; a second is a polite retry interval
            refused = (scope.id, "max_parallel", 1.0)
    if refused is None:
        used = [(r + 1, t + s.estimated_tokens) for (r, t), s in zip(used, scopes, strict=True)]
    figures = tuple(figures_of(s, r, t, reset) for s, (r, t) in zip(scopes, used, strict=True))
    if refused is None:
        return Decision(True, figures)
    return Decision(False, figures, refused_scope=refused[0], refused_limit=refused[1], retry_after=refused[2])


def figures_of(scope: Scope, requests: int, tokens: int, reset: float) -> ScopeFigures:
    return ScopeFigures(
        scope_id=scope.id,
        limit_requests=scope.rpm,
        remaining_requests=None if scope.rpm is None else max(0, scope.rpm - requests),
        limit_tokens=scope.tpm,
        remaining_tokens=None if scope.tpm is None else max(0, scope.tpm - tokens),
        reset_seconds=reset,
    )
