"""How canonical results leave the gateway on each client surface.

The pipeline produces canonical (OpenAI Chat Completions) objects and chunks; an `Egress`
encodes them for the surface the client called. The OpenAI surface also allows relaying an
OpenAI-format upstream's bytes untouched (`relay_openai`), the gateway's fastest path.
"""

from __future__ import annotations

import time
from typing import Protocol

import orjson

from unigate.canonical.types import JSON
from unigate.errors import GatewayError
from unigate.providers import sse


class StreamEncoder(Protocol):
    def chunk(self, chunk: JSON) -> bytes:
        """One canonical chunk -> bytes for the client (may be b"")."""
        ...

    def finish(self, usage: JSON | None) -> bytes:
        """After the last chunk: the usage (when the surface shows it) and the terminator."""
        ...

    def error(self, err: GatewayError) -> bytes:
        """A failure after the stream started: the surface's in-stream error event."""
        ...


class Egress(Protocol):
    #: OpenAI-format upstream bodies and streams may be relayed without parsing.
    relay_openai: bool

    def encode_json(self, obj: JSON) -> bytes: ...

    def stream_encoder(self, body: JSON) -> StreamEncoder: ...


class OpenAIStreamEncoder:
    __slots__ = ("last", "want_usage")

    def __init__(self, want_usage: bool) -> None:
        self.want_usage = want_usage
        self.last: JSON | None = None

    def chunk(self, chunk: JSON) -> bytes:
        self.last = chunk
        return sse.encode(chunk)

    def finish(self, usage: JSON | None) -> bytes:
        if self.want_usage and usage is not None:
            like = self.last or {}
            uc = {"id": like.get("id", ""), "object": "chat.completion.chunk",
                  "created": like.get("created", int(time.time())), "model": like.get("model", ""),
                  "choices": [], "usage": usage}
            return sse.encode(uc) + sse.DONE
        return sse.DONE

    def error(self, err: GatewayError) -> bytes:
        return sse.encode(err.body())


class OpenAIEgress:
    relay_openai = True

    def encode_json(self, obj: JSON) -> bytes:
        return orjson.dumps(obj)

    def stream_encoder(self, body: JSON) -> OpenAIStreamEncoder:
        opts = body.get("stream_options")
        return OpenAIStreamEncoder(isinstance(opts, dict) and bool(opts.get("include_usage")))


OPENAI = OpenAIEgress()


class PlainJSONEgress(OpenAIEgress):
    """An answer that is not a chat completion (a token count): its object as it is, never a relay."""

    relay_openai = False


PLAIN_JSON = PlainJSONEgress()
