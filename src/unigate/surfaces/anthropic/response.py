"""Canonical chat.completion -> Anthropic `message`, and gateway errors -> Anthropic's error
envelope (/work/shared/reference/providers.md §2.3, §2.4 read in reverse as in §8.1, §2.6).

Choices made where the canonical form says less than Anthropic's:
- stop_reason `stop_sequence` (with its `stop_sequence`) only when the upstream named the stop
  string that ended the text: vLLM-style `choices[].stop_reason` holding one of the requested
  sequences. OpenAI itself does not say, so a plain `stop` is `end_turn`.
- Any tool call makes stop_reason `tool_use` (some hosts report `stop` with tool calls), except
  when the answer was cut off (`length` stays `max_tokens`).
- Tool-call arguments that are not a JSON object cannot be a `tool_use.input`: empty ones become
  `{}`, anything else `{"_raw": "<the arguments as sent>"}`, so nothing is hidden from the client.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from unigate.canonical.types import JSON
from unigate.errors import GatewayError

#: finish_reason -> stop_reason (§8.1 reverse direction)
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish: str | None, has_tools: bool, matched: Any,
                stops: Sequence[str] | None) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for a canonical finish_reason."""
    reason = STOP_REASONS.get(finish or "", "end_turn")
    if has_tools and reason in ("end_turn", "tool_use"):
        return "tool_use", None
    if reason == "end_turn" and isinstance(matched, str) and stops and matched in stops:
        return "stop_sequence", matched
    return reason, None


def usage(u: Any) -> JSON:
    """OpenAI usage -> Anthropic usage. Anthropic's input_tokens excludes cache reads and writes,
    OpenAI's prompt_tokens includes them (§8.6)."""
    u = obj(u)
    details = obj(u.get("prompt_tokens_details"))
    cached = _int(details.get("cached_tokens"))
    written = _int(details.get("cache_write_tokens"))
    out: JSON = {
        "input_tokens": max(0, _int(u.get("prompt_tokens")) - cached - written),
        "output_tokens": _int(u.get("completion_tokens")),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    }
    cdetails = u.get("completion_tokens_details")
    reasoning = _int(cdetails.get("reasoning_tokens")) if isinstance(cdetails, dict) else 0
    if reasoning:
        out["output_tokens_details"] = {"thinking_tokens": reasoning}
    return out


def obj(v: Any) -> JSON:
    """`v` when it is an object, else an empty one (upstream answers are read defensively)."""
    return v if isinstance(v, dict) else {}


def _int(v: Any) -> int:
    return v if type(v) is int else int(v) if type(v) is float else 0


def message_id(upstream_id: Any) -> str:
    if isinstance(upstream_id, str) and upstream_id:
        return upstream_id if upstream_id.startswith("msg_") else f"msg_{upstream_id}"
    return "msg_" + os.urandom(12).hex()


def tool_use_id(upstream_id: Any) -> str:
    return upstream_id if isinstance(upstream_id, str) and upstream_id else "toolu_" + os.urandom(12).hex()


def tool_input(arguments: Any) -> JSON:
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    try:
        obj = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        obj = None
    return obj if isinstance(obj, dict) else {"_raw": arguments if isinstance(arguments, str) else str(arguments)}


def reasoning_of(d: JSON) -> str | None:
    """Reasoning text in a message or delta: `reasoning_content` (the gateway's adapters,
    DeepSeek) or `reasoning` (OpenRouter, some vLLM builds)."""
    r = d.get("reasoning_content")
    if not isinstance(r, str) or not r:
        r = d.get("reasoning")
    return r if isinstance(r, str) and r else None


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts, as some hosts answer
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def to_message(completion: JSON, model: str, stops: Sequence[str] | None = None) -> JSON:
    choices = completion.get("choices") or [{}]
    choice = obj(choices[0])
    msg = obj(choice.get("message"))
    content: list[JSON] = []
    reasoning = reasoning_of(msg)
    if reasoning:
        # no signature: the canonical form has none, and the gateway drops thinking blocks
        # that come back in later requests anyway
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = text_of(msg.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    refusal = msg.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
    calls = [tc for tc in msg.get("tool_calls") or () if isinstance(tc, dict)]
    fc = msg.get("function_call")
    if not calls and isinstance(fc, dict):  # the deprecated single-call form
        calls = [{"function": fc}]
    for tc in calls:
        fn = obj(tc.get("function"))
        content.append({"type": "tool_use", "id": tool_use_id(tc.get("id")), "name": fn.get("name") or "",
                        "input": tool_input(fn.get("arguments"))})
    reason, seq = stop_reason(choice.get("finish_reason"), bool(calls), choice.get("stop_reason"), stops)
    if isinstance(refusal, str) and refusal and reason == "end_turn":
        reason = "refusal"
    served = completion.get("model")
    if isinstance(served, str) and served:
        model = served  # what served it, as the upstream names it
    return {"id": message_id(completion.get("id")), "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": reason, "stop_sequence": seq, "usage": usage(completion.get("usage"))}


# ---------------------------------------------------------------------------- errors

#: HTTP status -> Anthropic error.type (docs errors page; §2.6). Other 4xx are
#: invalid_request_error ("also used for other 4XX status codes"), other 5xx api_error.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    # the gateway's 503 is an overloaded or unavailable upstream (Anthropic's 529 maps to it)
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    t = ERROR_TYPES.get(status)
    if t is not None:
        return t
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_object(err: GatewayError, rid: str | None = None) -> JSON:
    body: JSON = {"type": "error", "error": {"type": error_type(err.http_status), "message": err.message}}
    if rid:
        body["request_id"] = rid
    return body


def render_error(err: GatewayError, rid: str) -> web.Response:
    """A GatewayError on /v1/messages: Anthropic's envelope with the same HTTP status and
    Retry-After."""
    headers = {"x-request-id": rid, "request-id": rid, **err.headers()}
    if err.http_status == 402:
        headers["x-should-retry"] = "false"  # out of credit: the Anthropic SDK must not retry
    return web.Response(body=orjson.dumps(error_object(err, rid)), status=err.http_status,
                        content_type="application/json", headers=headers)
