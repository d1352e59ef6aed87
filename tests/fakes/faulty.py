"""One misbehaving upstream that answers on every dialect's paths, for the fault-injection suite
(tests/integration/test_faults.py):

    OpenAI     POST /v1/chat/completions, /v1/completions, /v1/embeddings
    Anthropic  POST /v1/messages, /v1/messages/count_tokens
    Gemini     POST /{version}/models/{model}:generateContent | :streamGenerateContent | :batchEmbedContents
    Cohere     POST /v2/chat
    Bedrock    POST /model/{modelId}/converse | /converse-stream

The fault is the requested model name, so every dialect can serve every fault. Healthy content
comes from the dialect's own fake (tests/fakes/<dialect>.py), so a "normal" event here is a real
wire event of that dialect. Any name not below answers normally ("Hello from <model>!").

    non-stream answers (200)
    badjson             `{not json`
    wronglist           `[1,2,3]`
    wrongshape          a JSON object of the wrong shape for the dialect and endpoint
                        (`{"choices": "x"}`, `{"content": "notalist"}`, `{"candidates": 5}`, ...)
    bigbody             a valid answer padded past 256 KiB

    stream requested, not a stream answered (200)
    jsonfor-stream      application/json: the non-stream answer, as if `stream` were ignored
    html-for-stream     text/html page
    text-for-stream     text/plain

    stream requested, the stream goes bad after its first text delta (200, the dialect's stream type)
    garbage-stream      an event whose data is `{not json` (Bedrock: a frame with that payload)
    listevent-stream    an event whose data is `[1,2,3]`
    badindex-stream     an event of the wrong shape: Anthropic `"index": "zz"`, Gemini
                        `{"candidates": 5}`, OpenAI `"choices": "x"`, Cohere / Bedrock a string index
    bigevent-stream     one valid text event of 256 KiB
    hugeline-stream     a 64 MiB line without a newline (Bedrock: a frame announcing 64 MiB), written
                        in pieces, stopping as soon as the reader has gone
    echo-creds-stream   the dialect's in-stream error, its message echoing the credential received

    errors (stream or not)
    echo-creds-401      401 whose message echoes the credential header received (Authorization,
                        x-api-key or x-goog-api-key, as sent)
    huge-error-500      500 with a ~50 MiB message, written lazily in pieces
    html-error-<n>      status n with an nginx-style HTML page
    retry-<kind>        429 with a bad Retry-After: inf, nan, ms-nan (retry-after-ms: nan), neg (-5),
                        huge (1e400), garbage

Everything written lazily (huge error, huge line) gives up after `give_up_after` seconds, so a
gateway that reads the whole thing cannot stall the suite; `outcomes[<dialect>/<model>]` says
how such a write ended: "completed" (the reader took it all), "abandoned" (the reader went away
first), "gave_up" (the reader was still reading at the deadline).
"""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar

import orjson
from aiohttp import web

from tests.fakes import anthropic as anth
from tests.fakes import bedrock as bed
from tests.fakes import cohere as coh
from tests.fakes import gemini as gem
from tests.fakes import openai as oai
from tests.fakes.server import FakeUpstream

KiB, MiB = 1024, 1024 * 1024
HUGE_ERROR_BYTES = 50 * MiB
HUGE_LINE_BYTES = 64 * MiB
#: bigbody / bigevent: far over the 64 KiB limits the suite configures, small enough to be cheap
BIG_BYTES = 256 * KiB
PIECE = 256 * KiB
_FILL = b"x" * PIECE
#: stands in for the filler inside a template, which is split around it
_MARK = "@@FILL@@"


def html_page(status: int) -> bytes:
    """The page an nginx in front of an API answers with."""
    title = f"{status} {HTTPStatus(status).phrase}"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n"
            "</body>\r\n</html>\r\n").encode()


RETRY_HEADERS: dict[str, dict[str, str]] = {
    "retry-inf": {"Retry-After": "inf"},
    "retry-nan": {"Retry-After": "nan"},
    "retry-ms-nan": {"retry-after-ms": "nan"},
    "retry-neg": {"Retry-After": "-5"},
    "retry-huge": {"Retry-After": "1e400"},
    "retry-garbage": {"Retry-After": "garbage"},
}

#: which request header carries the upstream credential, per dialect
CREDENTIAL_HEADER = {"openai": "Authorization", "anthropic": "x-api-key", "gemini": "x-goog-api-key",
                     "cohere": "Authorization", "bedrock": "Authorization"}

