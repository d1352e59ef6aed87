"""Per-request routing controls, in the conventions clients already use, taken out of the body
(never forwarded upstream):

- LiteLLM: `timeout` (seconds for the whole call), `fallbacks` (names tried after the model),
  `num_retries` (retries of the last deployment left);
- OpenRouter: `models` (an ordered fallback list) and `provider` (`order`, `only`, `ignore`:
  provider ids; `allow_fallbacks`: false tries only the first choice; `sort`: `price`,
  `latency` or `throughput`)."""

from __future__ import annotations

from dataclasses import dataclass

from unigate.canonical.types import JSON
from unigate.errors import InvalidRequest

KEYS = frozenset({"timeout", "fallbacks", "num_retries", "models", "provider"})
_SORTS = ("price", "latency", "throughput")


@dataclass(frozen=True, slots=True)
class Controls:
    timeout: float | None = None
    fallbacks: tuple[str, ...] = ()
    num_retries: int | None = None
    models: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    allow_fallbacks: bool = True
    sort: str | None = None


NONE = Controls()


def take(body: JSON) -> Controls:
    """The controls in `body`, removed from it; NONE when there are none (the common case)."""
    if KEYS.isdisjoint(body):
        return NONE
    out: dict[str, object] = {}
    t = body.pop("timeout", None)
    if t is not None:
        if type(t) not in (int, float) or not 0 < t <= 3600:
            raise _bad("timeout", "a number of seconds in (0, 3600]")
        out["timeout"] = float(t)
    out["fallbacks"] = _names(body.pop("fallbacks", None), "fallbacks")
    out["models"] = _names(body.pop("models", None), "models")
    n = body.pop("num_retries", None)
    if n is not None:
        if type(n) is not int or not 0 <= n <= 10:
            raise _bad("num_retries", "an integer 0..10")
        out["num_retries"] = n
    p = body.pop("provider", None)
    if p is not None:
        if not isinstance(p, dict):
            raise _bad("provider", "an object (order, only, ignore, allow_fallbacks, sort)")
        unknown = set(p) - {"order", "only", "ignore", "allow_fallbacks", "sort"}
        if unknown:
            raise _bad(f"provider.{min(unknown)}", "one of order, only, ignore, allow_fallbacks, sort")
        out["order"] = _names(p.get("order"), "provider.order")
        out["only"] = _names(p.get("only"), "provider.only")
        out["ignore"] = _names(p.get("ignore"), "provider.ignore")
        af = p.get("allow_fallbacks", True)
        if type(af) is not bool:
            raise _bad("provider.allow_fallbacks", "a boolean")
        out["allow_fallbacks"] = af
        sort = p.get("sort")
        if sort is not None and sort not in _SORTS:
            raise _bad("provider.sort", f"one of {', '.join(_SORTS)}")
        out["sort"] = sort
    return Controls(**out)  # type: ignore[arg-type]


def _names(v: object, param: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v) or len(v) > 20:
        raise _bad(param, "a list of at most 20 non-empty strings")
    return tuple(v)


def _bad(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid {param}: expected {expected}.", param=param, code="invalid_value")
