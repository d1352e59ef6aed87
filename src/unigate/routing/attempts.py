"""What the pipeline's attempt loop asks of routing, kept out of pipeline.py: the plan under a
request's controls, the timeouts cut to its deadline, what a failure or a success tells the
breakers and live figures, and the retry policy per retry count."""

from __future__ import annotations

import math
import re

import msgspec

from unigate import catalog
from unigate.accounting.ledger import UsageRecord
from unigate.config import Timeouts
from unigate.errors import GatewayError, ModelNotFound, UpstreamError, UpstreamTimeout
from unigate.providers.base import Deployment
from unigate.routing.controls import Controls
from unigate.routing.latency import LiveFigures
from unigate.routing.outcome import FailureKind
from unigate.routing.retry import RetryPolicy
from unigate.routing.router import Router
from unigate.routing.strategies import RequestFacts

_POLICIES: dict[int, RetryPolicy] = {}


def policy_for(retries: int) -> RetryPolicy:
    p = _POLICIES.get(retries)
    if p is None:
        p = _POLICIES[retries] = RetryPolicy(max_retries=retries)
    return p


def within(t: Timeouts, remaining: float) -> tuple[Timeouts, bool]:
    """The deployment's timeouts cut to the caller's remaining time, and whether they were cut
    (a timeout then is the caller's, and does not count against the deployment's health)."""
    if remaining <= 0:
        raise UpstreamTimeout("The request's timeout passed before a deployment answered.")
    if remaining >= t.total:
        return t, False
    return msgspec.structs.replace(t, total=remaining, first_byte=min(t.first_byte, remaining),
                                   connect=min(t.connect, remaining)), True


_OVERFLOW = re.compile(r"context.{0,20}(length|window|limit)|maximum context|prompt is too long|input is too long|"
                       r"too many (input )?tokens", re.IGNORECASE)


def context_overflow(e: GatewayError) -> bool:
    """A provider's 400 for a prompt too long for its model: a model with a larger window may serve it."""
    return isinstance(e, UpstreamError) and e.http_status == 400 and (
        e.code == "context_length_exceeded" or bool(_OVERFLOW.search(e.message)))


def record_success(router: Router, dep: Deployment, fig: LiveFigures, rec: UsageRecord) -> None:
    """What a served call tells the breakers and the latency figures. A stream that failed
    after its first byte counts as a failure of the deployment (a client that left does not)."""
    if rec.stream:
        if rec.error_code is not None and not rec.client_disconnected:
            router.breakers.record_failure(dep.id, FailureKind.CONNECTION)
            return
        router.breakers.record_success(dep.id)
        if rec.ttfb_ms is not None:
            router.live.observe_ttft(fig, rec.ttfb_ms / 1000)
    else:
        router.breakers.record_success(dep.id)
        router.live.observe_completion(fig, rec.latency_ms / 1000, rec.completion_tokens)
    if rec.usage_known and router.live.track_usage:  # tokens are counted only for a `usage` group
        router.live.record_tokens(fig, rec.prompt_tokens + rec.completion_tokens)


def controlled(router: Router, model: str, c: Controls, facts: RequestFacts) -> list[Deployment]:
    """The plan under a request's controls: the model, its `models` and `fallbacks` in turn,
    then the `provider` preferences (OpenRouter's) applied to the whole list."""
    out: list[Deployment] = []
    for n, name in enumerate((model, *c.models, *c.fallbacks)):
        try:
            deps = router.resolve(name, facts)
        except ModelNotFound:
            if n == 0 and not c.models:
                raise
            continue  # a fallback this gateway does not serve is passed over
        out.extend(d for d in deps if not any(x is d for x in out))
    if c.only:
        out = [d for d in out if d.provider.id in c.only]
    if c.ignore:
        out = [d for d in out if d.provider.id not in c.ignore]
    if c.sort == "price":
        out.sort(key=price_of)
    elif c.sort is not None:  # latency, throughput: the live figures, unmeasured last
        out.sort(key=lambda d: latency_of(router, d, facts.stream))
    if c.order:
        rank = {p: i for i, p in enumerate(c.order)}
        out.sort(key=lambda d: rank.get(d.provider.id, len(rank)))
    if not out:
        raise ModelNotFound(f"No deployment of {model!r} is left after the request's provider preferences "
                            "(provider.only / provider.ignore).", param="provider")
    return out if c.allow_fallbacks else out[:1]


def price_of(d: Deployment) -> float:
    if d.input_price is not None or d.output_price is not None:
        return (d.input_price or 0.0) + (d.output_price or 0.0)
    info = catalog.lookup(d.provider.preset.id, d.model)
    if info is None or info.input_price is None or info.output_price is None:
        return float("inf")  # an unknown price is never taken for free
    return info.input_price + info.output_price


def latency_of(router: Router, d: Deployment, stream: bool) -> float:
    ewma = router.live.figures(d.id).latency(stream)
    return ewma.value if ewma.value and not math.isnan(ewma.value) else float("inf")
