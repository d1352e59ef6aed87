"""`:streamGenerateContent?alt=sse` -> canonical `chat.completion.chunk`s.

Each SSE event is `data: <GenerateContentResponse>` carrying only new parts; there is no
`[DONE]`, the body just ends. Traps handled here:
- a `functionCall` arrives whole in one chunk (full `args`), so it becomes one tool-call delta
  with the complete arguments string;
- newer models send the function call and the `finishReason: STOP` in *different* chunks, so
  the decoder remembers per candidate that a call was seen and reports `tool_calls`
  (envoyproxy/ai-gateway#2399; googleapis/python-genai#2868 for the same bug in Google's layer);
- `usageMetadata` may ride on several chunks: the last one wins;
- an error can arrive mid-stream either as `data: {"error": {...}}` or as a bare, pretty-printed
  JSON object spread over several non-`data:` lines (python-genai `_api_client.py` brace-balances
  such lines); both raise the mapped UpstreamError.
"""

from __future__ import annotations

from typing import Any

import orjson

from unigate.canonical.types import JSON
from unigate.errors import UpstreamUnavailable
from unigate.providers.base import ChunkMaker
from unigate.providers.gemini.errors import error_from_object
from unigate.providers.gemini.response import (
    PartReader,
    blocked_message,
    completion_id,
    finish_reason,
    logprobs_from,
    usage_from,
)
from unigate.providers.sse import SSEDecoder, SSEEvent

_SSE_FIELDS = (b"data", b"event", b"id", b"retry", b":")


class _GeminiSSE(SSEDecoder):
    """SSE decoding plus collection of bare JSON objects written outside `data:` lines."""

    __slots__ = ("_depth", "_raw", "raw")

    def __init__(self) -> None:
        super().__init__()
        self._raw: list[bytes] = []
        self._depth = 0
        self.raw: list[bytes] = []

    def handle_line(self, line: bytes, out: list[SSEEvent]) -> None:
        if not self._raw and (not line or line.startswith(_SSE_FIELDS)):
            super().handle_line(line, out)
            return
        if not line.strip() and not self._raw:
            return
        self._raw.append(line)
        self._depth += line.count(b"{") - line.count(b"}")
        if self._depth <= 0:
            self.raw.append(b"\n".join(self._raw))
            self._raw, self._depth = [], 0

    def close(self) -> list[SSEEvent]:
        out = super().close()
        if self._raw:
            self.raw.append(b"\n".join(self._raw))
            self._raw, self._depth = [], 0
        return out


class _Candidate:
    __slots__ = ("finished", "reader", "role_sent", "saw_call")

    def __init__(self, seed: str) -> None:
        self.reader = PartReader(seed)
        self.role_sent = False
        self.saw_call = False
        self.finished = False


class GeminiStreamDecoder:
    def __init__(self, model: str, provider: str) -> None:
        self._sse = _GeminiSSE()
        self._model = model
        self._provider = provider
        self._maker: ChunkMaker | None = None
        self._cands: dict[int, _Candidate] = {}
        self._blocked = False
        self.usage: JSON | None = None

    def feed(self, data: bytes) -> list[JSON]:
        return self._process(self._sse.feed(data))

    def close(self) -> list[JSON]:
        out = self._process(self._sse.close())
        if self._maker is None:
            raise UpstreamUnavailable(f"{self._provider}: the stream ended before any data", provider=self._provider)
        if not self._blocked and (not self._cands or not all(c.finished for c in self._cands.values())):
            raise UpstreamUnavailable(f"{self._provider}: the stream ended without a finish reason (truncated)",
                                      provider=self._provider)
        return out

    def _process(self, events: list[SSEEvent]) -> list[JSON]:
        out: list[JSON] = []
        for ev in events:
            if ev.data.strip():
                self._handle(_loads(ev.data.encode(), self._provider), out)
        while self._sse.raw:
            raw = self._sse.raw.pop(0)
            try:
                obj = orjson.loads(raw.strip().strip(b",[]"))
            except orjson.JSONDecodeError:
                continue  # stray non-SSE text; python-genai would fail here, we keep the stream
            self._handle(obj, out)
        return out

    def _handle(self, obj: Any, out: list[JSON]) -> None:
        if not isinstance(obj, dict):
            raise UpstreamUnavailable(f"{self._provider}: a stream chunk is not a JSON object", provider=self._provider)
        if "error" in obj:
            raise error_from_object(obj["error"], self._provider)
        if self._maker is None:
            self._maker = ChunkMaker(obj.get("modelVersion") or self._model, id=completion_id(obj))
        mk = self._maker
        usage = usage_from(obj.get("usageMetadata"))
        if usage is not None:
            self.usage = usage
        cands = obj.get("candidates") or []
        if not cands:
            refusal = blocked_message(obj.get("promptFeedback"))
            if refusal is not None and not self._blocked:
                self._blocked = True
                out.append(mk.chunk({"role": "assistant", "content": None, "refusal": refusal},
                                    finish_reason="content_filter"))
            return
        for pos, cand in enumerate(cands):
            index = cand["index"] if isinstance(cand.get("index"), int) else pos
            st = self._cands.get(index)
            if st is None:
                st = self._cands[index] = _Candidate(mk.id)
            text, thoughts, calls = st.reader.read((cand.get("content") or {}).get("parts"))
            deltas: list[JSON] = []
            if thoughts:
                deltas.append({"reasoning_content": thoughts})
            if text:
                deltas.append({"content": text})
            if calls:
                st.saw_call = True
                deltas.append({"tool_calls": calls})
            lp = logprobs_from(cand.get("logprobsResult"))
            for d in deltas:
                out.append(self._chunk(st, d, index, None))
            if lp is not None and out and deltas:
                out[-1]["choices"][0]["logprobs"] = lp
            if cand.get("finishReason") and not st.finished:
                st.finished = True
                out.append(self._chunk(st, {}, index, finish_reason(cand["finishReason"], st.saw_call)))

    def _chunk(self, st: _Candidate, delta: JSON, index: int, finish: str | None) -> JSON:
        assert self._maker is not None
        if not st.role_sent:
            st.role_sent = True
            delta = {"role": "assistant", **delta} if delta else {"role": "assistant", "content": ""}
        return self._maker.chunk(delta, finish_reason=finish, index=index)


def _loads(data: bytes, provider: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamUnavailable(f"{provider}: unreadable stream event: {data[:200]!r}", provider=provider) from None
