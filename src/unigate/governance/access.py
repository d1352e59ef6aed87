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


def check_auto(principal: Principal, asked: str) -> None:
    """A key with a models list must name `auto` (or the policy asked for) to use it."""
    if principal.models and not (permits(principal.models, asked) or permits(principal.models, "auto")):
        raise ModelNotAllowed(f"This key may not use {asked[:50]!r}.", param="model")


def auto_permits(principal: Principal, public_id: str) -> bool:
    """Whether `auto` may pick `public_id` for this key: the key must allow `auto` (or the policy
    asked for), and its other patterns, if it has any, narrow the candidates."""
    others = tuple(p for p in principal.models if not p.startswith("auto"))
    return not others or permits(others, public_id)


def allowed(principal: Principal, asked: str, deployments: list[Deployment]) -> list[Deployment]:
    patterns = principal.models
    if permits(patterns, asked):
        return deployments
    kept = [d for d in deployments if permits(patterns, d.public_id)]
    if not kept:
        raise ModelNotAllowed(f"This key may not use the model {asked[:200]!r}.", param="model")
    return kept
