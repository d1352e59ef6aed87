"""rpm and tpm per worker: blocks of a scope's window taken from the store, spent locally.

Counting every call in the store would put a transaction (SQLite, PostgreSQL) or a round trip
(Redis) on each request's path. Instead a worker takes a block of the current one-minute window
(`Limits.take`, atomic in the store, so the blocks of all workers and replicas together never
exceed the limit) and admits calls from it with no I/O. Blocks are sized to leave the other
sharers theirs — an eighth of the limit per sharer at most, and half a sharer's part of what the
store said was left — so they shrink to one request as the window runs out; the cost is that a
block a worker took and did not use is lost to the others until the window resets, at most a few
requests per worker near the limit. A refusal is remembered until the window resets (rpm) or
for a second (tpm, which settling can give back), so a client hammering a spent key does not
reach the store on each try.

Token counts start as the call's estimate and are corrected when its usage is known: what it
used less goes back to the local block; what it used more is owed to the store and pushed by
`flush()` (governance/enforce.py calls it periodically).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import NamedTuple

from unigate.errors import RateLimited
from unigate.state.base import Limits
from unigate.state.limit_types import WINDOW_SECONDS, Scope, ScopeFigures

#: "no rpm": a block so large it never runs out
_UNLIMITED = 1 << 40


@dataclass(slots=True)
class _Block:
    scope: Scope
    window: float = -1.0
    requests: int = 0
    tokens: int = 0
    #: the store's count of what was left in the window after the last take (not ours)
    store_left_requests: int | None = None
    store_left_tokens: int | None = None
    #: tokens used beyond the estimates and the block: owed to the store
    owed: int = 0
    #: a refusal is answered locally until then, with this message, retrying at `retry_at`
    refused_until: float = 0.0
    refusal: str | None = None
    retry_at: float = 0.0
    lock: asyncio.Lock | None = None


class Taken(NamedTuple):
    """What one admitted call took from each scope, to settle its tokens against. (A tuple:
    one per call.)"""

    window: float
    tokens: int


class Quotas:
    def __init__(self, limits: Limits, shares: int) -> None:
        self._limits = limits
        self._shares = max(1, shares)
        self._blocks: dict[str, _Block] = {}

    def _block(self, scope: Scope) -> _Block:
        b = self._blocks.get(scope.id)
        if b is None or b.scope.rpm != scope.rpm or b.scope.tpm != scope.tpm:
            # new, or its limits changed (an admin update): start from the store's count
            owed = b.owed if b is not None else 0
            b = self._blocks[scope.id] = _Block(scope, owed=owed)
        return b

    async def admit(self, scopes: tuple[Scope, ...], tokens: int, now: float) -> Taken:
        """Count one call of `tokens` estimated tokens against every scope, or none of them
        (a RateLimited naming the first that refused)."""
        window = _window(now)
        done: list[_Block] = []
        try:
            for scope in scopes:
                b = self._block(scope)
                if b.window != window:
                    b.window, b.requests, b.tokens = window, 0, 0
                    b.store_left_requests = b.store_left_tokens = None
                if b.refusal is not None and now < b.refused_until:
                    raise _refused(b, now)
                if b.requests < 1 or (scope.tpm is not None and b.tokens < tokens):
                    await self._take(b, tokens, now)
                b.requests -= 1
                if scope.tpm is not None:
                    b.tokens -= tokens
                done.append(b)
        except RateLimited:
            for b in done:  # all or nothing: what the earlier scopes gave goes back to them
                if b.window == window:
                    b.requests += 1
                    if b.scope.tpm is not None:
                        b.tokens += tokens
            raise
        return Taken(window, tokens)

    async def _take(self, b: _Block, tokens: int, now: float) -> None:
        if b.lock is None:
            b.lock = asyncio.Lock()
        async with b.lock:  # one take at a time per scope: the others wait and share its block
            window = _window(now)
            if b.window == window and b.requests >= 1 and (b.scope.tpm is None or b.tokens >= tokens):
                return
            if b.refusal is not None and now < b.refused_until:
                raise _refused(b, now)
            scope, shares = b.scope, self._shares
            want_r = _UNLIMITED if scope.rpm is None else _size(scope.rpm, b.store_left_requests, shares, 1)
            need_t = max(tokens - max(b.tokens, 0), 0) if b.window == window else tokens
            want_t = 0 if scope.tpm is None else _size(scope.tpm, b.store_left_tokens, shares, max(need_t, 1))
            ask = Scope(scope.id, rpm=scope.rpm, tpm=scope.tpm, estimated_tokens=need_t)
            grant = await self._limits.take(ask, want_r, want_t, now)
            fig = grant.figures
            if not grant.requests:
                what = "requests" if grant.refused_limit == "rpm" else "tokens"
                limit = scope.rpm if grant.refused_limit == "rpm" else scope.tpm
                kind, _, name = scope.id.partition(":")
                b.refusal = f"Rate limit reached for {kind} {name}: {limit} {what} per minute."
                b.retry_at = now + grant.retry_after
                # rpm stays spent until the window resets; tokens may come back as calls settle
                b.refused_until = b.retry_at if grant.refused_limit == "rpm" else now + min(1.0, grant.retry_after)
                raise _refused(b, now)
            b.refusal = None
            if b.window != grant.window_start:
                b.window, b.requests, b.tokens = grant.window_start, 0, 0
            b.requests += grant.requests
            b.tokens += grant.tokens
            b.store_left_requests, b.store_left_tokens = fig.remaining_requests, fig.remaining_tokens

    def settle(self, scopes: tuple[Scope, ...], taken: Taken, actual_tokens: int) -> None:
        """Correct the estimate by what the call used."""
        delta = actual_tokens - taken.tokens
        if not delta:
            return
        for scope in scopes:
            if scope.tpm is None:
                continue
            b = self._blocks.get(scope.id)
            if b is None:
                continue
            if b.window == taken.window:
                b.tokens -= delta
                if b.tokens < 0:  # beyond the block: the store must count it
                    b.owed -= b.tokens
                    b.tokens = 0
            elif delta > 0:
                b.owed += delta

    def give_back(self, scopes: tuple[Scope, ...], taken: Taken) -> None:
        """A call admitted here but refused by a later check (a budget): it used nothing."""
        for scope in scopes:
            b = self._blocks.get(scope.id)
            if b is not None and b.window == taken.window:
                b.requests += 1
                if scope.tpm is not None:
                    b.tokens += taken.tokens

    def headers(self, scopes: tuple[Scope, ...], now: float) -> dict[str, str] | None:
        """OpenAI's x-ratelimit-* headers for the tightest scope (`figures`)."""
        fig = self.figures(scopes, now)
        if fig is None:
            return None
        reset = _duration(fig.reset_seconds)
        h: dict[str, str] = {}
        if fig.limit_requests is not None:
            h["x-ratelimit-limit-requests"] = str(fig.limit_requests)
            h["x-ratelimit-remaining-requests"] = str(fig.remaining_requests)
            h["x-ratelimit-reset-requests"] = reset
        if fig.limit_tokens is not None:
            h["x-ratelimit-limit-tokens"] = str(fig.limit_tokens)
            h["x-ratelimit-remaining-tokens"] = str(fig.remaining_tokens)
            h["x-ratelimit-reset-tokens"] = reset
        return h

    def figures(self, scopes: tuple[Scope, ...], now: float) -> ScopeFigures | None:
        """The x-ratelimit-* figures of the tightest scope: the limit, what the store had left
        at this worker's last take plus this worker's unspent block, and the reset."""
        best: ScopeFigures | None = None
        for scope in scopes:
            b = self._blocks.get(scope.id)
            if b is None:
                continue
            reset = max(b.window + WINDOW_SECONDS - now, 0.0)
            left_r = None if scope.rpm is None else max(0, (b.store_left_requests or 0) + b.requests)
            left_t = None if scope.tpm is None else max(0, (b.store_left_tokens or 0) + b.tokens)
            fig = ScopeFigures(scope.id, scope.rpm, left_r, scope.tpm, left_t, reset)
            if best is None or _tighter(fig, best):
                best = fig
        return best

    async def flush(self, now: float) -> None:
        """Push the tokens owed to the store."""
        for b in list(self._blocks.values()):
            if b.owed:
                owed, b.owed = b.owed, 0
                try:
                    await self._limits.adjust_tokens([b.scope.id], owed, now)
                except BaseException:
                    b.owed += owed
                    raise
        # forget scopes idle for two windows (a key not used any more)
        window = _window(now)
        for sid in [sid for sid, b in self._blocks.items() if b.window < window - WINDOW_SECONDS and not b.owed]:
            del self._blocks[sid]


