"""Canonical chat.completion.chunk stream -> Anthropic Messages SSE, and the `Egress` of the
Anthropic surface (the event sequence of /work/shared/reference/providers.md §2.5):

    message_start
    content_block_start / content_block_delta* / content_block_stop   per block, one at a time
    message_delta  {stop_reason, stop_sequence}, usage                  in finish(), usage known
    message_stop

Blocks open as the chunks need them: reasoning -> a `thinking` block (thinking_delta), content
-> a `text` block (text_delta), each OpenAI tool-call index -> its own `tool_use` block whose
argument fragments are relayed as `input_json_delta` (not buffered, so a client sees the input
as it is generated). A new kind of content closes the open block first, as Anthropic never
interleaves blocks. Should an upstream interleave the argument fragments of parallel tool calls,
a late fragment is sent with its (already closed) block's index; the SDK accumulates by index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from unigate.canonical.types import JSON
from unigate.errors import GatewayError, UpstreamUnavailable
from unigate.surfaces.anthropic.response import (
    error_object,
    message_id,
    obj,
    reasoning_of,
    stop_reason,
    to_message,
    tool_use_id,
    usage,
)


def event(name: str, data: JSON) -> bytes:
    """One SSE event; `data.type` equals the event name, as Anthropic sends it."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class AnthropicStreamEncoder:
    def __init__(self, model: str, stops: Sequence[str] | None = None, rid: str | None = None) -> None:
        self.model = model
        self.stops = stops
        self.rid = rid
        self.started = False
        self.index = -1  # the Anthropic index of the last block opened
        self.open: str | None = None  # "text" | "thinking" | "tool" while a block is open
        self.tools: dict[int, int] = {}  # OpenAI tool-call index -> Anthropic block index
        self.finish_reason: str | None = None
        self.matched: Any = None  # vLLM-style choices[].stop_reason
        self.refused = False
        self.usage_seen: JSON | None = None

    # ------------------------------------------------------------------ StreamEncoder

    def chunk(self, chunk: JSON) -> bytes:
        out: list[bytes] = []
        if not self.started:
            out.append(self._start(chunk.get("id"), chunk.get("model")))
        if isinstance(chunk.get("usage"), dict):
            self.usage_seen = chunk["usage"]
        choices = chunk.get("choices")
        if choices and isinstance(choices[0], dict):
            choice = choices[0]
            delta = obj(choice.get("delta"))
            reasoning = reasoning_of(delta)
            if reasoning:
                out.append(self._delta("thinking", {"type": "thinking_delta", "thinking": reasoning}))
            text = delta.get("content")
            if isinstance(text, str) and text:
                out.append(self._delta("text", {"type": "text_delta", "text": text}))
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                self.refused = True
                out.append(self._delta("text", {"type": "text_delta", "text": refusal}))
            for tc in delta.get("tool_calls") or ():
                if isinstance(tc, dict):
                    out.append(self._tool(tc))
            fc = delta.get("function_call")  # the deprecated single-call form
            if isinstance(fc, dict):
                out.append(self._tool({"index": 0, "id": None, "function": fc}))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            if choice.get("stop_reason") is not None:
                self.matched = choice["stop_reason"]
        return b"".join(out)

    def finish(self, usage_: JSON | None) -> bytes:
        out: list[bytes] = []
        if not self.started:
            out.append(self._start(None, None))
        out.append(self._close())
        if self.finish_reason is None:
            # the upstream stream ended without saying it was done: a truncated answer must not
            # look like a complete one
            err = UpstreamUnavailable("the upstream stream ended before the answer was complete")
            out.append(self.error(err))
            return b"".join(out)
        reason, seq = stop_reason(self.finish_reason, bool(self.tools), self.matched, self.stops)
        if self.refused and reason == "end_turn":
            reason = "refusal"
        u = usage(usage_ if usage_ is not None else self.usage_seen)
        out.append(event("message_delta", {"type": "message_delta",
                                           "delta": {"stop_reason": reason, "stop_sequence": seq}, "usage": u}))
        out.append(event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def error(self, err: GatewayError) -> bytes:
        return event("error", error_object(err, self.rid))

    # ------------------------------------------------------------------ blocks

    def _start(self, upstream_id: Any, served: Any) -> bytes:
        self.started = True
        # the model that served the stream, as the upstream names it; else the name asked for
        model = served if isinstance(served, str) and served else self.model
        msg: JSON = {"id": message_id(upstream_id), "type": "message", "role": "assistant", "model": model,
                     "content": [], "stop_reason": None, "stop_sequence": None,
                     # the numbers arrive with the last chunk; message_delta carries them all
                     "usage": {"input_tokens": 0, "output_tokens": 0}}
        return event("message_start", {"type": "message_start", "message": msg})

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return event("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def _open(self, kind: str, block: JSON) -> bytes:
        out = self._close()
        self.index += 1
        self.open = kind
        return out + event("content_block_start", {"type": "content_block_start", "index": self.index,
                                                   "content_block": block})

    def _delta(self, kind: str, delta: JSON) -> bytes:
        out = b""
        if self.open != kind:
            empty = ({"type": "text", "text": ""} if kind == "text"
                     else {"type": "thinking", "thinking": "", "signature": ""})
            out = self._open(kind, empty)
        return out + event("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta})

    def _tool(self, tc: JSON) -> bytes:
        idx = tc.get("index")
        n = idx if isinstance(idx, int) else 0
        fn = obj(tc.get("function"))
        out = b""
        if n not in self.tools:
            out = self._open("tool", {"type": "tool_use", "id": tool_use_id(tc.get("id")), "name": fn.get("name") or "",
                                      "input": {}})
            self.tools[n] = self.index
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            out += event("content_block_delta", {"type": "content_block_delta", "index": self.tools[n],
                                                 "delta": {"type": "input_json_delta", "partial_json": args}})
        return out


class AnthropicEgress:
    """Per request: the answer names the model that served it (the client's name when the
    upstream's answer names none)."""

    relay_openai = False

    def __init__(self, model: str, stops: Sequence[str] | None = None, rid: str | None = None) -> None:
        self.model = model
        self.stops = stops
        self.rid = rid

    def encode_json(self, obj: JSON) -> bytes:
        return orjson.dumps(to_message(obj, self.model, self.stops))

    def stream_encoder(self, body: JSON) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(self.model, self.stops, self.rid)
