"""Canonical chat.completion.chunk stream -> the Responses API's event stream, and the `Egress`
of the Responses surface. Every event carries `sequence_number` (0, 1, 2, ... in order):

    response.created, response.in_progress                 (with the first chunk)
    per output item, one at a time, in the order the chunks need them:
      reasoning  output_item.added, content_part.added (reasoning_text), reasoning_text.delta*,
                 reasoning_text.done, content_part.done, output_item.done
      message    output_item.added, content_part.added (output_text), output_text.delta*,
                 output_text.done, content_part.done, output_item.done
      function   output_item.added, function_call_arguments.delta*, function_call_arguments.done,
                 output_item.done
    response.completed | response.incomplete               (in finish(), the usage known)
    error, response.failed                                 (a failure after the stream began)

A new kind of output closes the open item first, as the API never interleaves items. Should an
upstream interleave the argument fragments of parallel tool calls, a late fragment is appended to
its (already closed) item in the final response and sent as a delta with that item's id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from unigate.canonical.types import JSON
from unigate.errors import GatewayError, UpstreamUnavailable
from unigate.providers.openai_responses import RelayedStreamError
from unigate.surfaces.responses.response import (
    INCOMPLETE,
    Echo,
    call_id_of,
    error_object,
    function_item,
    message_item,
    new_id,
    reasoning_item,
    reasoning_of,
    text_part,
    to_response,
    usage_of,
)


def _obj(v: Any) -> JSON:
    return v if isinstance(v, dict) else {}


class _Item:
    __slots__ = ("call_id", "id", "index", "kind", "name", "text")

    def __init__(self, kind: str, index: int, item_id: str, call_id: str = "", name: str = "") -> None:
        self.kind, self.index, self.id, self.call_id, self.name = kind, index, item_id, call_id, name
        self.text: list[str] = []

    def value(self) -> str:
        return "".join(self.text)

    def done(self, status: str) -> JSON:
        if self.kind == "reasoning":
            return reasoning_item(self.id, self.value())
        if self.kind == "message":
            return message_item(self.id, [text_part(self.value())], status)
        return function_item(self.id, self.call_id, self.name, self.value(), "completed")


class ResponsesStreamEncoder:
    def __init__(self, echo: Echo, on_final: Callable[[JSON], None] | None = None) -> None:
        self.echo = echo
        #: told the final Response before its last event is sent (the surface stores it)
        self.on_final = on_final
        self.seq = 0
        self.started = False
        self.items: list[_Item] = []
        self.open: _Item | None = None
        self.tools: dict[int, _Item] = {}  # the chunks' tool-call index -> its item
        self.finish_reason: str | None = None
        self.model: str | None = None
        self.usage_seen: JSON | None = None
        #: the final Response object, once the stream ended (what the surface stores)
        self.final: JSON | None = None

    def _event(self, kind: str, data: JSON) -> bytes:
        data["type"] = kind
        data["sequence_number"] = self.seq
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    # ------------------------------------------------------------------ StreamEncoder

    def chunk(self, chunk: JSON) -> bytes:
        out: list[bytes] = []
        if not self.started:
            served = chunk.get("model")
            self.model = served if isinstance(served, str) and served else None
            out.append(self._start())
        if isinstance(chunk.get("usage"), dict):
            self.usage_seen = chunk["usage"]
        choices = chunk.get("choices")
        if choices and isinstance(choices[0], dict):
            choice = choices[0]
            delta = _obj(choice.get("delta"))
            reasoning = reasoning_of(delta)
            if reasoning:
                out.append(self._text("reasoning", reasoning))
            for key in ("content", "refusal"):
                text = delta.get(key)
                if isinstance(text, str) and text:
                    out.append(self._text("message", text))
            for tc in delta.get("tool_calls") or ():
                if isinstance(tc, dict):
                    out.append(self._tool(tc))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return b"".join(out)

    def finish(self, usage: JSON | None) -> bytes:
        out: list[bytes] = []
        if not self.started:
            out.append(self._start())
        if self.finish_reason is None:
            # the upstream stream ended without saying it was done: a truncated answer must not
            # look like a complete one
            out.append(self.error(UpstreamUnavailable("the upstream stream ended before the answer was complete")))
            return b"".join(out)
        incomplete = INCOMPLETE.get(self.finish_reason)
        out.append(self._close(incomplete))
        status = "incomplete" if incomplete else "completed"
        self.final = self.echo.response(status, self._output(incomplete),
                                        usage_of(usage if usage is not None else self.usage_seen),
                                        model=self.model, incomplete=incomplete)
        if self.on_final is not None:
            self.on_final(self.final)
        out.append(self._event(f"response.{status}", {"response": self.final}))
        return b"".join(out)

    def error(self, err: GatewayError) -> bytes:
        out = [b"" if self.started else self._start()]
        out.append(self._event("error", {"code": err.code or err.type, "message": err.message, "param": err.param}))
        failed = self.echo.response("failed", self._output(None), usage_of(self.usage_seen), model=self.model,
                                    error=error_object(err))
        out.append(self._event("response.failed", {"response": failed}))
        return b"".join(out)

    # ------------------------------------------------------------------ items

    def _start(self) -> bytes:
        self.started = True
        r = self.echo.response("in_progress", [], None, model=self.model)
        return self._event("response.created", {"response": r}) + self._event("response.in_progress", {"response": r})

    def _output(self, incomplete: str | None) -> list[JSON]:
        status = "incomplete" if incomplete else "completed"
        return [it.done(status) for it in self.items]

    def _open(self, item: _Item) -> bytes:
        out = self._close(None)
        self.open = item
        self.items.append(item)
        if item.kind == "function":
            added = function_item(item.id, item.call_id, item.name, "", "in_progress")
        elif item.kind == "message":
            added = message_item(item.id, [], "in_progress")
        else:
            added = reasoning_item(item.id, "")
            added["content"] = []
        out += self._event("response.output_item.added", {"output_index": item.index, "item": added})
        if item.kind != "function":
            part = text_part("") if item.kind == "message" else {"type": "reasoning_text", "text": ""}
            out += self._event("response.content_part.added", {"item_id": item.id, "output_index": item.index,
                                                               "content_index": 0, "part": part})
        return out

    def _close(self, incomplete: str | None) -> bytes:
        item = self.open
        if item is None:
            return b""
        self.open = None
        where: JSON = {"item_id": item.id, "output_index": item.index}
        value = item.value()
        out = b""
        if item.kind == "function":
            out += self._event("response.function_call_arguments.done", {**where, "name": item.name,
                                                                         "arguments": value})
        else:
            if item.kind == "message":
                part = text_part(value)
                out += self._event("response.output_text.done", {**where, "content_index": 0, "text": value,
                                                                 "logprobs": []})
            else:
                part = {"type": "reasoning_text", "text": value}
                out += self._event("response.reasoning_text.done", {**where, "content_index": 0, "text": value})
            out += self._event("response.content_part.done", {**where, "content_index": 0, "part": part})
        done = item.done("incomplete" if incomplete else "completed")
        return out + self._event("response.output_item.done", {"output_index": item.index, "item": done})

    def _text(self, kind: str, text: str) -> bytes:
        out = b""
        item = self.open
        if item is None or item.kind != kind:
            item = _Item(kind, len(self.items), new_id("msg_" if kind == "message" else "rs_"))
            out = self._open(item)
        item.text.append(text)
        name = "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta"
        data: JSON = {"item_id": item.id, "output_index": item.index, "content_index": 0, "delta": text}
        if kind == "message":
            data["logprobs"] = []
        return out + self._event(name, data)

    def _tool(self, tc: JSON) -> bytes:
        idx = tc.get("index")
        n = idx if isinstance(idx, int) else 0
        fn = _obj(tc.get("function"))
        out = b""
        item = self.tools.get(n)
        if item is None:
            item = _Item("function", len(self.items), new_id("fc_"), call_id_of(tc.get("id")), str(fn.get("name") or ""))
            self.tools[n] = item
            out = self._open(item)
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            item.text.append(args)
            out += self._event("response.function_call_arguments.delta", {"item_id": item.id,
                                                                          "output_index": item.index, "delta": args})
        return out


class RelayErrorEncoder:
    """A passed-through stream's failure: the events so far were the upstream's own (its ids, its
    numbering), so only an `error` event is added, numbered after the last one relayed; the
    relay never asks for chunks or a finish."""

    def chunk(self, chunk: JSON) -> bytes:
        return b""

    def finish(self, usage: JSON | None) -> bytes:
        return b""

    def error(self, err: GatewayError) -> bytes:
        data: JSON = {"type": "error", "code": err.code or err.type, "message": err.message, "param": err.param}
        after = err.after if isinstance(err, RelayedStreamError) else None
        if after is not None:
            data["sequence_number"] = after + 1
        return b"event: error\ndata: " + orjson.dumps(data) + b"\n\n"


class ResponsesEgress:
    """Per request: the Response's identity and echoed settings (`Echo`); keeps the Response it
    encoded (JSON) or the stream's encoder (its `final`), for the surface to store."""

    relay_openai = False

    def __init__(self, echo: Echo, *, relayed: bool = False) -> None:
        self.echo = echo
        #: the call passes through to an upstream with the Responses API (errors only are ours)
        self.relayed = relayed
        self.result: JSON | None = None
        self.encoder: ResponsesStreamEncoder | None = None
        #: for a stream: told the final Response before the client reads its last event
        self.on_final: Callable[[JSON], None] | None = None

    def encode_json(self, obj: JSON) -> bytes:
        self.result = to_response(obj, self.echo)
        return orjson.dumps(self.result)

    def stream_encoder(self, body: JSON) -> ResponsesStreamEncoder | RelayErrorEncoder:
        if self.relayed:
            return RelayErrorEncoder()
        self.encoder = ResponsesStreamEncoder(self.echo, self.on_final)
        return self.encoder

    @property
    def final(self) -> JSON | None:
        """The Response as the client got it, when it ended complete (or incomplete)."""
        if self.encoder is not None:
            return self.encoder.final
        return self.result
