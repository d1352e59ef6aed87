"""The Anthropic Messages dialect (`POST /v1/messages`): canonical OpenAI chat bodies translated
to Anthropic's wire format and back. Translation lives in request.py / content.py (inbound),
response.py (answers, usage, errors) and stream.py (SSE events)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import orjson

from unigate.canonical.types import JSON
from unigate.errors import UpstreamError
from unigate.providers.anthropic.native import NativeStreamWatch, merge_headers, message_usage
from unigate.providers.anthropic.request import ANTHROPIC_VERSION, READS, build
from unigate.providers.anthropic.response import error_fields, to_completion, upstream_error
from unigate.providers.anthropic.stream import AnthropicStreamDecoder
from unigate.providers.base import AdapterBase, Deployment, NativeBody, Provider, UpstreamRequest

__all__ = ["AnthropicAdapter", "AnthropicStreamDecoder"]

#: the fields of a Messages body that count_tokens also takes (it refuses the generation ones)
COUNT_FIELDS = ("messages", "system", "tools", "tool_choice", "thinking", "cache_control", "output_config",
                "mcp_servers", "context_management")


class AnthropicAdapter(AdapterBase):
    dialect: ClassVar[str] = "anthropic"
    reads: ClassVar[frozenset[str] | None] = READS

    def __init__(self) -> None:
        # per provider: (the provider itself, merged headers, messages URL). Keyed by id() since
        # Provider is unhashable; holding the provider keeps that id from being reused.
        self._per_provider: dict[int, tuple[Provider, dict[str, str], str]] = {}

    def _target(self, provider: Provider) -> tuple[dict[str, str], str]:
        hit = self._per_provider.get(id(provider))
        if hit is None or hit[0] is not provider:
            # anthropic-version is required on every call (Anthropic API versioning docs); a
            # header from the provider config wins, so a newer version can be configured.
            headers = {"anthropic-version": ANTHROPIC_VERSION, **provider.headers}
            base = provider.base_url.rstrip("/")
            # ANTHROPIC_BASE_URL is the host root, as in the Anthropic SDK; tolerate a trailing /v1
            url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"
            hit = (provider, headers, url)
            self._per_provider[id(provider)] = hit
        return hit[1], hit[2]

    def chat_request(self, body: JSON, dep: Deployment, *, stream: bool) -> UpstreamRequest:
        out, dropped = build(body, dep.model, stream=stream)
        headers, url = self._target(dep.provider)
        return UpstreamRequest("POST", url, headers, orjson.dumps(out), dropped)

    def chat_response(self, data: bytes, dep: Deployment) -> JSON:
        return to_completion(data, dep.model)

    def native_request(self, native: NativeBody, dep: Deployment, *, stream: bool) -> UpstreamRequest:
        """The client's Messages body as it came, for this deployment's model (native.py)."""
        headers, url = self._target(dep.provider)
        if native.headers:
            headers = merge_headers(headers, native.headers, dep.provider.headers)
        body = native.body if native.body.get("model") == dep.model else {**native.body, "model": dep.model}
        return UpstreamRequest("POST", url, headers, orjson.dumps(body))

    def native_usage(self, data: bytes) -> JSON:
        return message_usage(data)

    def native_stream(self, dep: Deployment) -> NativeStreamWatch:
        return NativeStreamWatch(dep.provider.id)

    def count_tokens_request(self, body: JSON, native: NativeBody, dep: Deployment) -> UpstreamRequest:
        """The client's own Messages body counts: the fields count_tokens takes go upstream as
        they are, with the client's anthropic-beta and anthropic-version (a body using a beta
        field, context_management or mcp_servers, is refused without its beta)."""
        out: JSON = {k: native.body[k] for k in COUNT_FIELDS if k in native.body}
        out["model"] = dep.model
        headers, url = self._target(dep.provider)
        if native.headers:
            headers = merge_headers(headers, native.headers, dep.provider.headers)
        return UpstreamRequest("POST", url + "/count_tokens", headers, orjson.dumps(out))

    def count_tokens_response(self, data: bytes, dep: Deployment) -> JSON:
        n = orjson.loads(data)["input_tokens"]
        if type(n) is not int:
            raise ValueError("input_tokens is not an integer")
        return {"input_tokens": n}

    def chat_stream(self, body: JSON, dep: Deployment) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(dep.model, dep.provider.id)

    def error(self, status: int, data: bytes, headers: Mapping[str, str], dep: Deployment) -> UpstreamError:
        etype, message = error_fields(data)
        return upstream_error(status, etype, message, headers, dep.provider.id)
