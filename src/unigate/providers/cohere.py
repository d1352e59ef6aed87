"""The Cohere v2 Chat dialect (`POST {base}/v2/chat`), translated to and from the canonical
OpenAI Chat Completions shape.

Wire format: cohere-ai/cohere-python `src/cohere/v2/raw_client.py` and `src/cohere/v2/types/*`
(see /work/shared/reference/providers.md §4). Choices worth knowing:

- An assistant turn's text that accompanies tool calls travels as Cohere's `tool_plan`
  (Cohere's own docs append `{"role": "assistant", "tool_plan", "tool_calls"}`), and a
  response's `tool_plan` comes back as `content` when there is no other text, so the round
  trip is lossless. In streams, `tool-plan-delta` becomes `delta.content` the same way.
- Thinking text (`content[].thinking`, stream `content.thinking`) goes to `reasoning_content`,
  the name most OpenAI-compatible hosts use for it.
- `finish_reason` ERROR / TIMEOUT and `message-end.delta.error` are failures, not endings: they
  raise (502 / 504) instead of giving the client a silently truncated answer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from unigate.canonical.effort import reasoning_effort
from unigate.canonical.limits import max_output_tokens
from unigate.canonical.tools import refuse_reserved_tool
from unigate.canonical.types import JSON
from unigate.canonical.upstream import error_message, retry_after_seconds
from unigate.errors import (
    InvalidRequest,
    UnsupportedFeature,
    UpstreamAuthError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    upstream_error_for_status,
)
from unigate.providers.base import (
    FRAME_FIELDS,
    AdapterBase,
    ChunkMaker,
    Deployment,
    UpstreamRequest,
    usage_dict,
)
from unigate.providers.sse import SSEDecoder, SSEEvent

FINISH: dict[str, str] = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls"}

#: OpenAI request fields Cohere v2 has no equivalent for: dropped and reported (not an error).
#: `logprobs` exists in v2 but answers in a different shape, so it is not forwarded either.
#: every canonical field the chat builder reads; the pipeline reports the others (logit_bias,
#: logprobs, user, parallel_tool_calls: false, ...) as dropped
READS = FRAME_FIELDS | {"temperature", "top_p", "top_k", "seed", "frequency_penalty", "presence_penalty",
                        "functions", "function_call"}


class CohereAdapter(AdapterBase):
    dialect: ClassVar[str] = "cohere"
    passthrough: ClassVar[bool] = False
    reads: ClassVar[frozenset[str] | None] = READS

    # ------------------------------------------------------------------ request

    def chat_request(self, body: JSON, dep: Deployment, *, stream: bool) -> UpstreamRequest:
        pid = dep.provider.id
        n = body.get("n")
        if n is not None and n != 1:
            raise UnsupportedFeature(f"{pid}: Cohere returns one choice per request; 'n' must be 1", param="n")
        if "audio" in (body.get("modalities") or ()):
            raise UnsupportedFeature(f"{pid}: Cohere cannot answer with audio", param="modalities")
        refuse_reserved_tool(body)
        out: JSON = {"model": dep.model, "messages": to_cohere_messages(body["messages"], pid)}
        tools, choice, strict = _tools(body, pid)
        if tools:
            out["tools"] = tools
            if choice:
                out["tool_choice"] = choice
            if strict:
                out["strict_tools"] = True
        max_tokens = max_output_tokens(body)
        if max_tokens is not None:
            out["max_tokens"] = max_tokens
        for src, dst in (("temperature", "temperature"), ("top_p", "p"), ("top_k", "k"), ("seed", "seed"),
                         ("frequency_penalty", "frequency_penalty"), ("presence_penalty", "presence_penalty")):
            if body.get(src) is not None:
                out[dst] = body[src]
        stop = body.get("stop")
        if stop:
            out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        rf = _response_format(body.get("response_format"))
        if rf is not None:
            out["response_format"] = rf
        effort = reasoning_effort(body)  # checked as on every dialect; Cohere takes no budget
        if effort is not None:
            out["thinking"] = {"type": "disabled" if effort == "none" else "enabled"}
        if stream:
            out["stream"] = True
        return UpstreamRequest("POST", _chat_url(dep), dep.provider.headers, orjson.dumps(out))

    # ------------------------------------------------------------------ response

    def chat_response(self, data: bytes, dep: Deployment) -> JSON:
        obj = orjson.loads(data)
        if not isinstance(obj, dict):
            raise ValueError("chat response is not a JSON object")
        native_finish = obj.get("finish_reason")
        _raise_on_failure(dep.provider.id, native_finish, None)
        msg = obj.get("message") or {}
        text, reasoning = _join_content(msg.get("content"))
        tool_calls = [_tool_call(tc, f"call_{i}") for i, tc in enumerate(msg.get("tool_calls") or ())]
        if not text and tool_calls and msg.get("tool_plan"):
            text = msg["tool_plan"]
        message: JSON = {"role": "assistant", "content": text or None, "refusal": None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        if reasoning:
            message["reasoning_content"] = reasoning
        out: JSON = {
            "id": obj.get("id") or "chatcmpl-cohere",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": dep.model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": _finish(native_finish, bool(tool_calls))}],
        }
        usage = cohere_usage(obj.get("usage"))
        if usage is not None:
            out["usage"] = usage
        return out

    def chat_stream(self, body: JSON, dep: Deployment) -> CohereStreamDecoder:
        return CohereStreamDecoder(dep.model, dep.provider.id)

    def error(self, status: int, data: bytes, headers: Mapping[str, str], dep: Deployment) -> UpstreamError:
        pid = dep.provider.id
        message, code = error_message(data)
        text = f"{pid}: {message or f'upstream answered HTTP {status}'}"
        if status == 498:  # Cohere's "invalid token" status (cohere-python raw_client error mapping)
            return UpstreamAuthError(text, provider=pid, upstream_status=status, code=code)
        if status == 499:  # "client closed request": not the caller's fault, another deployment may do
            return UpstreamUnavailable(text, provider=pid, upstream_status=status, code=code)
        return upstream_error_for_status(status, text, provider=pid, retry_after=retry_after_seconds(headers), code=code)


def _chat_url(dep: Deployment) -> str:
    base = dep.provider.base_url.rstrip("/")
    # COHERE_BASE_URL is the host root, as in Cohere's SDK; tolerate one that already ends in /v2
    base = base.removesuffix("/v2")
    return f"{base}/v2/chat"


# ---------------------------------------------------------------------- request pieces


def to_cohere_messages(msgs: list[JSON], pid: str) -> list[JSON]:
    out: list[JSON] = []
    legacy_ids: list[str] = []  # ids made up for deprecated `function_call` turns, answered in order
    for i, m in enumerate(msgs):
        role = m.get("role")
        content = m.get("content")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": _text_parts(content, i, pid)})
        elif role == "user":
            out.append({"role": "user", "content": _user_content(content, i, pid)})
        elif role == "assistant":
            out.append(_assistant(m, i, pid, legacy_ids))
        elif role == "tool":
            out.append({"role": "tool", "tool_call_id": m["tool_call_id"], "content": _text_parts(content, i, pid)})
        elif role == "function":
            call_id = legacy_ids.pop(0) if legacy_ids else f"call_{m.get('name') or i}"
            out.append({"role": "tool", "tool_call_id": call_id, "content": _text_parts(content, i, pid)})
        else:
            raise InvalidRequest(f"{pid}: messages[{i}] has an unknown role {role!r}", param=f"messages[{i}].role")
    return out


def _text_parts(content: Any, i: int, pid: str) -> str | list[JSON]:
    if content is None or isinstance(content, str):
        return content or ""
    parts: list[JSON] = []
    for j, p in enumerate(content):
        if isinstance(p, dict) and p.get("type") in ("text", "refusal"):
            parts.append({"type": "text", "text": p.get("text") or p.get("refusal") or ""})
        else:
            kind = p.get("type") if isinstance(p, dict) else type(p).__name__
            raise UnsupportedFeature(f"{pid}: messages[{i}] may hold only text here, not {kind!r} parts",
                                     param=f"messages[{i}].content[{j}]")
    return parts


def _user_content(content: Any, i: int, pid: str) -> str | list[JSON]:
    if isinstance(content, str):
        return content
    parts: list[JSON] = []
    for j, p in enumerate(content or ()):
        kind = p.get("type") if isinstance(p, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": p.get("text") or ""})
        elif kind == "image_url":
            img = p.get("image_url")
            img = {"url": img} if isinstance(img, str) else dict(img or {})
            if not img.get("url"):
                raise InvalidRequest(f"{pid}: messages[{i}].content[{j}].image_url.url is missing",
                                     param=f"messages[{i}].content[{j}].image_url")
            parts.append({"type": "image_url", "image_url": {k: img[k] for k in ("url", "detail") if img.get(k)}})
        else:
            raise UnsupportedFeature(f"{pid}: Cohere takes text and image parts, not {kind!r}",
                                     param=f"messages[{i}].content[{j}]")
    return parts


def _assistant(m: JSON, i: int, pid: str, legacy_ids: list[str]) -> JSON:
    parts = _text_parts(m.get("content"), i, pid)
    text = parts if isinstance(parts, str) else "".join(p["text"] for p in parts)
    calls = [_tool_call(tc, f"call_{i}_{k}") for k, tc in enumerate(m.get("tool_calls") or ())]
    fc = m.get("function_call")
    if isinstance(fc, dict):  # the deprecated single-function form
        legacy_ids.append(f"call_{fc.get('name') or i}_{i}")
        calls.append(_tool_call({"function": fc}, legacy_ids[-1]))
    out: JSON = {"role": "assistant"}
    if calls:
        out["tool_calls"] = calls
        if text:
            out["tool_plan"] = text
    elif text:
        out["content"] = text
    return out


def _tool_call(tc: JSON, fallback_id: str) -> JSON:
    """One tool call in the shape both sides share; arguments always a JSON string."""
    fn = tc.get("function") or {}
    return {"id": str(tc.get("id") or fallback_id), "type": "function",
            "function": {"name": fn.get("name", ""), "arguments": _args_str(fn.get("arguments"))}}


def _args_str(args: Any) -> str:
    if isinstance(args, str):
        return args
    return orjson.dumps(args if args is not None else {}).decode()


def _tools(body: JSON, pid: str) -> tuple[list[JSON], str | None, bool]:
    raw = body.get("tools")
    if raw is None and body.get("functions"):  # deprecated `functions` = tools of type function
        raw = [{"type": "function", "function": f} for f in body["functions"]]
    choice = body.get("tool_choice") or body.get("function_call")
    tools: list[JSON] = []
    strict = False
    for k, t in enumerate(raw or ()):
        if t.get("type") != "function":
            raise UnsupportedFeature(f"{pid}: Cohere takes function tools only, not {t.get('type')!r}",
                                     param=f"tools[{k}].type")
        fn = t["function"]
        strict = strict or fn.get("strict") is True  # Cohere's switch is per request, not per tool
        out_fn: JSON = {"name": fn["name"], "parameters": fn.get("parameters") or {"type": "object", "properties": {}}}
        if fn.get("description"):
            out_fn["description"] = fn["description"]
        tools.append({"type": "function", "function": out_fn})
    if not tools:
        return [], None, False
    native: str | None = None
    if choice in (None, "auto"):
        native = None
    elif choice == "none":
        native = "NONE"
    elif choice == "required":
        native = "REQUIRED"
    elif isinstance(choice, dict):
        # Cohere cannot name one function: force a call and offer only the named ones
        # (the approach suggested in providers.md §8.4).
        if choice.get("type") == "allowed_tools":
            spec = choice.get("allowed_tools") or {}
            names = {(t.get("function") or {}).get("name") for t in spec.get("tools") or ()}
            native = "REQUIRED" if spec.get("mode") == "required" else None
        else:
            name = (choice.get("function") or {}).get("name") or choice.get("name")
            names, native = {name}, "REQUIRED"
        tools = [t for t in tools if t["function"]["name"] in names]
        if not tools:
            raise InvalidRequest(f"{pid}: tool_choice names a function that is not in 'tools'", param="tool_choice")
    else:
        raise InvalidRequest(f"{pid}: unknown tool_choice {choice!r}", param="tool_choice")
    return tools, native, strict


def _response_format(rf: Any) -> JSON | None:
    if not isinstance(rf, dict) or rf.get("type") in (None, "text"):
        return None
    if rf["type"] == "json_schema":
        schema = (rf.get("json_schema") or {}).get("schema")
        return {"type": "json_object", "json_schema": schema} if schema else {"type": "json_object"}
    return {"type": "json_object"}


# ---------------------------------------------------------------------- response pieces


def _join_content(content: Any) -> tuple[str, str]:
    if isinstance(content, str):
        return content, ""
    text, thinking = [], []
    for p in content or ():
        if isinstance(p, dict):
            if p.get("type") == "thinking":
                thinking.append(p.get("thinking") or "")
            elif p.get("text"):
                text.append(p["text"])
    return "".join(text), "".join(thinking)


def _finish(native: Any, had_tool_calls: bool) -> str:
    out = FINISH.get(native, "stop") if isinstance(native, str) else "stop"
    return "tool_calls" if had_tool_calls and out == "stop" else out


def _raise_on_failure(pid: str, finish: Any, error: Any) -> None:
    if error:
        raise UpstreamUnavailable(f"{pid}: the generation failed: {error}", provider=pid)
    if finish == "ERROR":
        raise UpstreamUnavailable(f"{pid}: the generation failed (finish_reason ERROR)", provider=pid)
    if finish == "TIMEOUT":
        raise UpstreamTimeout(f"{pid}: the generation timed out upstream (finish_reason TIMEOUT)", provider=pid)


def cohere_usage(u: Any) -> JSON | None:
    """OpenAI usage from Cohere's `usage`: `tokens` (what the model processed) when present,
    else `billed_units`; `cached_tokens` becomes prompt_tokens_details.cached_tokens."""
    if not isinstance(u, dict):
        return None
    src = u.get("tokens") or u.get("billed_units")
    if not isinstance(src, dict):
        return None
    return usage_dict(int(src.get("input_tokens") or 0), int(src.get("output_tokens") or 0),
                      cached=int(u.get("cached_tokens") or 0))


class CohereStreamDecoder:
    """Cohere v2 SSE events -> canonical chunks. Each event's `type` is inside its data (an
    `event:` line, when present, says the same)."""

    def __init__(self, model: str, provider: str) -> None:
        self._sse = SSEDecoder()
        self._model = model
        self._pid = provider
        self._maker: ChunkMaker | None = None
        #: Cohere's tool-call `index` -> the OpenAI tool_calls index (0, 1, ... in call order)
        self._tools: dict[int, int] = {}
        self._ended = False
        self.usage: JSON | None = None

    def feed(self, data: bytes) -> list[JSON]:
        return self._events(self._sse.feed(data))

    def close(self) -> list[JSON]:
        out = self._events(self._sse.close())
        if not self._ended:
            raise UpstreamUnavailable(f"{self._pid}: the stream ended before message-end", provider=self._pid)
        return out

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        if self._maker is None:
            self._maker = ChunkMaker(self._model)
        return self._maker.chunk(delta, finish_reason=finish)

    def _events(self, events: list[SSEEvent]) -> list[JSON]:
        out: list[JSON] = []
        for ev in events:
            if ev.data == "[DONE]" or not ev.data:
                continue
            try:
                obj = orjson.loads(ev.data)
            except orjson.JSONDecodeError:
                raise UpstreamUnavailable(f"{self._pid}: unreadable stream event {ev.data[:200]!r}", provider=self._pid) from None
            if not isinstance(obj, dict):
                raise UpstreamUnavailable(f"{self._pid}: a stream event is not a JSON object", provider=self._pid)
            self._event(obj.get("type") or ev.event, obj, out)
        return out

    def _event(self, kind: str, obj: JSON, out: list[JSON]) -> None:
        delta = obj.get("delta") or {}
        msg = delta.get("message") or {}
        if kind == "message-start":
            self._maker = ChunkMaker(self._model, id=obj.get("id") or None)
            out.append(self._chunk({"role": "assistant", "content": ""}))
        elif kind in ("content-start", "content-delta"):
            c = msg.get("content") or {}
            if c.get("text"):
                out.append(self._chunk({"content": c["text"]}))
            elif c.get("thinking"):
                out.append(self._chunk({"reasoning_content": c["thinking"]}))
        elif kind == "tool-plan-delta":
            if msg.get("tool_plan"):
                out.append(self._chunk({"content": msg["tool_plan"]}))
        elif kind == "tool-call-start":
            tc = msg.get("tool_calls") or {}
            if isinstance(tc, list):  # documented as one object; tolerate a list of one
                tc = tc[0] if tc else {}
            idx = self._tools.setdefault(int(obj.get("index", len(self._tools))), len(self._tools))
            fn = tc.get("function") or {}
            out.append(self._chunk({"tool_calls": [{"index": idx, "id": tc.get("id") or f"call_{idx}", "type": "function",
                                                    "function": {"name": fn.get("name", ""), "arguments": fn.get("arguments") or ""}}]}))
        elif kind == "tool-call-delta":
            tc = msg.get("tool_calls") or {}
            if isinstance(tc, list):
                tc = tc[0] if tc else {}
            frag = (tc.get("function") or {}).get("arguments")
            if frag:
                idx = self._tools.get(int(obj.get("index", -1)), max(self._tools.values(), default=0))
                out.append(self._chunk({"tool_calls": [{"index": idx, "function": {"arguments": frag}}]}))
        elif kind == "message-end":
            usage = cohere_usage(delta.get("usage"))
            if usage is not None:
                self.usage = usage
            _raise_on_failure(self._pid, delta.get("finish_reason"), delta.get("error"))
            self._ended = True
            out.append(self._chunk({}, _finish(delta.get("finish_reason"), bool(self._tools))))
        # content-end, tool-call-end, citation-*, debug: nothing for an OpenAI client
