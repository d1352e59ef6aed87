"""ConverseStream (`application/vnd.amazon.eventstream`) -> canonical `chat.completion.chunk`s.

The body is binary event-stream frames (length-prefixed, two CRC32s); botocore's
`EventStreamBuffer` reassembles them from whatever pieces TCP delivers and validates both
checksums. Each frame's `:event-type` header names the ConverseStreamOutput member and its
payload is that member's JSON without the wrapper key, plus a padding field `p` that is ignored
(/work/shared/reference/providers.md §5.3). Mapping (§8.9):

    messageStart                      -> {"role": "assistant", "content": ""}
    contentBlockStart.start.toolUse   -> tool call start (index, id, name, arguments "")
    contentBlockDelta.delta.text      -> {"content": ...}
    contentBlockDelta.delta.toolUse   -> tool call arguments fragment
    contentBlockDelta.reasoningContent-> {"reasoning_content": ...}
    messageStop.stopReason            -> finish chunk
    metadata.usage                    -> .usage (arrives after messageStop)
    :message-type exception / error   -> raises the mapped UpstreamError
"""

from __future__ import annotations

from typing import Any

import orjson
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError

from unigate.canonical.tools import JSON_TOOL
from unigate.canonical.types import JSON
from unigate.errors import UpstreamError, UpstreamUnavailable
from unigate.providers.base import ChunkMaker
from unigate.providers.bedrock.errors import make_error, stream_error
from unigate.providers.bedrock.response import finish_reason, usage_from


class ConverseStreamDecoder:
    def __init__(self, model: str, pid: str) -> None:
        self.usage: JSON | None = None
        self._pid = pid
        self._buf = EventStreamBuffer()
        #: bytes fed but not yet part of a whole frame (the pipeline bounds it)
        self.unparsed = 0
        self._mk = ChunkMaker(model)
        self._role_sent = False
        self._tools: dict[int, int] = {}  # contentBlockIndex -> OpenAI tool_calls index
        self._json_blocks: set[int] = set()  # blocks of the forced JSON tool: their input is content
        self._stopped = False
        #: an exception frame that arrived after chunks in the same read: raised on the next call,
        #: so the chunks before it still reach the client.
        self._error: UpstreamError | None = None

    def feed(self, data: bytes) -> list[JSON]:
        if self._error is not None:
            raise self._error
        self._buf.add_data(data)
        self.unparsed += len(data)
        out: list[JSON] = []
        try:
            for msg in self._buf:
                self.unparsed -= msg.prelude.total_length
                self._handle(msg, out)
                if self._error is not None:
                    break
        except ParserError as e:  # bad CRC, oversized frame, ...
            raise UpstreamUnavailable(f"{self._pid}: corrupt event stream ({e})", provider=self._pid) from None
        if self._error is not None and not out:
            raise self._error
        return out

    def close(self) -> list[JSON]:
        if self._error is not None:
            raise self._error
        if self.unparsed:
            raise UpstreamUnavailable(f"{self._pid}: the event stream ended inside a frame", provider=self._pid)
        if not self._stopped:
            raise UpstreamUnavailable(f"{self._pid}: the stream ended before messageStop", provider=self._pid)
        return []

    # ------------------------------------------------------------------ frames

    def _handle(self, msg: EventStreamMessage, out: list[JSON]) -> None:
        h = msg.headers
        kind = h.get(":message-type", "event")
        if kind == "exception":
            self._error = stream_error(self._pid, str(h.get(":exception-type") or ""), msg.payload)
            return
        if kind == "error":
            self._error = make_error(self._pid, str(h.get(":error-code") or "") or None,
                                     str(h.get(":error-message") or ""), 500)
            return
        event = h.get(":event-type")
        try:
            payload = orjson.loads(msg.payload) if msg.payload else {}
        except orjson.JSONDecodeError:
            raise UpstreamUnavailable(f"{self._pid}: unreadable {event} event", provider=self._pid) from None
        if not isinstance(payload, dict):
            raise UpstreamUnavailable(f"{self._pid}: a {event} event is not a JSON object", provider=self._pid)
        if event == "messageStart":
            self._role(out)
        elif event == "contentBlockStart":
            self._block_start(payload, out)
        elif event == "contentBlockDelta":
            self._delta(payload, out)
        elif event == "messageStop":
            self._role(out)
            self._stopped = True
            out.append(self._mk.chunk({}, finish_reason=finish_reason(payload.get("stopReason"),
                                                                      bool(self._json_blocks))))
        elif event == "metadata":
            usage = usage_from(payload.get("usage"))
            if usage is not None:
                self.usage = usage
        # contentBlockStop and members added later carry nothing a chunk needs

    def _role(self, out: list[JSON]) -> None:
        if not self._role_sent:
            self._role_sent = True
            out.append(self._mk.chunk({"role": "assistant", "content": ""}))

    def _block_start(self, payload: JSON, out: list[JSON]) -> None:
        tu = (payload.get("start") or {}).get("toolUse")
        if not isinstance(tu, dict):
            return
        idx = int(payload.get("contentBlockIndex") or 0)
        self._role(out)
        if tu.get("name") == JSON_TOOL:
            self._json_blocks.add(idx)
            return
        n = self._tools[idx] = len(self._tools)
        out.append(self._mk.chunk({"tool_calls": [{"index": n, "id": tu.get("toolUseId"), "type": "function",
                                                   "function": {"name": tu.get("name"), "arguments": ""}}]}))

    def _delta(self, payload: JSON, out: list[JSON]) -> None:
        delta: Any = payload.get("delta") or {}
        idx = int(payload.get("contentBlockIndex") or 0)
        self._role(out)
        if delta.get("text"):
            out.append(self._mk.chunk({"content": delta["text"]}))
        elif isinstance(delta.get("toolUse"), dict):
            frag = delta["toolUse"].get("input") or ""
            if not frag:
                return
            if idx in self._json_blocks:
                out.append(self._mk.chunk({"content": frag}))
            elif idx in self._tools:
                out.append(self._mk.chunk({"tool_calls": [{"index": self._tools[idx],
                                                           "function": {"arguments": frag}}]}))
        elif isinstance(delta.get("reasoningContent"), dict):
            text = delta["reasoningContent"].get("text")
            if text:  # signature / redactedContent have no OpenAI field
                out.append(self._mk.chunk({"reasoning_content": text}))