Json = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Call:
    """One request as the fake understood it."""

    dialect: str
    endpoint: str  # "chat" | "completions" | "embeddings" | "count_tokens"
    model: str
    stream: bool
    body: Any
    credential: str

    @property
    def key(self) -> str:
        """`<dialect>/<model>`: the model id a client sent, as the gateway's provider ids are the
        dialect names."""
        return f"{self.dialect}/{self.model}"


def sse(data: bytes, event: str = "") -> bytes:
    """One SSE event carrying `data` verbatim."""
    return (b"event: " + event.encode() + b"\n" if event else b"") + b"data: " + data + b"\n\n"


def sse_json(obj: Any, event: str = "") -> bytes:
    return sse(orjson.dumps(obj), event)


def split_template(template: bytes) -> tuple[bytes, bytes]:
    head, _, tail = template.partition(_MARK.encode())
    return head, tail


# ---------------------------------------------------------------------------- wire formats


class Wire:
    """What a dialect's answers look like. Subclasses fill in the dialect's shapes; events are
    returned encoded (SSE, or event-stream frames for Bedrock), one bytes object per event."""

    dialect = ""
    stream_type = "text/event-stream"
    #: the `event:` name garbage goes out under, so it looks like the dialect's text delta
    delta_event = ""

    def ok_json(self, call: Call) -> Any:
        raise NotImplementedError

    def ok_events(self, call: Call) -> list[bytes]:
        raise NotImplementedError

    def text_event(self, call: Call, text: str) -> bytes:
        """A valid event carrying a text delta (sent after the first delta of ok_events)."""
        raise NotImplementedError

    def wrong_shape(self, call: Call) -> Any:
        raise NotImplementedError

    def wrong_event(self, call: Call) -> bytes:
        raise NotImplementedError

    def stream_error(self, message: str) -> bytes:
        raise NotImplementedError

    def error_json(self, status: int, message: str) -> Any:
        raise NotImplementedError

    def error_headers(self, status: int) -> dict[str, str]:
        return {}

    def raw_event(self, data: bytes) -> bytes:
        """An event whose payload is `data`, byte for byte."""
        return sse(data, self.delta_event)

    def huge_event(self, call: Call, n: int) -> tuple[bytes, bytes]:
        """(head, tail) of one text event whose text is `n` filler bytes, written in between."""
        return split_template(self.text_event(call, _MARK))


class OpenAIWire(Wire):
    dialect = "openai"

    def ok_json(self, call: Call) -> Any:
        if call.endpoint == "embeddings":
            data = [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}]
            return {"object": "list", "data": data, "model": call.model,
                    "usage": {"prompt_tokens": 1, "total_tokens": 1}}
        if call.endpoint == "completions":
            return _text_completion(call.model, f"Hello from {call.model}!", "stop", oai.USAGE)
        return oai.completion(call.model, f"Hello from {call.model}!")

    def ok_events(self, call: Call) -> list[bytes]:
        usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
        if call.endpoint == "completions":
            evs = [_text_completion(call.model, p, None, None) for p in ["Hello", " from ", call.model, "!"]]
            evs[-1]["choices"][0]["finish_reason"] = "stop"
            if usage:
                evs.append({**_text_completion(call.model, "", None, oai.USAGE), "choices": []})
        else:
            evs = oai.stream_events(call.model, usage)
        return [sse_json(e) for e in evs] + [sse(b"[DONE]")]

    def text_event(self, call: Call, text: str) -> bytes:
        if call.endpoint == "completions":
            return sse_json(_text_completion(call.model, text, None, None))
        return sse_json(oai.chunk(call.model, {"content": text}))

    def wrong_shape(self, call: Call) -> Any:
        return {"object": "list", "data": "x"} if call.endpoint == "embeddings" else {"choices": "x"}

    def wrong_event(self, call: Call) -> bytes:
        if call.endpoint == "completions":
            obj = _text_completion(call.model, "", None, None)
        else:
            obj = oai.chunk(call.model, {})
        return sse_json({**obj, "choices": "x"})

    def stream_error(self, message: str) -> bytes:
        return sse_json({"error": {"message": message, "type": "server_error", "param": None, "code": None}})

    def error_json(self, status: int, message: str) -> Any:
        return {"error": {"message": message, "type": "fake_error", "param": None, "code": f"fake_{status}"}}


