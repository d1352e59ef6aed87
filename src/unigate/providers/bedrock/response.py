"""Bedrock `ConverseResponse` -> canonical `chat.completion`, plus the stop-reason and usage
maps the stream decoder shares.

Shapes: service-2.json ConverseResponse / TokenUsage / StopReason; maps:
/work/shared/reference/providers.md §8.1 and §8.6.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from unigate.canonical.tools import JSON_TOOL
from unigate.canonical.types import JSON
from unigate.providers.base import usage_dict

FINISH: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    # malformed_model_output / malformed_tool_use have no OpenAI counterpart: "stop" (§8.1)
}


def finish_reason(stop_reason: Any, json_answer: bool = False) -> str:
    fr = FINISH.get(str(stop_reason), "stop")
    # the forced JSON tool is an implementation detail: to the client the answer just ended
    return "stop" if json_answer and fr == "tool_calls" else fr


def usage_from(u: Any) -> JSON | None:
    """Converse `inputTokens` excludes prompt-cache reads and writes (AWS prompt-caching docs:
    totalTokens = inputTokens + cacheRead + cacheWrite + outputTokens), so prompt_tokens adds
    them back, as OpenAI counts cached tokens inside prompt_tokens."""
    if not isinstance(u, dict):
        return None
    read = int(u.get("cacheReadInputTokens") or 0)
    write = int(u.get("cacheWriteInputTokens") or 0)
    return usage_dict(int(u.get("inputTokens") or 0) + read + write, int(u.get("outputTokens") or 0),
                      cached=read, cache_write=write)


def parse_converse(data: bytes, model: str) -> JSON:
    obj = orjson.loads(data)
    blocks = obj["output"]["message"]["content"]
    if not isinstance(blocks, list):
        raise ValueError("output.message.content is not a list")
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[JSON] = []
    json_text: str | None = None
    for b in blocks:
        if "text" in b:
            texts.append(b["text"])
        elif "toolUse" in b:
            tu = b["toolUse"]
            args = orjson.dumps(tu.get("input") if tu.get("input") is not None else {}).decode()
            if tu.get("name") == JSON_TOOL:
                json_text = args
            else:
                calls.append({"id": tu["toolUseId"], "type": "function",
                              "function": {"name": tu["name"], "arguments": args}})
        elif "reasoningContent" in b:
            rt = (b["reasoningContent"] or {}).get("reasoningText") or {}
            if rt.get("text"):
                reasoning.append(rt["text"])
    # with the forced JSON tool the tool input is the whole answer (a preamble would not be JSON)
    content = json_text if json_text is not None else "".join(texts) if texts or not calls else None
    message: JSON = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    out: JSON = {
        "id": "chatcmpl-" + os.urandom(12).hex(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason(obj.get("stopReason"), json_text is not None)}],
    }
    usage = usage_from(obj.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out
