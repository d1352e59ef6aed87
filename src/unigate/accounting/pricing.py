"""Cost of one request in USD, from its OpenAI usage object and the model's prices.

Prices come from genai-prices' shipped snapshot (see catalog/models.py), else from the catalog
data file, else from the deployment's config override. Cost fails closed: a model with no known
price costs `None` — never $0 — and is recorded in `unpriced_models` / `unpriced_requests`
(and passed to hooks registered with `on_unpriced`) so metrics can show it.

Token semantics are the gateway's canonical OpenAI usage (providers.md §8.6):
`prompt_tokens` includes cached reads and cache writes; `completion_tokens` includes reasoning.
So cached tokens are carved out of the prompt and billed at the cache-read price, cache writes at
the cache-write price, and reasoning tokens are billed as output (at a separate reasoning price
only where genai-prices has one). This is the same leaf-splitting genai-prices' `calc_price`
does; we evaluate it with plain floats from per-model constants compiled once, because this runs
on every request and genai-prices' general Decimal path costs ~130 µs a call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from unigate.catalog.models import get_catalog

log = logging.getLogger("unigate.pricing")

Tier = tuple[tuple[int, float], ...]
#: a price per token: (base, ((tier_start, price), ...)); tiers apply when prompt_tokens > start.
Price = tuple[float, Tier]

_M = 1_000_000.0


@dataclass(frozen=True, slots=True)
class Rate:
    """Per-token prices of one model (USD per token, already divided by a million)."""

    input: Price | None
    output: Price | None
    cache_read: Price | None = None
    cache_write: Price | None = None
    input_audio: Price | None = None
    output_audio: Price | None = None
    reasoning: Price | None = None
    per_request: float = 0.0

    def cost(self, p: int, o: int, cached: int, written: int, reasoning: int, audio_in: int, audio_out: int) -> float:
        # genai-prices' tiers switch on the whole prompt size (a "cliff"): all tokens at the tier.
        total = self.per_request
        if not (cached or written or reasoning or audio_in or audio_out):
            # most calls: plain input and output tokens (the general path below gives the same sum)
            inp, out = self.input, self.output
            if inp is not None:
                total += p * (_at(inp, p) if inp[1] else inp[0])
            if out is not None:
                total += o * (_at(out, p) if out[1] else out[0])
            return total
        leaf_in = p
        if self.cache_read is not None:
            total += cached * _at(self.cache_read, p)
            leaf_in -= cached
        if self.cache_write is not None:
            total += written * _at(self.cache_write, p)
            leaf_in -= written
        if self.input_audio is not None:
            total += audio_in * _at(self.input_audio, p)
            leaf_in -= audio_in
        if self.input is not None:
            total += leaf_in * _at(self.input, p)
        leaf_out = o
        if self.reasoning is not None:
            total += reasoning * _at(self.reasoning, p)
            leaf_out -= reasoning
        if self.output_audio is not None:
            total += audio_out * _at(self.output_audio, p)
            leaf_out -= audio_out
        if self.output is not None:
            total += leaf_out * _at(self.output, p)
        return total


def _at(price: Price, prompt: int) -> float:
    base, tiers = price
    for start, value in reversed(tiers):
        if prompt > start:
            return value
    return base


def _per_token(value: Any) -> Price | None:
    """A genai-prices price (Decimal or TieredPrices, per million) as a per-token Price."""
    if value is None:
        return None
    tiers = getattr(value, "tiers", None)
    if tiers is None:
        return (float(value) / _M, ())
    return (float(value.base) / _M, tuple((int(t.start), float(t.price) / _M) for t in tiers))


def _compile_gp(mp: Any) -> Rate | None:
    """Compile a genai-prices ModelPrice; None if it has no token price (e.g. priced per audio
    hour, or an empty price list) — such a model is unpriced for token usage, not free."""
    def g(key: str) -> Price | None:
        return _per_token(getattr(mp, key, None))

    inp, out = g("input_mtok"), g("output_mtok")
    if inp is None and out is None:
        return None
    req = getattr(mp, "requests_kcount", None)
    # Usage we never report (cache TTL splits, image/video tokens, web searches, audio cache
    # reads) contributes nothing and leaves the leaves above unchanged, as in genai-prices.
    return Rate(
        input=inp, output=out, cache_read=g("cache_read_mtok"), cache_write=g("cache_write_mtok"),
        input_audio=g("input_audio_mtok"), output_audio=g("output_audio_mtok"),
        reasoning=g("output_reasoning_mtok"), per_request=float(req) / 1000.0 if req is not None else 0.0,
    )


def _flat(input_price: float | None, output_price: float | None, cache_read: float | None = None,
          cache_write: float | None = None) -> Rate:
    def f(v: float | None) -> Price | None:
        return None if v is None else (float(v) / _M, ())

    return Rate(input=f(input_price), output=f(output_price), cache_read=f(cache_read), cache_write=f(cache_write))


class _Pricer:
    """How to get the Rate of one (provider, model): fixed, or from genai-prices' dated list."""

    __slots__ = ("_by_price", "fixed", "gp_model")

    def __init__(self, fixed: Rate | None = None, gp_model: Any = None) -> None:
        self.fixed = fixed
        self.gp_model = gp_model
        self._by_price: dict[int, Rate | None] = {}

    def rate(self) -> Rate | None:
        if self.gp_model is None:
            return self.fixed
        # A list of ConditionalPrice (new prices from a date, off-peak hours): pick the one in
        # force now, compile each distinct ModelPrice once (they live as long as the snapshot).
        mp = self.gp_model.get_prices(datetime.now(UTC))
        key = id(mp)
        try:
            return self._by_price[key]
        except KeyError:
            r = self._by_price[key] = _compile_gp(mp)
            return r


