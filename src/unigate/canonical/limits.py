"""The output-token limit of a canonical request.

OpenAI has two names for it: `max_tokens` (deprecated, still what most clients send) and
`max_completion_tokens` (what reasoning models require). When a body has both, the newer
`max_completion_tokens` wins on every dialect; an explicit `null` counts as not set.
"""

from __future__ import annotations

from typing import cast

from unigate.canonical.types import JSON


def max_output_tokens(body: JSON) -> int | None:
    """The limit the client asked for, or None (the surface has checked it is an integer)."""
    v = body.get("max_completion_tokens")
    if v is None:
        v = body.get("max_tokens")
    return cast("int | None", v)


def max_tokens_param(body: JSON) -> str:
    """The name of the field the limit came from, for a 400 that names what the client sent."""
    return "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
