"""The provider contract: what a dialect module implements, and the runtime objects it gets.

A dialect is pure translation. It builds the native request from the canonical (OpenAI Chat
Completions) body, parses the native response or stream back into canonical dicts, and maps
native errors. It never sends HTTP, reads the environment or writes SSE: `transport.py` and
`pipeline.py` do that.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from yarl import URL

from unigate.canonical.types import JSON
from unigate.config import Timeouts
from unigate.errors import GatewayError, UnsupportedFeature, UpstreamError
from unigate.providers.options import NoOptions, ProviderOptions
from unigate.providers.presets import Preset


@dataclass(slots=True)
class Provider:
    """A configured provider: where it is and how to authenticate, resolved once at start."""

    id: str
    preset: Preset
    base_url: str
    api_key: str | None
    #: static headers for every call (auth included), built once (a CIMultiDict).
    headers: Mapping[str, str]
    timeouts: Timeouts
    #: the dialect's options struct (providers/options.py), checked at start-up
    options: ProviderOptions = field(default_factory=NoOptions)


NOT_LOOKED_UP: Any = object()


@dataclass(slots=True)
class Deployment:
    """One concrete target: a provider plus the model name the provider knows."""

    id: str
    provider: Provider
    model: str
    adapter: Adapter
    timeouts: Timeouts
    weight: float = 1.0
    #: USD per million tokens from config, overriding the catalog.
    input_price: float | None = None
    output_price: float | None = None
    #: "<provider>/<model>", as clients name it
    public_id: str = field(init=False, compare=False)
    #: routed among others (a group member, a bare name's provider): its outcomes feed the
    #: breakers and live figures; a lone deployment has no choice to inform
    tracked: bool = field(default=False, compare=False)
    #: the catalog's entry, looked up on the first request (None: not in the catalog)
    catalog_info: Any = field(init=False, compare=False, repr=False, default=NOT_LOOKED_UP)

    def __post_init__(self) -> None:
        self.public_id = f"{self.provider.id}/{self.model}"


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    #: a yarl.URL(..., encoded=True) when the path must go out byte-exact (a signed path)
    url: str | URL
    headers: Mapping[str, str]
    body: bytes | None
    #: request fields the adapter dropped because this upstream cannot take them.
    dropped: tuple[str, ...] = ()
    #: an upstream in this process (the embedded model) brings its own exchange, which the
    #: transport enters instead of sending HTTP; it answers as an OpenAI upstream would
    exchange: Any = None


class StreamDecoder(Protocol):
    """Turns a native stream, fed as raw bytes in whatever pieces TCP delivers, into canonical
    `chat.completion.chunk` dicts. `usage` holds the final OpenAI usage object once known; the
    pipeline, not the decoder, emits the usage chunk to clients that asked for it."""

    usage: JSON | None
    #: framed (non-SSE) formats only: bytes fed that are not yet part of a whole frame
    unparsed: int

    def feed(self, data: bytes) -> list[JSON]: ...

    def close(self) -> list[JSON]:
        """End of the upstream body: flush anything buffered, raise UpstreamError on a truncated stream."""
        ...


#: the canonical chat fields every translating dialect handles: the request's frame, the output
#: limit, tools and formats (each builder maps them, or refuses a value it cannot express)
FRAME_FIELDS = frozenset({"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
                          "n", "tools", "tool_choice", "response_format", "stop", "reasoning_effort", "modalities"})


def unread_fields(body: JSON, reads: frozenset[str]) -> list[str]:
    """The fields of `body` a translator does not read, other than those at OpenAI's default
    (null, false; `parallel_tool_calls: true`): what the translation drops without a word."""
    return [k for k, v in body.items() if k not in reads and v is not None and v is not (k == "parallel_tool_calls")]


@dataclass(frozen=True, slots=True)
class NativeBody:
    """A client's request in a dialect's own wire format (the Anthropic surface's Messages body):
    an upstream of that dialect gets it as it came, so nothing a translation could not carry is
    lost; `headers` are the client's headers of that dialect to forward (anthropic-beta)."""

    dialect: str
    body: JSON
    headers: Mapping[str, str]


class Adapter(Protocol):
    dialect: ClassVar[str]
    #: true when the native format is the canonical one and bodies can be relayed untouched.
    passthrough: ClassVar[bool]
    #: the canonical chat fields the translator reads (None: relayed, every field goes upstream);
    #: the pipeline names every other field of a request in x-unigate-dropped-params
    reads: ClassVar[frozenset[str] | None]
    #: the media type of this dialect's streamed answers; any other 200 to a stream request is an error
    stream_content_type: ClassVar[str]

    def chat_request(self, body: JSON, dep: Deployment, *, stream: bool) -> UpstreamRequest: ...

    def chat_response(self, data: bytes, dep: Deployment) -> JSON: ...

    def chat_stream(self, body: JSON, dep: Deployment) -> StreamDecoder: ...

    def error(self, status: int, data: bytes, headers: Mapping[str, str], dep: Deployment) -> UpstreamError: ...

    def embeddings_request(self, body: JSON, dep: Deployment) -> UpstreamRequest: ...

    def embeddings_response(self, data: bytes, dep: Deployment) -> JSON: ...

    def completions_request(self, body: JSON, dep: Deployment, *, stream: bool) -> UpstreamRequest: ...

    def count_tokens_request(self, body: JSON, native: NativeBody, dep: Deployment) -> UpstreamRequest:
        """`body` is the canonical body of the request to count; `native` the client's Messages
        body, with the anthropic-* headers it came with (an Anthropic upstream counts that)."""
        ...

    def native_request(self, native: NativeBody, dep: Deployment, *, stream: bool) -> UpstreamRequest: ...

    def native_usage(self, data: bytes) -> JSON: ...

    def native_stream(self, dep: Deployment) -> NativeWatch: ...

    def count_tokens_response(self, data: bytes, dep: Deployment) -> JSON: ...


class NativeWatch(Protocol):
    """What the gateway reads from a native stream it relays unchanged (the usage, an in-stream
    error, the end): see providers/anthropic/native.py."""

    usage: JSON | None

    def see(self, block: bytes) -> tuple[bytes, GatewayError | None]: ...

    def close(self) -> None: ...


class AdapterBase:
    """Defaults for the optional parts of the contract: say clearly what is not supported."""

    dialect: ClassVar[str] = "base"
    passthrough: ClassVar[bool] = False
    reads: ClassVar[frozenset[str] | None] = None
    stream_content_type: ClassVar[str] = "text/event-stream"

    def embeddings_request(self, body: JSON, dep: Deployment) -> UpstreamRequest:
        raise UnsupportedFeature(f"{dep.public_id} does not offer embeddings", param="model")

    def embeddings_response(self, data: bytes, dep: Deployment) -> JSON:
        raise UnsupportedFeature(f"{dep.public_id} does not offer embeddings", param="model")

    def count_tokens_request(self, body: JSON, native: NativeBody, dep: Deployment) -> UpstreamRequest:
        # the Anthropic surface sends only counting deployments here and estimates for the others
        raise UnsupportedFeature(f"{dep.public_id} has no provider-side token count (Anthropic and Gemini "
                                 "upstreams have one)", param="model")

    def count_tokens_response(self, data: bytes, dep: Deployment) -> JSON:
        raise UnsupportedFeature(f"{dep.public_id} does not count tokens", param="model")

    # the native pass-through: only a dialect with a surface of its own has one (the pipeline
    # asks only when the call's native body is in this adapter's dialect)
    def native_request(self, native: NativeBody, dep: Deployment, *, stream: bool) -> UpstreamRequest:
        raise UnsupportedFeature(f"{dep.public_id} takes no {native.dialect} request as it is", param="model")

    def native_usage(self, data: bytes) -> JSON:
        raise NotImplementedError

    def native_stream(self, dep: Deployment) -> NativeWatch:
        raise NotImplementedError

    def completions_request(self, body: JSON, dep: Deployment, *, stream: bool) -> UpstreamRequest:
        raise UnsupportedFeature(
            f"{dep.public_id} has no legacy completions API; use /v1/chat/completions", param="model"
        )


class ChunkMaker:
    """Builds canonical stream chunks that share one id/created/model, for native decoders."""

    __slots__ = ("created", "id", "model")

    def __init__(self, model: str, id: str | None = None, created: int | None = None) -> None:
        self.id = id or "chatcmpl-" + _rand_id()
        self.created = created or int(time.time())
        self.model = model

    def chunk(self, delta: JSON, *, finish_reason: str | None = None, index: int = 0) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }

    def usage_chunk(self, usage: JSON) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        }


def _rand_id() -> str:
    import os

    return os.urandom(12).hex()


def usage_dict(prompt: int, completion: int, *, cached: int = 0, cache_write: int = 0, reasoning: int = 0) -> JSON:
    """An OpenAI usage object; details appear only when non-zero."""
    u: JSON = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cached or cache_write:
        d: JSON = {"cached_tokens": cached}
        if cache_write:
            d["cache_write_tokens"] = cache_write
        u["prompt_tokens_details"] = d
    if reasoning:
        u["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return u