class AnthropicWire(Wire):
    dialect = "anthropic"
    delta_event = "content_block_delta"
    _builder = anth.FakeAnthropic()  # never started: used for its real message and event shapes

    def ok_json(self, call: Call) -> Any:
        if call.endpoint == "count_tokens":
            return {"input_tokens": 12}
        return self._builder.answer(call.body)

    def ok_events(self, call: Call) -> list[bytes]:
        return [sse_json(ev, name) for name, ev in self._builder.events(self._builder.answer(call.body))]

    def text_event(self, call: Call, text: str) -> bytes:
        delta = {"type": "text_delta", "text": text}
        return sse_json({"type": "content_block_delta", "index": 0, "delta": delta}, self.delta_event)

    def wrong_shape(self, call: Call) -> Any:
        if call.endpoint == "count_tokens":
            return {"input_tokens": "x"}
        return {"id": "msg_01Fake", "type": "message", "role": "assistant", "model": call.model,
                "content": "notalist", "stop_reason": "end_turn"}

    def wrong_event(self, call: Call) -> bytes:
        delta = {"type": "text_delta", "text": "x"}
        return sse_json({"type": "content_block_delta", "index": "zz", "delta": delta}, self.delta_event)

    def stream_error(self, message: str) -> bytes:
        return sse_json(anth.error_body("api_error", message), "error")

    def error_json(self, status: int, message: str) -> Any:
        return anth.error_body(anth.ERROR_TYPES.get(status, "api_error"), message)


class GeminiWire(Wire):
    dialect = "gemini"

    def ok_json(self, call: Call) -> Any:
        if call.endpoint == "embeddings":
            return {"embeddings": [{"values": [0.1, 0.2, 0.3]} for _ in call.body.get("requests") or [0]]}
        return gem.full_response(call.model, call.body)

    def ok_events(self, call: Call) -> list[bytes]:
        return [gem.sse(ev) for ev in gem.stream_events(call.model, call.body)]

    def text_event(self, call: Call, text: str) -> bytes:
        return gem.sse(gem.response([gem.cand([{"text": text}])], call.model, gem.usage(12, 1)))

    def wrong_shape(self, call: Call) -> Any:
        return {"embeddings": 5} if call.endpoint == "embeddings" else {"candidates": 5}

    def wrong_event(self, call: Call) -> bytes:
        return gem.sse({"candidates": 5})

    def stream_error(self, message: str) -> bytes:
        return gem.sse(gem.google_error(500, message))

    def error_json(self, status: int, message: str) -> Any:
        return gem.google_error(status, message)


class CohereWire(Wire):
    dialect = "cohere"
    delta_event = "content-delta"

    def ok_json(self, call: Call) -> Any:
        return coh._answer(call.model, call.body)

    def ok_events(self, call: Call) -> list[bytes]:
        # the Cohere fake renders a whole stream; its events end with a blank line each
        return [ev + b"\n\n" for ev in coh.stream_bytes(call.model, call.body).split(b"\n\n") if ev]

    def text_event(self, call: Call, text: str) -> bytes:
        delta = {"message": {"content": {"text": text}}}
        return sse_json({"type": "content-delta", "index": 0, "delta": delta}, self.delta_event)

    def wrong_shape(self, call: Call) -> Any:
        return {"id": "c0ffee00", "finish_reason": "COMPLETE", "message": "notanobject"}

    def wrong_event(self, call: Call) -> bytes:
        return sse_json({"type": "content-delta", "index": "zz", "delta": {"message": {"content": 5}}},
                        self.delta_event)

    def stream_error(self, message: str) -> bytes:
        # how Cohere reports a failed generation inside a stream
        delta = {"finish_reason": "ERROR", "error": message}
        return sse_json({"type": "message-end", "delta": delta}, "message-end")

    def error_json(self, status: int, message: str) -> Any:
        return {"id": f"err-{status}", "message": message}


