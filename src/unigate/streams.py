"""Moving a streamed answer from an upstream to the client: the byte relay for OpenAI-format
upstreams, and chunk-by-chunk translation for everything else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from unigate.accounting.ledger import UsageRecord
from unigate.canonical.upstream import error_message
from unigate.egress import StreamEncoder
from unigate.errors import UpstreamUnavailable
from unigate.providers.base import NativeWatch

USAGE_MARK = b'"usage":{'
#: the key of an in-stream error object; inside a JSON string its quotes would be escaped
ERROR_MARK = b'"error"'
CLIENT_GONE = (ConnectionResetError, aiohttp.ClientConnectionResetError, ConnectionError)


class _Client:
    """Writes to the client until it leaves; after that the upstream is still read to the end
    (bounded by the call's total timeout), so the usage the provider bills is recorded. An
    upstream that can stop cheaply and still report what it used (the embedded model) is told
    to, through its response's `abandon()`."""

    __slots__ = ("abandon", "gone", "rec", "resp")

    def __init__(self, resp: web.StreamResponse, rec: UsageRecord, up: Any) -> None:
        self.resp, self.rec, self.gone = resp, rec, False
        self.abandon: Callable[[], None] | None = getattr(up, "abandon", None)

    async def write(self, data: bytes) -> None:
        if self.gone or not data:
            return
        try:
            await self.resp.write(data)
        except CLIENT_GONE:
            self.gone = self.rec.client_disconnected = True
            if self.abandon is not None:
                self.abandon()

    def raise_if_gone(self) -> None:
        if self.gone:
            raise ConnectionResetError("the client left before the end of the stream")


def event_too_large(limit: int) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"an upstream stream event is larger than the gateway's limit of {limit} bytes")


def whole_events(tail: bytes, data: bytes, max_event: int) -> tuple[bytes, bytes]:
    """The whole SSE events of what is buffered (`tail`, left from the last read) plus `data`,
    and the unfinished rest; an unfinished event over `max_event` bytes raises."""
    buf = tail + data if tail else data
    if b"\r" in buf:
        buf = buf.replace(b"\r\n", b"\n")
    cut = buf.rfind(b"\n\n") + 2
    if cut < 2:
        complete, rest = b"", buf
    elif cut == len(buf):  # the read ended on an event boundary: no copies
        return buf, b""
    else:
        complete, rest = buf[:cut], buf[cut:]
    if len(rest) > max_event:
        raise event_too_large(max_event)
    return complete, rest


async def relay_openai_stream(up: aiohttp.ClientResponse, first: bytes, resp: web.StreamResponse, want_usage: bool,
                              rec: UsageRecord, max_event: int) -> bool:
    """Relay an OpenAI-format stream as it arrives, whole events at a time. Only an event
    carrying a usage object is parsed: its numbers are recorded, and the usage-only chunk the
    gateway asked for on the client's behalf is dropped unless the client asked for it too.
    Other events are relayed unparsed (that is what makes the relay cheap): the upstream's
    framing is kept, its JSON is not checked. An unfinished event over `max_event` bytes
    raises. Returns whether the upstream ended with `data: [DONE]`. `first` is the upstream's
    first piece, read before the client's response began (see Gateway._attempt_stream)."""
    client = _Client(resp, rec, up)
    read = up.content.readany
    tail = b""
    last = b""  # the last whole events relayed
    data = first
    while data:
        complete, tail = whole_events(tail, data, max_event)
        if not complete:
            data = await read()
            continue
        if ERROR_MARK in complete:
            raise_stream_error(complete)
        # the usage event is the last but one of a stream: look from the end
        i = complete.rfind(USAGE_MARK)
        if i >= 0:
            complete = handle_usage(complete, i, want_usage, rec)
        await client.write(complete)
        last = complete
        data = await read()
    if tail.strip():
        last = tail if tail.endswith(b"\n\n") else tail + b"\n\n"
        await client.write(last)
    client.raise_if_gone()
    return last.endswith(b"[DONE]\n\n")


