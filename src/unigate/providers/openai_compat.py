"""The OpenAI Chat Completions dialect, spoken by OpenAI and every OpenAI-compatible host.

Bodies are relayed with as little work as possible: the model name is swapped, the preset's
renames/drops applied, and the rest forwarded untouched. Streams are relayed byte for byte by
the pipeline (`passthrough = True`); only the usage event is looked at.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from unigate.errors import UpstreamError, UpstreamUnavailable, upstream_error_for_status
from unigate.providers.base import JSON, AdapterBase, Deployment, UpstreamRequest
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
            _rewrite_tool_ids(out, dep.provider.preset.tool_id_len)
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


def error_message(data: bytes) -> tuple[str, str | None]:
    """The message and code from the error bodies OpenAI-compatible servers really send:
    OpenAI's envelope, Ollama's {"error": "text"}, Mistral's {"object": "error", ...},
    FastAPI's {"detail": ...}, or plain text."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        text = data.decode("utf-8", "replace").strip()
        return text[:500], None
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        obj = obj[0]  # Gemini's OpenAI endpoint wraps errors in a list
    if not isinstance(obj, dict):
        return str(obj)[:500], None
    err = obj.get("error", obj)
    if isinstance(err, str):
        return err, None
    if isinstance(err, dict):
        msg = err.get("message") or err.get("detail") or err.get("msg") or ""
        code = err.get("code") or err.get("type") or err.get("status")
        if not isinstance(msg, str):
            msg = orjson.dumps(msg).decode()
        return msg, (str(code) if code is not None else None)
    return str(err)[:500], None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait an upstream asks for (`retry-after-ms`, then `Retry-After` in seconds or as an
    HTTP date), or None when it asks for none or says something unusable (`nan`, `-5`);
    GatewayError caps what is too long."""
    v = headers.get("retry-after-ms")
    if v:
        try:
            ms = float(v)
            if ms >= 0:  # False for NaN too
                return ms / 1000
        except ValueError:
            pass
    v = headers.get("retry-after")
    if v:
        try:
            s = float(v)
            return s if s >= 0 else None
        except ValueError:
            import time
            from email.utils import parsedate_to_datetime

            try:
                return max(0.0, parsedate_to_datetime(v).timestamp() - time.time())
            except (TypeError, ValueError, OverflowError, IndexError):
                return None
    return None


def short_tool_id(original: str, length: int) -> str:
    """A stable alphanumeric id of `length` chars for a tool-call id from another provider."""
    if len(original) == length and original.isalnum():
        return original
    digest = hashlib.sha256(original.encode()).digest()
    return base64.b32encode(digest).decode().lower().replace("=", "")[:length]


def _rewrite_tool_ids(body: JSON, length: int) -> None:
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        return
    new_msgs = []
    for m in msgs:
        if isinstance(m, dict) and (m.get("tool_calls") or m.get("tool_call_id")):
            m = dict(m)
            if m.get("tool_call_id"):
                m["tool_call_id"] = short_tool_id(str(m["tool_call_id"]), length)
            if isinstance(m.get("tool_calls"), list):
                m["tool_calls"] = [
                    {**tc, "id": short_tool_id(str(tc.get("id", "")), length)} if isinstance(tc, dict) else tc
                    for tc in m["tool_calls"]
                ]
        new_msgs.append(m)
    body["messages"] = new_msgs