class BedrockWire(Wire):
    dialect = "bedrock"
    stream_type = "application/vnd.amazon.eventstream"
    _builder = bed.FakeBedrock()  # never started: used for its real Converse shapes and frames
    #: the AWS error code a status comes with (x-amzn-ErrorType)
    _codes: ClassVar[dict[int, str]] = {400: "ValidationException", 401: "UnrecognizedClientException", 429: "ThrottlingException",
              500: "InternalServerException", 503: "ServiceUnavailableException"}
    _event_headers: ClassVar[dict[str, str]] = {":event-type": "contentBlockDelta", ":content-type": "application/json",
                      ":message-type": "event"}

    def ok_json(self, call: Call) -> Any:
        return self._builder.answer(call.model, "", call.body)

    def ok_events(self, call: Call) -> list[bytes]:
        return self._builder.events(call.model, "", call.body)

    def text_event(self, call: Call, text: str) -> bytes:
        return bed.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}})

    def wrong_shape(self, call: Call) -> Any:
        return {"output": {"message": {"role": "assistant", "content": "notalist"}}, "stopReason": "end_turn",
                "usage": dict(bed.USAGE)}

    def wrong_event(self, call: Call) -> bytes:
        return bed.event("contentBlockDelta", {"contentBlockIndex": "zz", "delta": {"text": "x"}})

    def stream_error(self, message: str) -> bytes:
        return bed.exception_frame("internalServerException", message)

    def error_json(self, status: int, message: str) -> Any:
        return {"message": message}

    def error_headers(self, status: int) -> dict[str, str]:
        code = self._codes.get(status)
        if code is None:
            return {}
        return {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.coral.service/"}

    def raw_event(self, data: bytes) -> bytes:
        return bed.frame(self._event_headers, data)

    def huge_event(self, call: Call, n: int) -> tuple[bytes, bytes]:
        # A frame's prelude states its length up front: announce the whole payload, so the
        # parser can refuse it from the first 12 bytes. The trailing CRC is not computed: a
        # reader that takes all 64 MiB has failed the test already.
        payload = {"contentBlockIndex": 0, "delta": {"text": _MARK}}
        head_json, tail_json = split_template(orjson.dumps(payload))
        hb = b"".join(struct.pack(">B", len(k)) + k.encode() + b"\x07" + struct.pack(">H", len(v))
                      + v.encode() for k, v in self._event_headers.items())
        total = 12 + len(hb) + len(head_json) + n + len(tail_json) + 4
        prelude = struct.pack(">II", total, len(hb))
        prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
        return prelude + hb + head_json, tail_json + b"\0\0\0\0"


def _text_completion(model: str, text: str, finish: str | None, usage: Any) -> Json:
    obj: Json = {"id": "cmpl-fake1", "object": "text_completion", "created": 1700000000, "model": model,
                 "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]}
    if usage is not None:
        obj["usage"] = usage
    return obj


def _bad_event(wire: Wire, call: Call) -> bytes | None:
    """The one bad event a stream fault slips in (the rest of the stream follows it), or None."""
    if call.model == "garbage-stream":
        return wire.raw_event(b"{not json")
    if call.model == "listevent-stream":
        return wire.raw_event(b"[1,2,3]")
    if call.model == "badindex-stream":
        return wire.wrong_event(call)
    if call.model == "bigevent-stream":
        return wire.text_event(call, "a" * BIG_BYTES)
    return None


WIRES: dict[str, Wire] = {w.dialect: w for w in (OpenAIWire(), AnthropicWire(), GeminiWire(), CohereWire(),
                                                  BedrockWire())}


# ---------------------------------------------------------------------------- the server


@dataclass
class FaultyUpstream(FakeUpstream):
    give_up_after: float = 4.0
    huge_error_bytes: int = HUGE_ERROR_BYTES
    huge_line_bytes: int = HUGE_LINE_BYTES
    #: "<dialect>/<model>" -> how its last lazily written body ended (see the module docstring)
    outcomes: dict[str, str] = field(default_factory=dict)

    def setup(self, app: web.Application) -> None:
        for path, dialect, endpoint in (("/v1/chat/completions", "openai", "chat"),
                                        ("/v1/completions", "openai", "completions"),
                                        ("/v1/embeddings", "openai", "embeddings"),
                                        ("/v1/messages", "anthropic", "chat"),
                                        ("/v1/messages/count_tokens", "anthropic", "count_tokens"),
                                        ("/v2/chat", "cohere", "chat")):
            app.router.add_post(path, self._json_route(dialect, endpoint))
        app.router.add_post("/{version}/models/{target}", self.gemini)
        app.router.add_post("/model/{model_id}/{op}", self.bedrock)

    # ------------------------------------------------------------------ routes -> Call

    def _json_route(self, dialect: str, endpoint: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            body = orjson.loads(await request.read())
            stream = body.get("stream") is True and endpoint in ("chat", "completions")
            return await self.respond(request, Call(dialect, endpoint, body["model"], stream, body,
                                                    request.headers.get(CREDENTIAL_HEADER[dialect], "")))
        return handler

    async def gemini(self, request: web.Request) -> web.StreamResponse:
        model, _, action = request.match_info["target"].rpartition(":")
        endpoint = "embeddings" if action == "batchEmbedContents" else "chat"
        body = orjson.loads(await request.read())
        stream = action == "streamGenerateContent"
        return await self.respond(request, Call("gemini", endpoint, model, stream, body,
                                                request.headers.get(CREDENTIAL_HEADER["gemini"], "")))

    async def bedrock(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        return await self.respond(request, Call("bedrock", "chat", request.match_info["model_id"],
                                                request.match_info["op"] == "converse-stream", body,
                                                request.headers.get(CREDENTIAL_HEADER["bedrock"], "")))

    # ------------------------------------------------------------------ faults

    async def respond(self, request: web.Request, call: Call) -> web.StreamResponse:
        wire, fault = WIRES[call.dialect], call.model
        if fault in RETRY_HEADERS:
            return self._error(wire, 429, "rate limited, slow down", RETRY_HEADERS[fault])
        if fault == "echo-creds-401":
            return self._error(wire, 401, f"request had credentials {call.credential}")
        if fault.startswith("html-error-"):
            status = int(fault.rsplit("-", 1)[1])
            return web.Response(body=html_page(status), status=status, content_type="text/html")
        if fault == "huge-error-500":
            head, tail = split_template(orjson.dumps(wire.error_json(500, _MARK)))
            headers = {"Content-Type": "application/json", **wire.error_headers(500)}
            resp = web.StreamResponse(status=500, headers=headers)
            await resp.prepare(request)
            await self._write_lazily(request, resp, call.key, head, self.huge_error_bytes, tail)
            return resp
        if call.stream:
            return await self._stream(request, wire, call)
        return self._answer(wire, call)

    def _error(self, wire: Wire, status: int, message: str,
               headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response(wire.error_json(status, message), status=status,
                                 headers={**wire.error_headers(status), **(headers or {})})

    def _answer(self, wire: Wire, call: Call) -> web.Response:
        fault = call.model
        if fault == "badjson":
            return web.Response(body=b"{not json", content_type="application/json")
        if fault == "wronglist":
            return web.Response(body=b"[1,2,3]", content_type="application/json")
        if fault == "wrongshape":
            return web.json_response(wire.wrong_shape(call))
        obj = wire.ok_json(call)
        if fault == "bigbody":
            # an unknown field every parser skips: still a valid answer, only too big
            obj = {**obj, "padding": "x" * BIG_BYTES}
        return web.json_response(obj)

    async def _stream(self, request: web.Request, wire: Wire, call: Call) -> web.StreamResponse:
        fault = call.model
        if fault == "jsonfor-stream":
            return web.json_response(wire.ok_json(call))
        if fault == "html-for-stream":
            return web.Response(body=html_page(200), content_type="text/html")
        if fault == "text-for-stream":
            return web.Response(text="Service temporarily in maintenance mode.", content_type="text/plain")
        events = wire.ok_events(call)
        # the fault comes right after the first text delta, so the client has seen normal events
        cut = next(i for i, ev in enumerate(events) if b"Hel" in ev) + 1
        head, rest = events[:cut], events[cut:]
        resp = web.StreamResponse(headers={"Content-Type": wire.stream_type})
        await resp.prepare(request)
        try:
            for ev in head:
                await resp.write(ev)
            if fault == "hugeline-stream":
                start, end = wire.huge_event(call, self.huge_line_bytes)
                if not await self._write_lazily(request, resp, call.key, start, self.huge_line_bytes, end):
                    return resp
            elif fault == "echo-creds-stream":
                await resp.write(wire.stream_error(f"request had credentials {call.credential}"))
                rest = []  # an error event ends the stream
            elif (bad := _bad_event(wire, call)) is not None:
                await resp.write(bad)
            for ev in rest:
                await resp.write(ev)
            await resp.write_eof()
        except ConnectionError:
            pass  # the gateway left: what it does about that is what the test looks at
        return resp

    async def _write_lazily(self, request: web.Request, resp: web.StreamResponse, key: str, head: bytes,
                            n: int, tail: bytes) -> bool:
        """head, `n` filler bytes in pieces, tail: never the whole thing in memory, and stopping
        as soon as the reader has gone (or at the give-up deadline)."""
        self.outcomes[key] = "writing"
        deadline = time.monotonic() + self.give_up_after
        try:
            await resp.write(head)
            left = n
            while left:
                if request.transport is None or request.transport.is_closing():
                    self.outcomes[key] = "abandoned"
                    return False
                if time.monotonic() > deadline:
                    self.outcomes[key] = "gave_up"
                    request.transport.close()
                    return False
                k = min(PIECE, left)
                await resp.write(_FILL[:k] if k < PIECE else _FILL)
                left -= k
                await asyncio.sleep(0)  # let the reader's side of this one event loop run
            await resp.write(tail)
        except ConnectionError:
            self.outcomes[key] = "abandoned"
            return False
        self.outcomes[key] = "completed"
        return True
