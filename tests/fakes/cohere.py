"""A fake Cohere v2 upstream (`POST /v2/chat`) speaking the real wire format
(cohere-python `src/cohere/v2/types/*`; providers.md §4). It checks the Bearer key and the
native body shape — a body that still looks like OpenAI's is refused with 422, as Cohere's own
validation would, and the problem is kept in `problems` — and picks behaviour by model name:

    anything        "Hello from <model>!" (JSON, or an SSE stream written in odd-sized pieces)
    tools           tool_plan + get_weather({"city": "Paris"}), streamed in argument fragments
    tools2          two tool calls (get_weather Paris, get_time Paris)
    thinking        a thinking block, then text
    vision          "I see <n> image(s)" counting image_url parts in the last user message
    json            '{"city": "Paris"}'
    max / stopseq   finish_reason MAX_TOKENS / STOP_SEQUENCE
    gen-error       finish_reason ERROR (stream: message-end with delta.error)
    truncated       a stream that stops before message-end
    error-<status>  that HTTP status with Cohere's error body (429 adds Retry-After: 7)
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import FakeUpstream, write_in_pieces

USAGE = {"billed_units": {"input_tokens": 9, "output_tokens": 4}, "tokens": {"input_tokens": 61, "output_tokens": 4},
         "cached_tokens": 8}

_ROLES = {"system", "user", "assistant", "tool"}
_OPENAI_ONLY = {"top_p", "stop", "max_completion_tokens", "n", "stream_options", "logit_bias", "user",
                "parallel_tool_calls", "functions", "function_call", "reasoning_effort"}
_TOP_LEVEL = {"model", "messages", "tools", "strict_tools", "documents", "citation_options", "response_format",
              "safety_mode", "max_tokens", "stop_sequences", "temperature", "seed", "frequency_penalty",
              "presence_penalty", "k", "p", "logprobs", "tool_choice", "thinking", "priority", "stream"}


def body_problems(body: Any) -> list[str]:
    """What in this body the real Cohere v2 API would refuse."""
    if not isinstance(body, dict):
        return ["body is not an object"]
    out = [f"unknown field {k!r}" for k in body if k not in _TOP_LEVEL]
    out += [f"OpenAI-only field {k!r}" for k in body if k in _OPENAI_ONLY]
    if not isinstance(body.get("model"), str):
        out.append("model must be a string")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return [*out, "messages must be a non-empty list"]
    for i, m in enumerate(msgs):
        role = m.get("role")
        if role not in _ROLES:
            out.append(f"messages[{i}].role {role!r}")
        if role == "tool" and not isinstance(m.get("tool_call_id"), str):
            out.append(f"messages[{i}] tool message without tool_call_id")
        content = m.get("content")
        if isinstance(content, list):
            for p in content:
                if p.get("type") not in ("text", "image_url", "document"):
                    out.append(f"messages[{i}] has a {p.get('type')!r} part")
                if p.get("type") == "image_url" and not isinstance((p.get("image_url") or {}).get("url"), str):
                    out.append(f"messages[{i}] image_url without url")
        for tc in m.get("tool_calls") or ():
            fn = tc.get("function") or {}
            if tc.get("type") != "function" or not isinstance(fn.get("arguments"), str) or not tc.get("id"):
                out.append(f"messages[{i}] malformed tool call {tc!r}")
        if role == "assistant" and "content" in m and "tool_calls" in m:
            out.append(f"messages[{i}] assistant text with tool calls belongs in tool_plan")
    for t in body.get("tools") or ():
        fn = t.get("function") or {}
        if t.get("type") != "function" or not isinstance(fn.get("name"), str) or set(fn) - {"name", "description", "parameters"}:
            out.append(f"malformed tool {t!r}")
    if body.get("tool_choice") not in (None, "REQUIRED", "NONE"):
        out.append(f"tool_choice {body['tool_choice']!r}")
    rf = body.get("response_format")
    if rf is not None and rf.get("type") not in ("text", "json_object"):
        out.append(f"response_format {rf!r}")
    return out


def _answer(model: str, body: dict[str, Any]) -> dict[str, Any]:
    """The non-stream response for `model`."""
    msg: dict[str, Any] = {"role": "assistant"}
    finish = {"max": "MAX_TOKENS", "stopseq": "STOP_SEQUENCE", "gen-error": "ERROR"}.get(model, "COMPLETE")
    if model in ("tools", "tools2"):
        msg["tool_plan"] = "I will look up the weather in Paris."
        msg["tool_calls"] = [{"id": "get_weather_k88p0m8504w5", "type": "function",
                              "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
        if model == "tools2":
            msg["tool_calls"].append({"id": "get_time_q1w2e3r4t5y6", "type": "function",
                                      "function": {"name": "get_time", "arguments": '{"city": "Paris"}'}})
        finish = "TOOL_CALL"
    elif model == "thinking":
        msg["content"] = [{"type": "thinking", "thinking": "The user greets me."}, {"type": "text", "text": "Hello!"}]
    else:
        msg["content"] = [{"type": "text", "text": _text(model, body)}]
    return {"id": "c0ffee00-1111-2222-3333-444455556666", "finish_reason": finish, "message": msg, "usage": USAGE}


def _text(model: str, body: dict[str, Any]) -> str:
    if model == "vision":
        last = [m for m in body["messages"] if m["role"] == "user"][-1]
        n = sum(1 for p in last["content"] if isinstance(p, dict) and p.get("type") == "image_url") if isinstance(last["content"], list) else 0
        return f"I see {n} image(s)"
    if model == "json":
        return '{"city": "Paris"}'
    return f"Hello from {model}!"


def _event(kind: str, **payload: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **payload}) + b"\n\n"


def stream_bytes(model: str, body: dict[str, Any]) -> bytes:
    ans = _answer(model, body)
    evs = [_event("message-start", id=ans["id"], delta={"message": {"role": "assistant", "content": [], "tool_plan": "",
                                                                   "tool_calls": [], "citations": []}})]
    msg = ans["message"]
    if msg.get("tool_calls"):
        for piece in ["I will look up ", "the weather in Paris."]:
            evs.append(_event("tool-plan-delta", delta={"message": {"tool_plan": piece}}))
        for k, tc in enumerate(msg["tool_calls"]):
            # Cohere counts tool-call indexes on their own; arguments start empty, then fragments
            evs.append(_event("tool-call-start", index=k, delta={"message": {"tool_calls": {
                "id": tc["id"], "type": "function", "function": {"name": tc["function"]["name"], "arguments": ""}}}}))
            for frag in ['{"ci', 'ty": ', '"Par', 'is"}']:
                evs.append(_event("tool-call-delta", index=k, delta={"message": {"tool_calls": {"function": {"arguments": frag}}}}))
            evs.append(_event("tool-call-end", index=k))
    else:
        for k, part in enumerate(msg["content"]):
            key = "thinking" if part["type"] == "thinking" else "text"
            evs.append(_event("content-start", index=k, delta={"message": {"content": {"type": part["type"], key: ""}}}))
            text = part[key]
            for piece in [text[: len(text) // 2], text[len(text) // 2 :]]:
                evs.append(_event("content-delta", index=k, delta={"message": {"content": {key: piece}}}))
            evs.append(_event("content-end", index=k))
    if model == "truncated":
        return b"".join(evs)
    end: dict[str, Any] = {"finish_reason": ans["finish_reason"], "usage": USAGE}
    if model == "gen-error":
        end["error"] = "internal model failure"
    evs.append(_event("message-end", id=ans["id"], delta=end))
    return b"".join(evs)


class FakeCohere(FakeUpstream):
    def __init__(self, api_key: str = "co-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.problems: list[str] = []

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v2/chat", self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"id": "err-auth", "message": "invalid api token"}, status=401)
        body = orjson.loads(await request.read())
        problems = body_problems(body)
        if problems:
            self.problems.extend(problems)
            return web.json_response({"id": "err-422", "message": "; ".join(problems)}, status=422)
        model = body["model"]
        if model.startswith("error-"):
            status = int(model[6:])
            headers = {"Retry-After": "7"} if status == 429 else {}
            return web.json_response({"id": f"err-{status}", "message": f"fake cohere error {status}"}, status=status, headers=headers)
        if not body.get("stream"):
            return web.json_response(_answer(model, body))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        # odd-sized pieces split events (and lines) across TCP reads
        await write_in_pieces(resp, stream_bytes(model, body), [5, 17, 3, 40], delay=0.0005)
        await resp.write_eof()
        return resp
