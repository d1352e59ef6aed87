"""A fake Anthropic Messages upstream speaking the real wire format (`POST /v1/messages`, JSON
or SSE, and `POST /v1/messages/count_tokens`; /work/shared/reference/providers.md §2). Like
the real API it refuses requests that break its rules (missing anthropic-version or
max_tokens, a system role in messages, empty text blocks, bad tool ids, orphan tool results,
temperature > 1, thinking sent back without its signature) with a 400
invalid_request_error, and records each problem in `violations` so tests can assert none.

Behaviour is chosen by the model name:

    anything          "Hello from <model>!", stop_reason end_turn
    tools             "Let me check." + tool_use get_weather({"city": "Paris"}); arguments streamed
                      in fragments
    json              calls the tool named by tool_choice with {"answer": 42, "unit": "C"}
    thinking          a thinking block, then text
    cache             usage with cache read/creation tokens
    stop-<reason>     text "Hi" with that stop_reason
    error-<status>    that HTTP status with an Anthropic error body (429 adds Retry-After: 7)
    midstream-error   a stream that sends some text, then `event: error` overloaded_error
    truncated         a stream that ends without message_stop
    ragged            SSE with CRLF line endings and ':' comments (every stream is split into
                      small TCP writes)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import FakeUpstream, write_in_pieces

TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               529: "overloaded_error"}
ARG_FRAGMENTS = ["", '{"ci', 'ty": ', '"Par', 'is"}']


def error_body(etype: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": etype, "message": message}, "request_id": "req_fake"}


def check_request(headers: dict[str, str], body: Any, api_key: str) -> list[str]:
    """What the real API would refuse in this request."""
    problems: list[str] = []
    if headers.get("x-api-key") != api_key:
        problems.append("x-api-key missing or wrong")
    if not headers.get("anthropic-version"):
        problems.append("anthropic-version header missing")
    if not headers.get("content-type", "").startswith("application/json"):
        problems.append("content-type is not application/json")
    if not isinstance(body, dict):
        return [*problems, "body is not an object"]
    if not isinstance(body.get("model"), str):
        problems.append("model: field required")
    if type(body.get("max_tokens")) is not int:
        problems.append("max_tokens: field required")
    t = body.get("temperature")
    if t is not None and not 0 <= t <= 1:
        problems.append("temperature: must be between 0 and 1")
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        problems.append("system: must be a string or a list of text blocks")
    for i, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool.get("name"), str) or (tool.get("input_schema") or {}).get("type") != "object":
            problems.append(f"tools.{i}: name and an object input_schema are required")
    tc = body.get("tool_choice")
    if tc is not None and tc.get("type") not in ("auto", "any", "tool", "none"):
        problems.append("tool_choice.type: invalid")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return [*problems, "messages: at least one message is required"]
    prev_tool_ids: set[str] = set()
    for i, m in enumerate(msgs):
        role = m.get("role")
        if role not in ("user", "assistant"):
            problems.append(f"messages.{i}.role: unexpected role {role!r}")
        content = m.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            problems.append(f"messages.{i}.content: must be non-empty")
            continue
        seen_other = False
        ids: set[str] = set()
        for j, b in enumerate(blocks):
            bt = b.get("type")
            if bt == "text" and not b.get("text"):
                problems.append(f"messages.{i}.content.{j}: text content blocks must be non-empty")
            if bt == "tool_use":
                if role != "assistant" or not TOOL_ID.match(str(b.get("id"))) or not isinstance(b.get("input"), dict):
                    problems.append(f"messages.{i}.content.{j}.tool_use: bad id or input")
                ids.add(str(b.get("id")))
            if bt == "tool_result":
                tid = str(b.get("tool_use_id"))
                if not TOOL_ID.match(tid) or tid not in prev_tool_ids:
                    problems.append(f"messages.{i}.content.{j}: unexpected tool_use_id {tid!r}")
                if seen_other:
                    problems.append(f"messages.{i}.content.{j}: tool_result blocks must come first")
            elif bt != "tool_result":
                seen_other = True
            if bt == "image" and (b.get("source") or {}).get("type") not in ("url", "base64"):
                problems.append(f"messages.{i}.content.{j}: bad image source")
            if bt == "thinking" and (role != "assistant" or not isinstance(b.get("signature"), str)
                                     or not b.get("signature")):
                # the API verifies the signature of thinking sent back: a lost one is a 400
                problems.append(f"messages.{i}.content.{j}.thinking.signature: Field required")
            if bt == "redacted_thinking" and (role != "assistant" or not isinstance(b.get("data"), str)):
                problems.append(f"messages.{i}.content.{j}.redacted_thinking.data: Field required")
        prev_tool_ids = ids if role == "assistant" else set()
    return problems


def _sse(event: str, data: dict[str, Any], eol: bytes = b"\n") -> bytes:
    return b"event: " + event.encode() + eol + b"data: " + orjson.dumps(data) + eol + eol


@dataclass
class FakeAnthropic(FakeUpstream):
    api_key: str = "sk-ant-test"
    violations: list[str] = field(default_factory=list)

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)

    async def count_tokens(self, request: web.Request) -> web.Response:
        """`{"input_tokens": N}`: N is the body's messages, system and tools in bytes / 3 (a
        number the gateway's own estimate, bytes / 4, never equals), or 400 like the real API
        for generation fields."""
        body = orjson.loads(await request.read())
        if request.headers.get("x-api-key") != self.api_key or not request.headers.get("anthropic-version"):
            return web.json_response(error_body("authentication_error", "bad key or no anthropic-version"),
                                     status=401)
        extra = [k for k in ("max_tokens", "stream", "temperature", "stop_sequences") if k in body]
        if extra:
            self.violations.append(f"count_tokens: extra inputs are not permitted: {extra}")
            return web.json_response(error_body("invalid_request_error", "extra inputs"), status=400)
        counted = {k: body[k] for k in ("system", "messages", "tools") if k in body}
        return web.json_response({"input_tokens": len(orjson.dumps(counted)) // 3})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        problems = check_request({k.lower(): v for k, v in request.headers.items()}, body, self.api_key)
        if problems:
            self.violations.extend(problems)
            status, etype = (401, "authentication_error") if "x-api-key" in problems[0] else (400, "invalid_request_error")
            return web.json_response(error_body(etype, "; ".join(problems)), status=status)
        model: str = body["model"]
        if model.startswith("error-"):
            status = int(model[6:])
            headers = {"retry-after": "7"} if status == 429 else {}
            return web.json_response(error_body(ERROR_TYPES.get(status, "api_error"), f"fake upstream error {status}"),
                                     status=status, headers=headers)
        message = self.answer(body)
        if not body.get("stream"):
            return web.json_response(message, headers={"request-id": "req_fake"})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "request-id": "req_fake"})
        await resp.prepare(request)
        eol = b"\r\n" if model == "ragged" else b"\n"
        data = b"".join(_sse(name, ev, eol) for name, ev in self.events(message))
        if model == "ragged":
            data = b": keep-alive" + eol + eol + data.replace(b"event: content_block_stop", b": tick" + eol + b"event: content_block_stop")
        # small writes with pauses, so events and even lines are split across TCP reads
        await write_in_pieces(resp, data, [7, 31, 3, 64, 2], delay=0.001)
        await resp.write_eof()
        return resp

    # ------------------------------------------------------------------ answers

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        model: str = body["model"]
        content: list[dict[str, Any]]
        stop = "end_turn"
        usage: dict[str, Any] = {"input_tokens": 12, "output_tokens": 5,
                                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        if model == "tools":
            content = [{"type": "text", "text": "Let me check."},
                       {"type": "tool_use", "id": "toolu_01Fake", "name": "get_weather", "input": {"city": "Paris"}}]
            stop = "tool_use"
        elif model == "json":
            tc = body.get("tool_choice") or {}
            name = tc.get("name") if tc.get("type") == "tool" else body["tools"][-1]["name"]
            content = [{"type": "tool_use", "id": "toolu_01Json", "name": name, "input": {"answer": 42, "unit": "C"}}]
            stop = "tool_use"
        elif model == "thinking":
            content = [{"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
                       {"type": "text", "text": "42"}]
            usage["output_tokens_details"] = {"thinking_tokens": 3}
        elif model.startswith("stop-"):
            content = [{"type": "text", "text": "Hi"}]
            stop = model[5:]
        else:
            content = [{"type": "text", "text": f"Hello from {model}!"}]
        if model == "cache":
            usage.update(input_tokens=10, cache_creation_input_tokens=100, cache_read_input_tokens=200, output_tokens=7)
        return {"id": "msg_01Fake", "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": stop, "stop_sequence": None, "usage": usage}

    def events(self, message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        model = message["model"]
        start_usage = {**message["usage"], "output_tokens": 1}
        evs: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": {
            **message, "content": [], "stop_reason": None, "usage": start_usage}})]
        evs.append(("ping", {"type": "ping"}))
        for i, blk in enumerate(message["content"]):
            t = blk["type"]
            empty = {"type": "text", "text": ""} if t == "text" else {"type": "thinking", "thinking": ""} \
                if t == "thinking" else {**blk, "input": {}}
            evs.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": empty}))
            if t == "text":
                text = blk["text"]
                pieces = [text[:5], text[5:]] if len(text) > 5 else [text]
                deltas = [{"type": "text_delta", "text": p} for p in pieces]
            elif t == "thinking":
                deltas = [{"type": "thinking_delta", "thinking": blk["thinking"]},
                          {"type": "signature_delta", "signature": blk["signature"]}]
            else:
                js = orjson.dumps(blk["input"]).decode()
                # the weather call streams in the fragments tests expect; others in two pieces
                frags = ARG_FRAGMENTS if blk["input"] == {"city": "Paris"} else ["", js[:6], js[6:]]
                deltas = [{"type": "input_json_delta", "partial_json": f} for f in frags]
            for d in deltas:
                evs.append(("content_block_delta", {"type": "content_block_delta", "index": i, "delta": d}))
            if model == "midstream-error":
                evs.append(("error", error_body("overloaded_error", "Overloaded")))
                return evs
            evs.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
        evs.append(("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                      "usage": {"output_tokens": message["usage"]["output_tokens"]}}))
        if model != "truncated":
            evs.append(("message_stop", {"type": "message_stop"}))
        return evs
