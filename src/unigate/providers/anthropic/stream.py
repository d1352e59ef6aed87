"""Anthropic Messages SSE -> canonical `chat.completion.chunk` dicts (§2.5, §8.9 of the wire
reference; event shapes from anthropic-sdk-python `types/raw_*_event.py`)."""

from __future__ import annotations

from typing import Any

import orjson

from unigate.canonical.tools import JSON_TOOL
from unigate.canonical.types import JSON
from unigate.errors import UpstreamUnavailable
from unigate.providers.anthropic.response import finish_reason, stream_error, usage
from unigate.providers.base import ChunkMaker
from unigate.providers.sse import SSEDecoder, SSEEvent

# What an Anthropic content block index stands for in the OpenAI stream.
_TEXT, _THINKING, _TOOL, _ANSWER, _OTHER = range(5)


class AnthropicStreamDecoder:
    """One per upstream stream. Anthropic numbers content blocks across all types; OpenAI
    numbers tool calls only, so tool_use blocks get their own running index."""

    def __init__(self, model: str, provider: str) -> None:
        self._sse = SSEDecoder()
        self._provider = provider
        self._maker = ChunkMaker(model)
        self._blocks: dict[int, tuple[int, int]] = {}  # anthropic index -> (kind, openai tool index)
        self._got_args: set[int] = set()  # tool blocks whose input arrived as input_json_delta
        self._start_input: dict[int, Any] = {}  # tool blocks that came with a complete input
        self._tool_count = 0
        self._native_usage: JSON = {}
        self._stop_reason: str | None = None
        self._started = False
        self._done = False
        self.usage: JSON | None = None

    def feed(self, data: bytes) -> list[JSON]:
        return self._handle(self._sse.feed(data))

    def close(self) -> list[JSON]:
        out = self._handle(self._sse.close())
        if not self._done:
            raise UpstreamUnavailable(f"{self._provider}: the upstream stream ended before message_stop",
                                      provider=self._provider)
        return out

    def _handle(self, events: list[SSEEvent]) -> list[JSON]:
        out: list[JSON] = []
        for ev in events:
            if ev.event == "ping" or not ev.data:
                continue
            try:
                payload = orjson.loads(ev.data)
            except orjson.JSONDecodeError:
                raise UpstreamUnavailable(f"{self._provider}: unreadable stream event {ev.data[:200]!r}",
                                          provider=self._provider) from None
            if not isinstance(payload, dict):
                raise UpstreamUnavailable(f"{self._provider}: a stream event is not a JSON object", provider=self._provider)
            kind = payload.get("type") or ev.event
            if kind == "error" or ev.event == "error":
                raise stream_error(payload, self._provider)
            handler = _HANDLERS.get(kind)
            if handler is not None:  # new event types may be added: ignore unknown ones (§2.5)
                handler(self, payload, out)
        return out

    # -------------------------------------------------------------- event handlers

    def _message_start(self, p: JSON, out: list[JSON]) -> None:
        msg = p.get("message") or {}
        if msg.get("model"):
            self._maker.model = msg["model"]
        if msg.get("id"):
            self._maker.id = msg["id"]
        self._merge_usage(msg.get("usage"))
        if not self._started:
            self._started = True
            out.append(self._maker.chunk({"role": "assistant", "content": ""}))

    def _block_start(self, p: JSON, out: list[JSON]) -> None:
        idx = int(p.get("index", 0))
        blk = p.get("content_block") or {}
        t = blk.get("type")
        if t == "text":
            self._blocks[idx] = (_TEXT, -1)
            if blk.get("text"):
                out.append(self._maker.chunk({"content": blk["text"]}))
        elif t == "thinking":
            self._blocks[idx] = (_THINKING, -1)
            if blk.get("thinking"):
                out.append(self._maker.chunk({"reasoning_content": blk["thinking"]}))
        elif t == "tool_use" and blk.get("name") == JSON_TOOL:
            self._blocks[idx] = (_ANSWER, -1)
            if blk.get("input"):
                self._start_input[idx] = blk["input"]
        elif t == "tool_use":
            n = self._tool_count
            self._tool_count += 1
            self._blocks[idx] = (_TOOL, n)
            if blk.get("input"):
                self._start_input[idx] = blk["input"]
            out.append(self._maker.chunk({"tool_calls": [{"index": n, "id": blk.get("id"), "type": "function",
                                                          "function": {"name": blk.get("name"), "arguments": ""}}]}))
        else:
            self._blocks[idx] = (_OTHER, -1)  # redacted_thinking, server tools: no OpenAI counterpart

    def _block_delta(self, p: JSON, out: list[JSON]) -> None:
        idx = int(p.get("index", 0))
        kind, n = self._blocks.get(idx, (_OTHER, -1))
        d = p.get("delta") or {}
        t = d.get("type")
        if t == "text_delta" and d.get("text"):
            out.append(self._maker.chunk({"content": d["text"]}))
        elif t == "thinking_delta" and d.get("thinking"):
            out.append(self._maker.chunk({"reasoning_content": d["thinking"]}))
        elif t == "input_json_delta" and d.get("partial_json"):  # the first fragment may be ""
            self._got_args.add(idx)
            if kind == _TOOL:
                out.append(self._maker.chunk({"tool_calls": [{"index": n, "function": {"arguments": d["partial_json"]}}]}))
            elif kind == _ANSWER:
                out.append(self._maker.chunk({"content": d["partial_json"]}))
        # signature_delta / citations_delta: nothing to say in OpenAI terms

    def _block_stop(self, p: JSON, out: list[JSON]) -> None:
        idx = int(p.get("index", 0))
        kind, n = self._blocks.get(idx, (_OTHER, -1))
        full = self._start_input.pop(idx, None)
        if full is None or idx in self._got_args:
            return
        # the input came whole in content_block_start and no fragments followed
        args = orjson.dumps(full).decode()
        if kind == _TOOL:
            out.append(self._maker.chunk({"tool_calls": [{"index": n, "function": {"arguments": args}}]}))
        elif kind == _ANSWER:
            out.append(self._maker.chunk({"content": args}))

    def _message_delta(self, p: JSON, out: list[JSON]) -> None:
        d = p.get("delta") or {}
        if d.get("stop_reason"):
            self._stop_reason = d["stop_reason"]
        self._merge_usage(p.get("usage"))

    def _message_stop(self, p: JSON, out: list[JSON]) -> None:
        if self._done:
            return
        self._done = True
        out.append(self._maker.chunk({}, finish_reason=finish_reason(self._stop_reason, self._tool_count > 0)))

    def _merge_usage(self, u: Any) -> None:
        # message_start holds input and cache counts; message_delta's numbers are cumulative
        # and may repeat them, so later non-null values win (§2.5, §8.6)
        if not isinstance(u, dict):
            return
        self._native_usage.update({k: v for k, v in u.items() if v is not None})
        self.usage = usage(self._native_usage)


_HANDLERS = {
    "message_start": AnthropicStreamDecoder._message_start,
    "content_block_start": AnthropicStreamDecoder._block_start,
    "content_block_delta": AnthropicStreamDecoder._block_delta,
    "content_block_stop": AnthropicStreamDecoder._block_stop,
    "message_delta": AnthropicStreamDecoder._message_delta,
    "message_stop": AnthropicStreamDecoder._message_stop,
}
