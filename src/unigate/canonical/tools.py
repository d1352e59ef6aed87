"""Tools in the canonical request: the gateway's reserved tool, and tool-call id rewrites.

Dialects without a native JSON mode for every model (Anthropic, Bedrock) obtain a
`response_format` answer by forcing one tool, `JSON_TOOL`, whose input is the answer; a
`tool_use` with that name in an answer is turned back into message content. The name is
therefore reserved: a client tool may not use it, and every native dialect refuses one that
does with the same 400, so a request does not succeed or fail by the deployment it lands on.

Tool-call ids travel between providers (a history written by one model, continued on
another), and each dialect has its own id rule. `ToolIdRule` keeps a valid id unchanged and
rewrites any other one deterministically (the assistant's call and the tool message that
answers it get the same id) with a hash suffix, so two different ids never merge.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from typing import Any

from unigate.canonical.types import JSON
from unigate.errors import InvalidRequest

#: the forced tool that carries a response_format answer: one name for every dialect
JSON_TOOL = "unigate_structured_output"


def refuse_reserved_tool(body: JSON) -> None:
    """The 400 for a client tool (`tools[]`, or the deprecated `functions[]`) named JSON_TOOL."""
    for key, sub in (("tools", "function"), ("functions", None)):
        items = body.get(key)
        if not isinstance(items, list):
            continue
        for i, t in enumerate(items):
            fn: Any = t.get(sub) if sub is not None and isinstance(t, dict) else t
            if isinstance(fn, dict) and fn.get("name") == JSON_TOOL:
                where = f"{key}[{i}].function.name" if sub is not None else f"{key}[{i}].name"
                raise InvalidRequest(f"The tool name {JSON_TOOL!r} is reserved by the gateway for response_format "
                                     "answers; please rename the tool.", param=where, code="invalid_value")


class ToolIdRule:
    """A dialect's tool-call id rule: ids of `charset` (a regex character-class body) and at
    most `max_len` characters (None: no limit) pass; others become `<sanitised prefix>_<hash>`,
    or `call_<hash>` when nothing of the original is left."""

    __slots__ = ("_bad", "_max_len", "_ok")

    def __init__(self, charset: str, max_len: int | None = None) -> None:
        self._ok = re.compile(f"[{charset}]+")
        self._bad = re.compile(f"[^{charset}]")
        self._max_len = max_len

    def __call__(self, original: str) -> str:
        if self._ok.fullmatch(original) and (self._max_len is None or len(original) <= self._max_len):
            return original
        digest = hashlib.sha256(original.encode()).hexdigest()[:16]
        clean = self._bad.sub("_", original)[: (self._max_len or 64) - 17]
        return f"{clean}_{digest}" if clean.strip("_") else f"call_{digest}"


def short_tool_id(original: str, length: int) -> str:
    """A stable alphanumeric id of `length` chars for a tool-call id from another provider
    (Mistral wants exactly 9)."""
    if len(original) == length and original.isalnum():
        return original
    digest = hashlib.sha256(original.encode()).digest()
    return base64.b32encode(digest).decode().lower().replace("=", "")[:length]


def rewrite_tool_ids(body: JSON, new_id: Callable[[str], str]) -> None:
    """Every tool-call id of the canonical `messages` (assistant `tool_calls[].id`, tool
    `tool_call_id`) through `new_id`; the messages touched are copied, not changed in place."""
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        return
    new_msgs = []
    for m in msgs:
        if isinstance(m, dict) and (m.get("tool_calls") or m.get("tool_call_id")):
            m = dict(m)
            if m.get("tool_call_id"):
                m["tool_call_id"] = new_id(str(m["tool_call_id"]))
            if isinstance(m.get("tool_calls"), list):
                m["tool_calls"] = [
                    {**tc, "id": new_id(str(tc.get("id", "")))} if isinstance(tc, dict) else tc
                    for tc in m["tool_calls"]
                ]
        new_msgs.append(m)
    body["messages"] = new_msgs
