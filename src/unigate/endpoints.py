"""The kinds of call the gateway makes: one typed value instead of route strings, so a stage or
an adapter asks `call.endpoint is Endpoint.EMBEDDINGS`, never `"embed" in path`."""

from __future__ import annotations

from enum import StrEnum


class Endpoint(StrEnum):
    """A StrEnum: its value is the label metrics and the ledger record ("chat", ...)."""

    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    COUNT_TOKENS = "count_tokens"

    @property
    def streams(self) -> bool:
        """Whether `stream: true` means anything for this kind of call."""
        return self is Endpoint.CHAT or self is Endpoint.COMPLETIONS
