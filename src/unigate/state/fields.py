"""Checks of the settable key and team fields, and their column encodings (shared by backends)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from unigate.state.errors import Invalid
from unigate.state.records import PERIODS, ROLES

_LIMITS = ("rpm", "tpm", "max_parallel")
TEAM_FIELDS = frozenset({"name", "models", "rpm", "tpm", "max_parallel", "budget_usd", "budget_period", "metadata",
                         "uses_credits"})
KEY_FIELDS = TEAM_FIELDS | {"team", "expires_at", "role"}


def check(fields: Mapping[str, Any], allowed: frozenset[str]) -> None:
    """Refuse what the admin API could pass that a store must never hold."""
    unknown = set(fields) - allowed
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(sorted(unknown))}")
    if "name" in fields and not isinstance(fields["name"], str):
        raise Invalid("name must be a string")
    if "models" in fields:
        models = fields["models"]
        if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
            raise Invalid("models must be a list of model ids, aliases or patterns")
    for name in _LIMITS:
        v = fields.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise Invalid(f"{name} must be a non-negative integer or null")
    for name in ("budget_usd", "expires_at"):
        v = fields.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0):
            raise Invalid(f"{name} must be a non-negative number or null")
    if "budget_period" in fields and fields["budget_period"] not in PERIODS:
        raise Invalid(f"budget_period must be one of {', '.join(PERIODS)}")
    if "uses_credits" in fields and not isinstance(fields["uses_credits"], bool):
        raise Invalid("uses_credits must be true or false")
    if "role" in fields and fields["role"] not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}")
    if "team" in fields and fields["team"] is not None and not isinstance(fields["team"], str):
        raise Invalid("team must be a team id or null")
    if "metadata" in fields:
        if not isinstance(fields["metadata"], dict):
            raise Invalid("metadata must be a JSON object")
        try:
            json.dumps(fields["metadata"])
        except (TypeError, ValueError) as e:
            raise Invalid(f"metadata must be JSON: {e}") from None


def dump_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def opt_int(v: Any) -> int | None:
    return None if v is None else int(v)
