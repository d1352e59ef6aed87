"""Enforcement at admit, settlement after: a virtual key's rpm/tpm (quota.py), max_parallel (a
slot per call in the store), budgets and credits (purse.py), for one call.

`admit` runs after the plan (it needs the deployments to price the call's worst case) and before
the first attempt; everything it takes is given back if a later check refuses, so a refused call
counts against nothing. `finish` runs when the call is over — a stream at its end or when the
client left (the upstream is still read for its usage, streams.py) — and charges what the call
used: the cost of every attempt with a usage, at catalog price (plus the configured markup),
and the worst case of an answered attempt whose usage never came (fail closed: a provider bills
what it generated). A periodic task pushes the spend and the tokens owed to the store.
"""

from __future__ import annotations

import asyncio
import logging
import time

from unigate import catalog
from unigate.accounting import pricing
from unigate.accounting.ledger import UsageRecord
from unigate.canonical.types import JSON
from unigate.config import GovernanceConfig
from unigate.endpoints import Endpoint
from unigate.errors import Forbidden, GatewayError, RateLimited, ServiceUnavailable
from unigate.governance.purse import Purse, Purses
from unigate.governance.quota import Quotas, Taken
from unigate.governance.terms import Terms
from unigate.providers.base import NOT_LOOKED_UP, Deployment
from unigate.state.factory import State
from unigate.state.limit_types import Lease

log = logging.getLogger("unigate.governance")


#: worst-case rates are worked out again after this long (a dated price may have changed)
RATES_SECONDS = 300.0
_M = 1_000_000


class PriceUnknown(Forbidden):
    default_code = "model_price_unknown"


class Ticket:
    """What one admitted call holds, and what it has used so far. Defaults are class attributes
    and __init__ sets only what every call has (as UsageRecord: bench/opcount.py)."""

    taken: Taken | None = None
    purse: Purse | None = None
    lease: Lease | None = None
    cost: float = 0.0
    used_tokens: int = 0
    #: the worst case of one attempt on each deployment, for an answer whose usage never came
    worst_of: dict[str, float] | None = None
    worst: float = 0.0

    def __init__(self, terms: Terms, tokens: int, markup: float) -> None:
        self.terms, self.tokens, self.markup = terms, tokens, markup

    def add(self, dep: Deployment, rec: UsageRecord) -> None:
        """One attempt's usage (called for every attempt, failed or not)."""
        if rec.usage_known:
            self.cost += (rec.cost_usd or 0.0) * self.markup
            self.used_tokens += rec.prompt_tokens + rec.completion_tokens
        elif rec.status == 200 and self.worst_of is not None:
            # answered, but the usage never came (a stream cut short): charge the worst case
            self.cost += self.worst_of.get(dep.id, self.worst)
            self.used_tokens += self.tokens


