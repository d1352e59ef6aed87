"""Function calling on the embedded model, answer side: the grammar-constrained text
`{"name": "<tool>", "arguments": <JSON>}` read as it is generated, turned into OpenAI's tool call.

Streamed as OpenAI streams a call: one delta with the call's id, type and name (arguments ""),
then deltas of argument text, then finish_reason "tool_calls". The argument text is the model's
own (the grammar fixes its spacing); the call's closing brace is held back until it is known not
to belong to the arguments, so the argument deltas join to exactly `arguments`.
"""

from __future__ import annotations

import secrets

from unigate.canonical.types import JSON
from unigate.errors import UpstreamUnavailable
from unigate.providers.local.tools import ToolTurn, call_prefix

#: what may be the call's own end (the arguments' optional space and the closing brace).
_CALL_END = " }"


def call_id() -> str:
    return "call_" + secrets.token_hex(12)


class ToolCallReader:
    """Feed it the text pieces; it returns the tool-call deltas to send for each."""

    __slots__ = ("_prefixes", "_sent", "id", "name", "text")

    def __init__(self, turn: ToolTurn) -> None:
        self._prefixes = [(call_prefix(t.name), t.name) for t in turn.tools]
        self.text = ""
        self.name: str | None = None
        self.id = call_id()
        #: how far into `text` argument text has been handed out
        self._sent = 0

    def feed(self, piece: str) -> list[JSON]:
        self.text += piece
        out: list[JSON] = []
        if self.name is None:
            for prefix, name in self._prefixes:
                if self.text.startswith(prefix):
                    self.name, self._sent = name, len(prefix)
                    out.append({"index": 0, "id": self.id, "type": "function",
                                "function": {"name": name, "arguments": ""}})
                    break
            else:
                return out
        self._hand_out(len(self.text.rstrip(_CALL_END)), out)
        return out

    def finish(self, complete: bool) -> list[JSON]:
        """The last deltas. `complete`: the grammar's end was reached (else the output was cut
        short, by max_tokens, and the arguments are as far as they got)."""
        out: list[JSON] = []
        if self.name is None:
            if complete:  # the grammar makes this impossible; say so rather than answer nonsense
                raise UpstreamUnavailable(f"local: the model's output is not a tool call: {self.text[:200]!r}",
                                          provider="local")
            return out
        end = len(self.text)
        if complete:
            end = len(self.text[:-1].rstrip(" ")) if self.text.endswith("}") else end
        self._hand_out(end, out)
        return out

    @property
    def arguments(self) -> str:
        """The argument text handed out so far (all of it, after `finish`)."""
        return self.text[len(call_prefix(self.name)):self._sent] if self.name is not None else ""

    def message_call(self) -> JSON:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}

    def _hand_out(self, end: int, out: list[JSON]) -> None:
        if end > self._sent:
            out.append({"index": 0, "function": {"arguments": self.text[self._sent:end]}})
            self._sent = end
