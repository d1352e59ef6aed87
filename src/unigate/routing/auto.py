"""`model: "auto"`: the gateway picks the model, per request.

Policies: `auto` (= `auto:balanced`), `auto:cheapest`, `auto:fastest`, `auto:balanced`,
`auto:local-first`. The candidates are `routing.auto.models` (globs on `provider/model`; by
default every catalog model of the configured providers, and for `local-first` the embedded
models too), narrowed to those that can do what the request needs: tools, images,
json_schema, streaming (the catalog must say yes: `auto` never guesses), a context window that
holds the prompt estimate, and a price where the policy reads one. The order, first choice
first (the next ones are the fallbacks, three in all):

- cheapest: the catalog price of this request's estimated tokens;
- fastest: the live latency (time to first token for streams, seconds per output token
  otherwise; routing/latency.py), unmeasured models after measured ones;
- balanced: the mean of the two, each as a share of the worst candidate's, plus the error rate;
- local-first: the embedded models that can serve, then the rest as balanced.

Open breakers (health.py) take a candidate out unless none is left. The choice and a short
reason go out in `x-unigate-route`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from unigate.catalog import ModelInfo
from unigate.errors import ModelNotFound, UnsupportedFeature
from unigate.providers.base import Deployment

POLICIES = ("balanced", "cheapest", "fastest", "local-first")
_KEEP = 3  # the pick and two fallbacks
_IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})
#: output tokens assumed for pricing when the request sets no limit
_DEFAULT_OUTPUT = 500


def policy_of(name: str) -> str | None:
    """The policy `name` asks for, or None when it is not an auto name."""
    if name == "auto":
        return "balanced"
    if name.startswith("auto:"):
        p = name[5:]
        if p not in POLICIES:
            raise ModelNotFound(f"Unknown auto policy {p!r}: use auto, or auto:{', auto:'.join(POLICIES)}.",
                                param="model")
        return p
    return None


def needs_of(body: Mapping[str, Any]) -> frozenset[str]:
    """The catalog capabilities a chat request needs."""
    out: set[str] = set()
    if body.get("tools") or body.get("functions"):
        out.add("tools")
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type") == "json_schema":
        out.add("json_schema")
    if body.get("stream") is True:
        out.add("streaming")
    for m in body.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") in _IMAGE_PARTS for p in content):
            out.add("vision")
            break
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Candidate:
    dep: Deployment
    info: ModelInfo
    local: bool


class AutoPicker:
    """Orders the candidates for one request. `latency(dep, stream)` and `error_rate(dep)` read
    the router's live figures and breakers; `available(deps)` applies the breakers."""

    def __init__(self, candidates: Sequence[Candidate], latency: Callable[[Deployment, bool], float | None],
                 error_rate: Callable[[Deployment], float],
                 available: Callable[[list[Deployment]], list[Deployment]]) -> None:
        self.candidates = tuple(candidates)
        self._latency, self._error_rate, self._available = latency, error_rate, available

    def plan(self, policy: str, needs: frozenset[str], input_tokens: int, output_tokens: int,
             stream: bool) -> tuple[list[Deployment], str]:
        out_tokens = output_tokens or _DEFAULT_OUTPUT
        able = [c for c in self.candidates
                if (policy == "local-first" or not c.local)
                and all(c.info.supports(n) is True for n in needs)
                and (c.info.context_window is None or input_tokens + output_tokens <= c.info.context_window)]
        if not able:
            what = ", ".join(sorted(needs)) or "this request"
            raise UnsupportedFeature(f"auto:{policy}: no candidate model is known to support {what} with a prompt of "
                                     f"about {input_tokens} tokens (routing.auto.models lists the candidates).",
                                     param="model")

        def cost(c: Candidate) -> float:
            if c.local:
                return 0.0
            i, o = c.info.input_price, c.info.output_price
            if i is None or o is None:
                return math.inf  # an unknown price is never taken for free
            return (i * input_tokens + o * out_tokens) / 1e6

        def lat(c: Candidate) -> float:
            v = self._latency(c.dep, stream)
            return math.inf if v is None else v

        if policy == "cheapest":
            ranked = sorted(able, key=cost)
        elif policy == "fastest":
            ranked = sorted(able, key=lat)
        else:
            costs = [cost(c) for c in able]
            lats = [lat(c) for c in able]
            worst_cost = max((x for x in costs if math.isfinite(x)), default=0.0) or 1.0
            worst_lat = max((x for x in lats if math.isfinite(x)), default=0.0) or 1.0

            def share(v: float, worst: float) -> float:
                return 1.0 if not math.isfinite(v) else v / worst

            score = {id(c): (share(k, worst_cost) + share(t, worst_lat)) / 2 + self._error_rate(c.dep)
                     for c, k, t in zip(able, costs, lats, strict=True)}
            ranked = sorted(able, key=lambda c: score[id(c)])
            if policy == "local-first":
                ranked = [c for c in ranked if c.local] + [c for c in ranked if not c.local]
        deps = self._available([c.dep for c in ranked])[:_KEEP]
        first = next(c for c in ranked if c.dep is deps[0])
        return deps, _reason(policy, first, cost(first), lat(first), len(able))


def _reason(policy: str, c: Candidate, cost: float, latency: float, n: int) -> str:
    if policy == "cheapest":
        why = "free (runs in the gateway)" if c.local else f"est. ${cost:.6f}"
    elif policy == "fastest":
        why = "unmeasured" if not math.isfinite(latency) else f"{latency * 1000:.1f} ms"
    elif policy == "local-first" and c.local:
        why = "the embedded model can serve it"
    else:
        why = "best price and latency"
    return f"auto:{policy}; {c.dep.public_id}; {why}; {n} candidates"


def matches(patterns: Sequence[str], public_id: str) -> bool:
    return any(fnmatchcase(public_id, p) for p in patterns)
