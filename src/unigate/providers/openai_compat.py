"""The OpenAI Chat Completions dialect, spoken by OpenAI and every OpenAI-compatible host.

Bodies are relayed with as little work as possible: the model name is swapped, the preset's
renames/drops applied, and the rest forwarded untouched. Streams are relayed byte for byte by
the pipeline (`passthrough = True`); only the usage event is looked at.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

import orjson

from unigate.canonical.tools import rewrite_tool_ids, short_tool_id
from unigate.canonical.types import JSON

# error_message and retry_after_seconds live in canonical.upstream; re-exported for importers
# of the old place
from unigate.canonical.upstream import error_message as error_message
from unigate.canonical.upstream import retry_after_seconds as retry_after_seconds
from unigate.errors import UpstreamError, UpstreamUnavailable, upstream_error_for_status
from unigate.providers import openai_responses
from unigate.providers.base import AdapterBase, Deployment, NativeBody, UpstreamRequest
from unigate.providers.sse import SSEDecoder


class OpenAICompatAdapter(AdapterBase):
    dialect: ClassVar[str] = "openai"
    passthrough: ClassVar[bool] = True

    def chat_request(self, body: JSON, dep: Deployment, *, stream: bool) -> UpstreamRequest:
        out, dropped = self._prepare(body, dep)
        if stream and dep.provider.preset.stream_usage:
            opts = out.get("stream_options")
            if not isinstance(opts, dict) or not opts.get("include_usage"):
                out["stream_options"] = {**(opts or {}), "include_usage": True}
        elif not dep.provider.preset.stream_usage:
            out.pop("stream_options", None)
        if dep.provider.preset.tool_id_len:
            rewrite_tool_ids(out, partial(short_tool_id, length=dep.provider.preset.tool_id_len))
        return UpstreamRequest("POST", self.url(dep, "chat/completions"), dep.provider.headers, orjson.dumps(out), dropped)

    def chat_response(self, data: bytes, dep: Deployment) -> JSON:
        obj = orjson.loads(data)
        if not isinstance(obj, dict):
            raise ValueError("chat completion is not a JSON object")
        return obj

    def chat_stream(self, body: JSON, dep: Deployment) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(dep.provider.id)

    def embeddings_request(self, body: JSON, dep: Deployment) -> UpstreamRequest:
        out, dropped = self._prepare(body, dep)
        return UpstreamRequest("POST", self.url(dep, "embeddings"), dep.provider.headers, orjson.dumps(out), dropped)

    def embeddings_response(self, data: bytes, dep: Deployment) -> JSON:
        return self.chat_response(data, dep)

    def completions_request(self, body: JSON, dep: Deployment, *, stream: bool) -> UpstreamRequest:
        out, dropped = self._prepare(body, dep)
        if stream and dep.provider.preset.stream_usage:
            out["stream_options"] = {**(out.get("stream_options") or {}), "include_usage": True}
        return UpstreamRequest("POST", self.url(dep, "completions"), dep.provider.headers, orjson.dumps(out), dropped)

    # the native pass-through: a Responses API request, for an upstream that has that API (the
    # Responses surface sets it only when every deployment is on the `openai` preset)
    def native_request(self, native: NativeBody, dep: Deployment, *, stream: bool) -> UpstreamRequest:
        return openai_responses.responses_request(native, dep, stream=stream)

    def native_usage(self, data: bytes) -> JSON:
        return openai_responses.response_usage(data)

    def native_stream(self, dep: Deployment) -> openai_responses.ResponsesStreamWatch:
        return openai_responses.ResponsesStreamWatch(dep.provider.id)

    def error(self, status: int, data: bytes, headers: Mapping[str, str], dep: Deployment) -> UpstreamError:
        message, code = error_message(data)
        return upstream_error_for_status(
            status,
            f"{dep.provider.id}: {message or f'upstream answered HTTP {status}'}",
            provider=dep.provider.id,
            retry_after=retry_after_seconds(headers),
            code=code,
        )

    def url(self, dep: Deployment, path: str) -> str:
        return f"{dep.provider.base_url}/{path}"

    @staticmethod
    def _prepare(body: JSON, dep: Deployment) -> tuple[JSON, tuple[str, ...]]:
        out = dict(body)
        out["model"] = dep.model
        preset = dep.provider.preset
        for old, new in preset.renames:
            if old in out and new not in out:
                out[new] = out.pop(old)
        dropped: tuple[str, ...] = ()
        if preset.drop:
            dropped = tuple(k for k in preset.drop if k in out)
            for k in dropped:
                del out[k]
        return out, dropped


class OpenAIStreamDecoder:
    """Parses an OpenAI SSE stream into chunk dicts, for surfaces that re-encode the stream
    (the Anthropic surface); the OpenAI surface relays the bytes instead."""

    def __init__(self, provider: str = "upstream") -> None:
        self._provider = provider
        self._sse = SSEDecoder()
        self.usage: JSON | None = None

    def feed(self, data: bytes) -> list[JSON]:
        return self._events(self._sse.feed(data))

    def close(self) -> list[JSON]:
        return self._events(self._sse.close())

    def _events(self, events: Any) -> list[JSON]:
        out: list[JSON] = []
        for ev in events:
            if ev.data == "[DONE]":
                continue
            obj = orjson.loads(ev.data)
            if obj.get("error") and not obj.get("choices"):
                # a mid-stream error event (OpenRouter and others send these after the 200)
                message, code = error_message(ev.data.encode())
                raise upstream_error_for_status(502, f"{self._provider}: {message}", provider=self._provider, code=code)
            if obj.get("usage"):
                self.usage = obj["usage"]
                if not obj.get("choices"):
                    continue  # the usage-only chunk: the pipeline shows usage to clients that asked
            if not isinstance(obj.get("choices"), list):
                raise UpstreamUnavailable(f"{self._provider}: a stream chunk has no choices list", provider=self._provider)
            out.append(obj)
        return out

