"""What a virtual key may call. Its `models` list holds model ids (`openai/gpt-4.1-mini`), the
names of aliases and groups (`fast`), globs (`anthropic/*`, `*/gpt-4.1*`) and `auto`.

A request is allowed when the name it asks for is on the list (an alias or group the operator
granted carries its deployments with it); otherwise only the deployments whose `provider/model`
is on the list remain, so a bare name or a fallback never reaches a provider the key may not
use. Nothing left is a 403."""

from __future__ import annotations

from fnmatch import fnmatchcase

from unigate.errors import GatewayError
from unigate.governance.auth import Principal
from unigate.providers.base import Deployment


class ModelNotAllowed(GatewayError):
    status = 403
    type = "permission_error"
    default_code = "model_not_allowed"


def permits(patterns: tuple[str, ...], name: str) -> bool:
    return any(p == name or fnmatchcase(name, p) for p in patterns)


def _lists(principal: Principal) -> tuple[tuple[str, ...], ...]:
    """The key's list and its team's: a call must pass each that is set."""
    return tuple(m for m in (principal.models, principal.team_models) if m)


def check_auto(principal: Principal, asked: str) -> None:
    """A key (or team) with a models list must name `auto` (or the policy asked for) to use it."""
    for patterns in _lists(principal):
        if not (permits(patterns, asked) or permits(patterns, "auto")):
            raise ModelNotAllowed(f"This key may not use {asked[:50]!r}.", param="model")


def auto_permits(principal: Principal, public_id: str) -> bool:
    """Whether `auto` may pick `public_id` for this key: the key must allow `auto` (or the policy
    asked for), and its other patterns, if it has any, narrow the candidates."""
    for patterns in _lists(principal):
        others = tuple(p for p in patterns if not p.startswith("auto"))
        if others and not permits(others, public_id):
            return False
    return True


def allowed(principal: Principal, asked: str, deployments: list[Deployment]) -> list[Deployment]:
    for patterns in _lists(principal):
        if not permits(patterns, asked):
            deployments = [d for d in deployments if permits(patterns, d.public_id)]
            if not deployments:
                raise ModelNotAllowed(f"This key may not use the model {asked[:200]!r}.", param="model")
    return deployments
