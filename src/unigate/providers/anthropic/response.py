"""Anthropic Messages response / usage / errors -> canonical (OpenAI) shapes (§2.3-2.6, §8)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from unigate.canonical.tools import JSON_TOOL
from unigate.canonical.types import JSON
from unigate.canonical.upstream import retry_after_seconds
from unigate.errors import UpstreamError, UpstreamForbidden, upstream_error_for_status
from unigate.providers.base import usage_dict

#: stop_reason -> finish_reason (§2.4; Envoy AI Gateway and Portkey map the same way)
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",  # a paused server-tool turn: OpenAI has no way to say "call again"
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

#: error.type -> the HTTP status it comes with (§2.6), for errors that arrive inside a stream
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_CODES = {"overloaded_error": "overloaded", "request_too_large": "request_too_large"}


def finish_reason(stop_reason: str | None, has_tool_calls: bool) -> str:
    fr = FINISH.get(stop_reason or "", "stop")
    if fr == "tool_calls" and not has_tool_calls:
        fr = "stop"  # only the response_format tool was called: to the client that is the answer
    return fr


def usage(u: Mapping[str, Any]) -> JSON:
    """Anthropic's input_tokens excludes cached tokens, OpenAI's prompt_tokens includes them (§8.6)."""
    inp = int(u.get("input_tokens") or 0)
    cache_write = int(u.get("cache_creation_input_tokens") or 0)
    cache_read = int(u.get("cache_read_input_tokens") or 0)
    details = u.get("output_tokens_details")
    reasoning = int(details.get("thinking_tokens") or 0) if isinstance(details, dict) else 0
    return usage_dict(inp + cache_write + cache_read, int(u.get("output_tokens") or 0),
                      cached=cache_read, cache_write=cache_write, reasoning=reasoning)


def to_completion(data: bytes, fallback_model: str) -> JSON:
    obj = orjson.loads(data)
    if not isinstance(obj, dict) or obj.get("type") != "message":
        raise ValueError("the answer is not an Anthropic message object")
    texts: list[str] = []
    thinking: list[str] = []
    tool_calls: list[JSON] = []
    answer: str | None = None
    for blk in obj.get("content") or ():
        t = blk.get("type")
        if t == "text":
            texts.append(blk.get("text") or "")
        elif t == "thinking":
            thinking.append(blk.get("thinking") or "")
        elif t == "tool_use" and blk.get("name") == JSON_TOOL:
            answer = orjson.dumps(blk.get("input") or {}).decode()
        elif t == "tool_use":
            tool_calls.append({"id": blk.get("id"), "type": "function",
                               "function": {"name": blk.get("name"), "arguments": orjson.dumps(blk.get("input") or {}).decode()}})
        # redacted_thinking and server-tool blocks have no OpenAI counterpart
    if answer is not None:
        # Forced tool use means no text precedes the call (Anthropic tool-use docs: with
        # tool_choice any/tool "the model will not emit a chain-of-thought text content block"),
        # so the JSON alone is the answer.
        content: str | None = answer
    else:
        content = "".join(texts) if texts or not tool_calls else None
    message: JSON = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    return {
        "id": obj.get("id") or "msg",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": obj.get("model") or fallback_model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason(obj.get("stop_reason"), bool(tool_calls))}],
        "usage": usage(obj.get("usage") or {}),
    }


def error_fields(data: bytes) -> tuple[str | None, str]:
    """(error.type, message) from `{"type":"error","error":{"type","message"}}`, or from
    whatever an edge proxy sent instead (HTML, plain text)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None, data.decode("utf-8", "replace").strip()[:500]
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict):
        msg = err.get("message")
        return (str(err["type"]) if err.get("type") else None), (msg if isinstance(msg, str) else orjson.dumps(msg).decode())
    return None, str(obj)[:500]


def upstream_error(status: int, etype: str | None, message: str, headers: Mapping[str, str], provider: str) -> UpstreamError:
    text = f"{provider}: {message or f'upstream answered HTTP {status}'}"
    if status == 402 or etype == "billing_error":
        # Out of credit on this account: another deployment may still work, and the client
        # must not retry here (§8.8); 402 keeps the OpenAI SDK from retrying.
        return UpstreamForbidden(text, provider=provider, upstream_status=status, status=402, code="insufficient_quota")
    return upstream_error_for_status(status, text, provider=provider, retry_after=retry_after_seconds(headers),
                                     code=_CODES.get(etype or ""))


def stream_error(payload: JSON, provider: str) -> UpstreamError:
    """An `event: error` after the HTTP 200 (§2.5): mapped as if it had come with its status."""
    raw = payload.get("error")
    err: JSON = raw if isinstance(raw, dict) else {}
    etype = err.get("type")
    message = err.get("message") or "the upstream reported an error mid-stream"
    return upstream_error(ERROR_STATUS.get(str(etype), 500), etype, str(message), {}, provider)
