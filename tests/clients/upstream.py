"""A scripted OpenAI Chat Completions upstream for the client matrix.

tests/fakes/openai.py answers by model name with fixed replies; a framework's tool loop needs an
upstream that reads the conversation instead. This one answers like a model that follows the
request, in the real wire format (JSON, or SSE with arguments in fragments and a usage chunk):

    the last message is a tool result   text: "<answer> (tool said: <that result>)"
    `response_format` json_schema       the configured object as the message's JSON content
    `tool_choice` names a function      a call of that function with the configured object
    `tools` (and `call_tools` is on)    a call of the first tool with `tool_args`
    anything else                       text: <answer>

`call_tools=False` makes it answer text even when tools are offered: coding agents send a dozen
tools with every turn, and their tests want one fixed answer, not a shell command run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import FakeUpstream

ANSWER = "The gateway answered: blue."
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


@dataclass
class Reply:
    text: str | None = None
    tool: str | None = None
    arguments: str = ""


@dataclass
class ScriptedOpenAI(FakeUpstream):
    answer: str = ANSWER
    call_tools: bool = True
    tool_args: dict[str, Any] = field(default_factory=lambda: {"city": "Paris"})
    structured: dict[str, Any] = field(default_factory=dict)

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)

    @property
    def chats(self) -> list[dict[str, Any]]:
        """The chat bodies received, in order."""
        return [r.json for r in self.requests if r.path == "/v1/chat/completions"]

    def reply_to(self, body: dict[str, Any]) -> Reply:
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            return Reply(text=f"{self.answer} (tool said: {_text(last.get('content'))})")
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            return Reply(text=orjson.dumps(self.structured).decode())
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "function":
            return Reply(tool=choice["function"]["name"], arguments=orjson.dumps(self.structured).decode())
        tools = body.get("tools") or []
        if tools and self.call_tools and choice != "none":
            return Reply(tool=tools[0]["function"]["name"], arguments=orjson.dumps(self.tool_args).decode())
        return Reply(text=self.answer)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        model = str(body.get("model"))
        reply = self.reply_to(body)
        if not body.get("stream"):
            return web.json_response(_completion(model, reply))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for ev in _chunks(model, reply, bool((body.get("stream_options") or {}).get("include_usage"))):
            await resp.write(b"data: " + orjson.dumps(ev) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": "scripted", "object": "model", "created": 0, "owned_by": "tests"}]})


def _text(content: Any) -> str:
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def _message(reply: Reply) -> dict[str, Any]:
    if reply.tool is None:
        return {"role": "assistant", "content": reply.text, "refusal": None}
    return {"role": "assistant", "content": None, "refusal": None,
            "tool_calls": [{"id": "call_scripted1", "type": "function",
                            "function": {"name": reply.tool, "arguments": reply.arguments}}]}


def _completion(model: str, reply: Reply) -> dict[str, Any]:
    return {"id": "chatcmpl-scripted", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": _message(reply), "logprobs": None,
                         "finish_reason": "stop" if reply.tool is None else "tool_calls"}],
            "usage": USAGE}


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}


def _chunks(model: str, reply: Reply, include_usage: bool) -> list[dict[str, Any]]:
    if reply.tool is None:
        text = reply.text or ""
        cut = max(1, len(text) // 2)
        evs = [_chunk(model, {"role": "assistant", "content": ""}),
               _chunk(model, {"content": text[:cut]}), _chunk(model, {"content": text[cut:]}),
               _chunk(model, {}, "stop")]
    else:
        args = reply.arguments
        evs = [_chunk(model, {"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_scripted1", "type": "function", "function": {"name": reply.tool, "arguments": ""}}]})]
        for i in range(0, len(args), 7):  # arguments in fragments, as real upstreams stream them
            evs.append(_chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 7]}}]}))
        evs.append(_chunk(model, {}, "tool_calls"))
    if include_usage:
        evs.append({"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1700000000,
                    "model": model, "choices": [], "usage": USAGE})
    return evs