class Enforcer:
    def __init__(self, state: State, cfg: GovernanceConfig, shares: int) -> None:
        self.state = state
        self.cfg = cfg
        self.quotas = Quotas(state.limits, shares)
        self.purses = Purses(state.spend, shares)
        self._markup = 1.0 + cfg.markup
        self._task: asyncio.Task[None] | None = None
        self._rates: dict[str, tuple[float | None, float, int, float]] = {}
        #: refusals by (error code, HTTP status), for the metrics (telemetry/metrics.py): only
        #: the refusing path pays for the count
        self.refused: dict[tuple[str, int], int] = {}

    # ------------------------------------------------------------------ the call

    async def admit(self, terms: Terms, endpoint: Endpoint, body: JSON, size: int,
                    deployments: list[Deployment]) -> tuple[Ticket, list[Deployment]]:
        """Take what the call needs from each limit, or raise (429, 402, 403) holding nothing.
        Counting tokens is free at the providers: it counts against rpm only."""
        now = time.time()
        free = endpoint is Endpoint.COUNT_TOKENS
        out = 0 if endpoint is Endpoint.EMBEDDINGS else _max_output(body)
        prompt = size // 4
        ticket = Ticket(terms, prompt + (out or 0) if terms.counts_tokens and not free else 0, self._markup)
        if free:
            terms = ticket.terms = Terms(terms.rated, terms.parallel, (), terms.counts_tokens)
        if terms.accounts:
            try:
                deployments, ticket.worst_of = self._priced(deployments, prompt, out)
            except PriceUnknown as e:
                self._count(e)
                raise
            ticket.worst = max(ticket.worst_of.values(), default=0.0)
        try:
            if terms.rated:
                ticket.taken = await self.quotas.admit(terms.rated, ticket.tokens, now)
            if terms.accounts:
                ticket.purse = await self.purses.admit(terms.accounts, ticket.worst, now)
            if terms.parallel:
                d = await self.state.limits.acquire(terms.parallel, now)
                if not d.allowed:
                    limit = next(s.max_parallel for s in terms.parallel if s.id == d.refused_scope)
                    kind, _, name = (d.refused_scope or "").partition(":")
                    raise RateLimited(f"Too many calls in flight for {kind} {name}: {limit} at a time.",
                                      retry_after=d.retry_after)
                ticket.lease = d.lease
        except GatewayError as e:
            self._count(e)
            await self._give_back(ticket)
            raise
        except Exception as e:
            # the store did not answer: fail closed (a limit that cannot be checked is not waived)
            log.exception("checking a key's limits in the state store failed")
            await self._give_back(ticket)
            raise ServiceUnavailable("The gateway could not check this key's limits (its state store did not "
                                     "answer); try again shortly.") from e
        except BaseException:
            await self._give_back(ticket)
            raise
        return ticket, deployments

    def _count(self, e: GatewayError) -> None:
        k = (e.code or "refused", e.http_status)
        self.refused[k] = self.refused.get(k, 0) + 1

    def _priced(self, deployments: list[Deployment], prompt: int,
                out: int | None) -> tuple[list[Deployment], dict[str, float]]:
        """The deployments whose worst case is known, and that worst case each. A model with no
        known price is never served at $0 to a key with a budget or credits (unless allowed)."""
        worst: dict[str, float] = {}
        kept: list[Deployment] = []
        rates, now, markup = self._rates, time.monotonic(), self._markup
        for d in deployments:
            # USD for `prompt` input and `out` output tokens (None: the model's output limit)
            # at the deployment's dearest rates (inline: this runs per deployment per call)
            r = rates.get(d.id)
            if r is None or r[3] < now:
                r = rates[d.id] = self._rates_of(d)
            if r[0] is not None:
                worst[d.id] = (prompt * r[0] + (r[2] if out is None else out) * r[1]) * markup
            elif self.cfg.allow_unpriced:
                worst[d.id] = 0.0
            else:
                continue
            kept.append(d)
        if not kept:
            raise PriceUnknown(f"{deployments[0].public_id if deployments else 'This model'} has no known price, and "
                               "this key has a budget or pays with credits: the gateway does not serve it at $0.",
                               param="model")
        return kept, worst

    def _rates_of(self, d: Deployment) -> tuple[float | None, float, int, float]:
        """(USD per input token, per output token, the output tokens of a call without
        max_tokens, valid until). Per-token rates at a million-token prompt: for a model with
        tiered prices that is its dearest tier, so the worst case is never under-estimated."""
        info = d.catalog_info
        if info is NOT_LOOKED_UP:
            info = d.catalog_info = catalog.lookup(d.provider.preset.id, d.model)
        default_out = (info.max_output if info is not None else None) or self.cfg.default_max_tokens
        until = time.monotonic() + RATES_SECONDS
        pid, model = d.provider.preset.id, d.model
        override = (d.input_price, d.output_price) if d.input_price is not None or d.output_price is not None else None
        if override is None and pricing.rate_for(pid, model) is None:
            return None, 0.0, default_out, until
        prompt_only = pricing.cost_of(pid, model, (_M, 0, 0, 0, 0, 0, 0), override)
        both = pricing.cost_of(pid, model, (_M, _M, 0, 0, 0, 0, 0), override)
        if prompt_only is None or both is None:
            return None, 0.0, default_out, until
        return prompt_only / _M, (both - prompt_only) / _M, default_out, until

    async def finish(self, ticket: Ticket) -> None:
        if ticket.taken is not None:
            self.quotas.settle(ticket.terms.rated, ticket.taken, ticket.used_tokens)
        if ticket.purse is not None:
            self.purses.settle(ticket.purse, ticket.worst, ticket.cost)
        if ticket.lease is not None:
            lease, ticket.lease = ticket.lease, None
            await self.state.limits.release(lease)

    async def _give_back(self, ticket: Ticket) -> None:
        """A refused call: what the earlier checks took goes back (nothing was used)."""
        if ticket.taken is not None:
            self.quotas.give_back(ticket.terms.rated, ticket.taken)
            ticket.taken = None
        if ticket.purse is not None:
            self.purses.settle(ticket.purse, ticket.worst, 0.0)
            ticket.purse = None
        if ticket.lease is not None:
            await self.state.limits.release(ticket.lease)
            ticket.lease = None

    def headers(self, ticket: Ticket) -> dict[str, str] | None:
        """OpenAI's x-ratelimit-* headers for the tightest rpm/tpm scope of the call."""
        rated = ticket.terms.rated
        return self.quotas.headers(rated, time.time()) if rated else None

    # ------------------------------------------------------------------ the background

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.flush_interval)
            try:
                await self.flush()
            except Exception:  # a store that is down for a moment: the next flush tries again
                log.exception("pushing spend and token counts to the state store failed")

    async def flush(self) -> None:
        now = time.time()
        await self.quotas.flush(now)
        await self.purses.flush(now)

    async def close(self) -> None:
        """Push everything and give every reservation back (shutdown)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        now = time.time()
        await self.quotas.flush(now)
        await self.purses.close(now)


def _max_output(body: JSON) -> int | None:
    v = body.get("max_completion_tokens") or body.get("max_tokens")
    return v if type(v) is int and v > 0 else None
