"""A fake OpenAI-compatible upstream speaking the real Chat Completions / Embeddings /
Completions wire format. Behaviour is chosen by the model name:

    anything          a normal answer "Hello from <model>!" (JSON or SSE)
    tools             a tool call get_weather({"city": "Paris"}), arguments streamed in fragments
    error-<status>[-x] that HTTP status with an OpenAI error body (429 adds Retry-After: 7)
    slow-<ms>         waits that long before answering
    ragged            SSE with CRLF line endings, ':' comments, events split mid-line
    drop              stream that breaks off after two chunks
    trickle           stream whose chunks come 200 ms apart
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import FakeUpstream, write_in_pieces

USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}


def completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": USAGE,
        "system_fingerprint": "fp_fake",
    }


def tool_completion(model: str) -> dict[str, Any]:
    c = completion(model, "")
    c["choices"][0]["message"] = {
        "role": "assistant", "content": None, "refusal": None,
        "tool_calls": [{"id": "call_abc123", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}],
    }
    c["choices"][0]["finish_reason"] = "tool_calls"
    return c


def chunk(model: str, delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    c: dict[str, Any] = {"id": "chatcmpl-fake1", "object": "chat.completion.chunk", "created": 1700000000,
                         "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if usage is not None:
        c["usage"] = usage
    return c


def stream_events(model: str, include_usage: bool) -> list[dict[str, Any]]:
    if model == "tools":
        evs = [chunk(model, {"role": "assistant", "content": None,
                             "tool_calls": [{"index": 0, "id": "call_abc123", "type": "function",
                                             "function": {"name": "get_weather", "arguments": ""}}]})]
        for frag in ['{"ci', 'ty": ', '"Par', 'is"}']:
            evs.append(chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": frag}}]}))
        evs.append(chunk(model, {}, "tool_calls"))
    else:
        evs = [chunk(model, {"role": "assistant", "content": ""})]
        for piece in ["Hello", " from ", model, "!"]:
            evs.append(chunk(model, {"content": piece}))
        evs.append(chunk(model, {}, "stop"))
    if include_usage:
        evs.append({"id": "chatcmpl-fake1", "object": "chat.completion.chunk", "created": 1700000000,
                    "model": model, "choices": [], "usage": USAGE})
    return evs


class FakeOpenAI(FakeUpstream):
    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)

    async def _prelude(self, model: str) -> web.Response | None:
        if model.startswith("slow-"):
            await asyncio.sleep(int(model[5:]) / 1000)
        if model.startswith("error-"):
            status = int(model[6:9])  # error-404-anything: a name the upstream does not know
            headers = {"Retry-After": "7"} if status == 429 else {}
            body = {"error": {"message": f"fake upstream error {status}", "type": "fake_error", "param": None, "code": f"fake_{status}"}}
            return web.json_response(body, status=status, headers=headers)
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        model = body["model"]
        early = await self._prelude(model)
        if early is not None:
            return early
        if not body.get("stream"):
            obj = tool_completion(model) if model == "tools" else completion(model, f"Hello from {model}!")
            return web.json_response(obj)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        events = stream_events(model, include_usage)
        if model == "drop":
            for ev in events[:2]:
                await resp.write(b"data: " + orjson.dumps(ev) + b"\n\n")
            await asyncio.sleep(0.05)
            request.transport.close()  # type: ignore[union-attr]
            return resp
        if model == "ragged":
            data = b": keep-alive\r\n\r\n" + b"".join(b"data: " + orjson.dumps(ev) + b"\r\n\r\n" for ev in events) + b"data: [DONE]\r\n\r\n"
            await write_in_pieces(resp, data, [7, 31, 3, 64], delay=0.001)
        else:
            for ev in events:
                await resp.write(b"data: " + orjson.dumps(ev) + b"\n\n")
                if model == "trickle":
                    await asyncio.sleep(0.2)
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        model = body["model"]
        early = await self._prelude(model)
        if early is not None:
            return early
        obj = {"id": "cmpl-fake1", "object": "text_completion", "created": 1700000000, "model": model,
               "choices": [{"text": " world", "index": 0, "logprobs": None, "finish_reason": "stop"}], "usage": USAGE}
        if not body.get("stream"):
            return web.json_response(obj)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for piece in [" wor", "ld"]:
            c = dict(obj, choices=[{"text": piece, "index": 0, "logprobs": None, "finish_reason": None}])
            c.pop("usage")
            await resp.write(b"data: " + orjson.dumps(c) + b"\n\n")
        if (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(b"data: " + orjson.dumps(dict(obj, choices=[])) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def embeddings(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        early = await self._prelude(body["model"])
        if early is not None:
            return early
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, 0.3]} for i in range(len(inputs))]
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": 4, "total_tokens": 4}})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "fake"}]})