async def relay_native_stream(up: aiohttp.ClientResponse, first: bytes, resp: web.StreamResponse,
                              watch: NativeWatch, rec: UsageRecord, max_event: int) -> None:
    """Relay a stream in the client's own dialect as it arrives, whole events at a time; `watch`
    reads the usage, an in-stream error (raised after the events before it went out) and the end
    (a stream cut before its last event raises: the client gets one error event)."""
    client = _Client(resp, rec, up)
    read = up.content.readany
    tail = b""
    data = first
    while data:
        complete, tail = whole_events(tail, data, max_event)
        if not complete:
            data = await read()
            continue
        out, err = watch.see(complete)
        if watch.usage is not None:
            rec.set_usage(watch.usage)
        await client.write(out)
        if err is not None:
            raise err
        data = await read()
    if tail.strip():
        out, err = watch.see(tail + b"\n\n")
        await client.write(out)
        if err is not None:
            raise err
    watch.close()
    client.raise_if_gone()


def raise_stream_error(block: bytes) -> None:
    """`block` holds whole events and one has an "error" key: if it is an error event (an object
    without choices, as OpenRouter and vLLM send after the 200), raise it as the upstream's
    error, so the client gets it once, redacted, in its surface's form, and no [DONE] after it."""
    for event in block.split(b"\n\n"):
        if ERROR_MARK not in event:
            continue
        d = event.find(b"data:")
        try:
            obj = orjson.loads(event[d + 5 :]) if d >= 0 else None
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("error") and not obj.get("choices"):
            message, code = error_message(orjson.dumps(obj))
            raise UpstreamUnavailable(message or "the upstream reported an error in the stream", code=code)


def handle_usage(block: bytes, i: int, want_usage: bool, rec: UsageRecord) -> bytes:
    """`block` holds whole events and the last usage object starts at `i`. Record that usage
    (OpenAI's is cumulative: the last one is the call's), and drop the event if it is the
    usage-only chunk the client did not ask for. The block is returned as is otherwise."""
    start = block.rfind(b"\n\n", 0, i)
    start = 0 if start < 0 else start + 2
    end = block.find(b"\n\n", i)
    end = len(block) if end < 0 else end + 2
    event = block[start:end]
    d = event.find(b"data:")
    try:
        obj = orjson.loads(event[d + 5 :]) if d >= 0 else None
    except orjson.JSONDecodeError:
        return block
    if not isinstance(obj, dict):
        return block
    rec.set_usage(obj.get("usage"))
    if want_usage or obj.get("choices"):
        return block
    return block[:start] + block[end:]


async def translate_stream(up: aiohttp.ClientResponse, first: bytes, resp: web.StreamResponse, decoder: Any,
                           encoder: StreamEncoder, rec: UsageRecord, max_event: int, sse: bool) -> None:
    """Native stream -> canonical chunks -> the client's format, one write per upstream read.
    `max_event`: the most bytes one event may take, or a decoder would buffer an endless line
    whole. An SSE stream is measured here between event boundaries; a framed one (Bedrock's)
    by the decoder's own count of bytes not yet part of a whole frame."""
    client = _Client(resp, rec, up)
    read = up.content.readany
    pending = 0  # bytes since the last event boundary
    data = first
    while data:
        if sse:
            end = _event_end(data)
            pending = pending + len(data) if end < 0 else len(data) - end
            if pending > max_event:
                raise event_too_large(max_event)
        out = b"".join(encoder.chunk(c) for c in decoder.feed(data))
        if not sse and decoder.unparsed > max_event:
            raise event_too_large(max_event)
        await client.write(out)
        data = await read()
    out = b"".join(encoder.chunk(c) for c in decoder.close())
    rec.set_usage(decoder.usage)
    await client.write(out + encoder.finish(decoder.usage))
    client.raise_if_gone()


def _event_end(data: bytes) -> int:
    """Where the last SSE event ending in `data` ends (any of the three line endings), or -1."""
    i = data.rfind(b"\n\n")
    end = i + 2 if i >= 0 else -1
    if b"\r" in data:
        j, k = data.rfind(b"\r\n\r\n"), data.rfind(b"\r\r")
        end = max(end, j + 4 if j >= 0 else -1, k + 2 if k >= 0 else -1)
    return end


def embeddings_to_base64(obj: dict[str, Any]) -> None:
    """Native adapters return float lists; a client that asked for base64 gets little-endian
    float32 bytes, base64-encoded, as OpenAI sends them."""
    import array
    import base64

    for item in obj.get("data") or ():
        emb = item.get("embedding")
        if isinstance(emb, list):
            item["embedding"] = base64.b64encode(array.array("f", emb).tobytes()).decode()
