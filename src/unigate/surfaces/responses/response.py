"""Canonical chat completion -> the Responses API's Response object.

Shapes: the openai SDK's `types/responses/response.py`, `response_output_message.py`,
`response_function_tool_call.py`, `response_reasoning_item.py`, `response_usage.py`.

    choices[0].message.reasoning_content  -> a `reasoning` item (reasoning_text content)
    choices[0].message.content / refusal  -> a `message` item with output_text / refusal
    choices[0].message.tool_calls         -> one `function_call` item each (call_id = the tool call id)
    finish_reason length / content_filter -> status "incomplete", incomplete_details.reason
                                             max_output_tokens / content_filter
    usage                                 -> input/output/total tokens and their details

The Response also repeats the request's settings (`Echo`), as the API does.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from unigate.canonical.types import JSON
from unigate.errors import GatewayError

#: finish_reason -> incomplete_details.reason (any other reason is a complete answer)
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    # as long as OpenAI's (resp_ + 48 hex digits); random, so ids never collide across workers
    return prefix + os.urandom(24).hex()


@dataclass(slots=True)
class Echo:
    """One response's identity and the request's settings it repeats, worked out once per call."""

    id: str
    created_at: int
    model: str
    fields: JSON

    @classmethod
    def of(cls, body: JSON, store: bool) -> Echo:
        text, reasoning = body.get("text"), _obj(body.get("reasoning"))
        tools = body.get("tools")
        fields: JSON = {
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "metadata": body.get("metadata") or {},
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "store": store,
            "temperature": body.get("temperature", 1.0),
            "text": text if isinstance(text, dict) and text.get("format") else {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": [_tool_echo(t) for t in tools] if isinstance(tools, list) else [],
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation") or "disabled",
            "user": body.get("user"),
        }
        for k in ("service_tier", "prompt_cache_key", "safety_identifier", "top_logprobs"):
            if body.get(k) is not None:
                fields[k] = body[k]
        return cls(new_id("resp_"), int(time.time()), body["model"], fields)

    def response(self, status: str, output: list[JSON], usage: JSON | None, *, model: str | None = None,
                 incomplete: str | None = None, error: JSON | None = None) -> JSON:
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "completed_at": int(time.time()) if status == "completed" else None,
            "background": False, "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete is not None else None,
            "model": model or self.model, "output": output, "usage": usage, **self.fields,
        }


def _tool_echo(tool: Any) -> Any:
    if isinstance(tool, dict) and tool.get("type") == "function":
        return {"type": "function", "name": tool.get("name"), "description": tool.get("description"),
                "parameters": tool.get("parameters"), "strict": tool.get("strict", True)}
    return tool


def usage_of(u: Any) -> JSON | None:
    """OpenAI chat usage -> Responses usage."""
    if not isinstance(u, dict):
        return None
    inp, out = _int(u.get("prompt_tokens")), _int(u.get("completion_tokens"))
    pd, cd = _obj(u.get("prompt_tokens_details")), _obj(u.get("completion_tokens_details"))
    total = u.get("total_tokens")
    return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": _int(pd.get("cached_tokens")),
                                                          "cache_write_tokens": _int(pd.get("cache_write_tokens"))},
            "output_tokens": out, "output_tokens_details": {"reasoning_tokens": _int(cd.get("reasoning_tokens"))},
            "total_tokens": total if type(total) is int else inp + out}


def _obj(v: Any) -> JSON:
    return v if isinstance(v, dict) else {}


def call_id_of(v: Any) -> str:
    return v if isinstance(v, str) and v else new_id("call_")


def _int(v: Any) -> int:
    return v if type(v) is int else 0


def reasoning_of(d: JSON) -> str | None:
    r = d.get("reasoning_content")
    if not isinstance(r, str) or not r:
        r = d.get("reasoning")
    return r if isinstance(r, str) and r else None


def reasoning_item(item_id: str, text: str) -> JSON:
    return {"id": item_id, "type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": text}],
            "encrypted_content": None, "status": None}


def text_part(text: str) -> JSON:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, parts: list[JSON], status: str) -> JSON:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": parts}


def function_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> JSON:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}


def to_response(obj: JSON, echo: Echo) -> JSON:
    """A canonical chat completion -> the Response object."""
    choices = obj.get("choices")
    choice = _obj(choices[0]) if isinstance(choices, list) and choices else {}
    msg = _obj(choice.get("message"))
    finish = choice.get("finish_reason")
    incomplete = INCOMPLETE.get(finish) if isinstance(finish, str) else None
    item_status = "incomplete" if incomplete else "completed"
    output: list[JSON] = []
    reasoning = reasoning_of(msg)
    if reasoning:
        output.append(reasoning_item(new_id("rs_"), reasoning))
    parts: list[JSON] = []
    content = msg.get("content")
    if isinstance(content, str) and content:
        parts.append(text_part(content))
    elif isinstance(content, list):  # some hosts answer in parts
        text = "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
        if text:
            parts.append(text_part(text))
    refusal = msg.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append({"type": "refusal", "refusal": refusal})
    if parts:
        output.append(message_item(new_id("msg_"), parts, item_status))
    for tc in msg.get("tool_calls") or ():
        if not isinstance(tc, dict):
            continue
        fn = _obj(tc.get("function"))
        args = fn.get("arguments")
        output.append(function_item(new_id("fc_"), call_id_of(tc.get("id")), str(fn.get("name") or ""),
                                    args if isinstance(args, str) else "{}", "completed"))
    served = obj.get("model")
    return echo.response("incomplete" if incomplete else "completed", output, usage_of(obj.get("usage")),
                         model=served if isinstance(served, str) and served else None, incomplete=incomplete)


def error_object(err: GatewayError) -> JSON:
    return {"code": err.code or err.type, "message": err.message}