def _duration(seconds: float) -> str:
    """OpenAI's spelling of a reset: 1s, 6m0s, 20ms."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    s = int(seconds + 0.5)
    return f"{s // 60}m{s % 60}s" if s >= 60 else f"{s}s"


def _refused(b: _Block, now: float) -> RateLimited:
    return RateLimited(b.refusal or "Rate limit reached.", retry_after=max(b.retry_at - now, 0.0))


def _window(now: float) -> float:
    return float(int(now // WINDOW_SECONDS) * int(WINDOW_SECONDS))


def _size(limit: int, store_left: int | None, shares: int, need: int) -> int:
    """A block: at most an eighth of the limit per sharer, and half a sharer's part of what
    the store had left, never less than the call needs."""
    part = limit // (8 * shares)
    if store_left is not None:
        part = min(part, store_left // (2 * shares))
    return max(part, need)


def _tighter(a: ScopeFigures, b: ScopeFigures) -> bool:
    def share(left: int | None, limit: int | None) -> float:
        return 2.0 if left is None or not limit else left / limit

    return min(share(a.remaining_requests, a.limit_requests), share(a.remaining_tokens, a.limit_tokens)) < min(
        share(b.remaining_requests, b.limit_requests), share(b.remaining_tokens, b.limit_tokens))