_UNPRICED = _Pricer()
_pricers: dict[tuple[str, str], _Pricer] = {}
_lock = threading.Lock()
_MAX_CACHE = 4096


def _pricer(provider_id: str, model: str) -> _Pricer:
    key = (provider_id, model)
    p = _pricers.get(key)
    if p is not None:
        return p
    cat = get_catalog()
    entry = cat.entry(provider_id, model)
    res = cat.gp.resolve(provider_id, model, entry.gp_override if entry else None)
    if res is not None:
        gmodel = res[1]
        if isinstance(gmodel.prices, list):
            p = _Pricer(gp_model=gmodel)
        else:
            p = _Pricer(fixed=_compile_gp(gmodel.prices))
    elif entry is not None and entry.price is not None:
        pr = entry.price
        p = _Pricer(fixed=_flat(pr.get("input"), pr.get("output"), pr.get("cache_read"), pr.get("cache_write")))
    else:
        p = _UNPRICED
    with _lock:
        if len(_pricers) >= _MAX_CACHE:
            _pricers.clear()
        _pricers[key] = p
    return p


def rate_for(provider_id: str, model: str) -> Rate | None:
    """The per-token rate the gateway would bill this model at right now, or None if unpriced."""
    return _pricer(provider_id, model).rate()


# -- unpriced models: fail closed, visibly ------------------------------------------------------

#: "provider/model" of every model a request could not be priced for (exported as a metric).
unpriced_models: set[str] = set()
#: requests that could not be priced, per "provider/model".
unpriced_requests: dict[str, int] = {}
_hooks: list[Callable[[str], None]] = []


def unpriced_total() -> int:
    return sum(unpriced_requests.values())


def on_unpriced(hook: Callable[[str], None]) -> None:
    """Call `hook("provider/model")` for each request whose cost is unknown (e.g. a metrics counter)."""
    _hooks.append(hook)


def reset_unpriced() -> None:
    unpriced_models.clear()
    unpriced_requests.clear()


def _flag(provider_id: str, model: str) -> None:
    mid = f"{provider_id}/{model}"
    if mid not in unpriced_models:
        unpriced_models.add(mid)
        log.warning("no price known for %s: its cost is recorded as null; set input_price/output_price "
                    "on the deployment to bill it", mid)
    unpriced_requests[mid] = unpriced_requests.get(mid, 0) + 1
    for hook in _hooks:
        try:
            hook(mid)
        except Exception:  # a broken metrics hook must not break accounting
            log.exception("unpriced hook failed")


