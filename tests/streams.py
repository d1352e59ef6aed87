"""Helpers for reading OpenAI SDK streams in tests."""

from __future__ import annotations

from typing import Any


async def collect(stream: Any) -> list[Any]:
    return [c async for c in stream]


def text_of(chunks: list[Any]) -> str:
    """The content deltas of a chat stream, joined."""
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