# -- the per-request entry point ------------------------------------------------------------------


def _int(v: Any) -> int:
    try:
        return max(0, int(v or 0))
    except (TypeError, ValueError):
        return 0


#: (prompt, completion, cached, cache_write, reasoning, audio_in, audio_out) tokens, each >= 0
Counts = tuple[int, int, int, int, int, int, int]


def usage_counts(usage: Mapping[str, Any]) -> Counts:
    """The token counts of a canonical OpenAI usage object, as reported (negative or malformed
    values count as 0). Runs on every request: the details objects, usually all zeros, are
    skipped with one C-level `any()`."""
    p = usage.get("prompt_tokens")
    if type(p) is not int or p < 0:
        p = _int(p)
    o = usage.get("completion_tokens")
    if type(o) is not int or o < 0:
        o = _int(o)
    cached = written = audio_in = reasoning = audio_out = 0
    ptd = usage.get("prompt_tokens_details")
    if ptd and isinstance(ptd, dict) and any(ptd.values()):
        cached, written, audio_in = _int(ptd.get("cached_tokens")), _int(ptd.get("cache_write_tokens")), _int(ptd.get("audio_tokens"))
    ctd = usage.get("completion_tokens_details")
    if ctd and isinstance(ctd, dict) and any(ctd.values()):
        reasoning, audio_out = _int(ctd.get("reasoning_tokens")), _int(ctd.get("audio_tokens"))
    return (p, o, cached, written, reasoning, audio_in, audio_out)


def cost_usd(
    provider_id: str,
    model: str,
    usage: Mapping[str, Any] | None,
    override: tuple[float | None, float | None] | None = None,
) -> float | None:
    """USD cost of one call, or None when it cannot be known.

    `usage` is the canonical OpenAI usage object (prompt_tokens, completion_tokens,
    prompt_tokens_details.{cached_tokens, cache_write_tokens, audio_tokens},
    completion_tokens_details.{reasoning_tokens, audio_tokens}). `override` is the deployment's
    (input_price, output_price) in USD per million tokens; when given it wins: all prompt tokens
    bill at its input price and all completion tokens at its output price, a None side falling
    back to the catalog's base price for that side.

    Returns None (and records the model as unpriced) when no price is known; returns None
    without flagging when `usage` is missing (e.g. a stream cut before the usage arrived).
    """
    if not usage or not isinstance(usage, Mapping):
        return None
    return cost_of(provider_id, model, usage_counts(usage), override)


def cost_of(provider_id: str, model: str, counts: Counts,
            override: tuple[float | None, float | None] | None = None) -> float | None:
    """cost_usd() from counts already taken out of the usage object (the ledger's record has them)."""
    p, o, cached, written, reasoning, audio_in, audio_out = counts
    # Guard against a provider reporting with the other convention (Anthropic-native prompt
    # counts exclude cache; some report reasoning on top of completion): count them on top,
    # which over- rather than under-bills, and keeps every leaf non-negative.
    if cached + written > p:
        p += cached + written
    if reasoning > o:
        o += reasoning
    if audio_in or audio_out:
        audio_in = min(audio_in, p - cached - written)
        audio_out = min(audio_out, o - reasoning)

    if override is not None and (override[0] is not None or override[1] is not None):
        in_price, out_price = override
        if in_price is None or out_price is None:
            base = rate_for(provider_id, model)
            if in_price is None:
                in_price = base.input[0] * _M if base and base.input else None
            if out_price is None:
                out_price = base.output[0] * _M if base and base.output else None
            if (in_price is None and p) or (out_price is None and o):
                _flag(provider_id, model)
                return None
        return (p * float(in_price or 0.0) + o * float(out_price or 0.0)) / _M

    rate = _pricer(provider_id, model).rate()
    if rate is None:
        _flag(provider_id, model)
        return None
    return rate.cost(p, o, cached, written, reasoning, audio_in, audio_out)


__all__ = [
    "Counts",
    "Rate",
    "cost_of",
    "cost_usd",
    "on_unpriced",
    "rate_for",
    "reset_unpriced",
    "unpriced_models",
    "unpriced_requests",
    "unpriced_total",
    "usage_counts",
]
