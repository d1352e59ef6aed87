"""A fake OpenAI-compatible upstream speaking the real Chat Completions / Embeddings /
Completions wire format. Behaviour is chosen by the model name:

    anything          a normal answer "Hello from <model>!" (JSON or SSE)
    tools             a tool call get_weather({"city": "Paris"}), arguments streamed in fragments
    tool-loop         that tool call, unless the last message is a tool result: then
                      "The tool said: <its content>"
    error-<status>[-x] that HTTP status with an OpenAI error body (429 adds Retry-After: 7)
    slow-<ms>         waits that long before answering
    ragged            SSE with CRLF line endings, ':' comments, events split mid-line
    drop              stream that breaks off after two chunks
    trickle           stream whose chunks come 200 ms apart

`POST /v1/responses` is OpenAI's Responses API, as the `openai` preset's upstream has it (the
gateway relays that surface untouched): "Hello from <model>!" as a message item (or, for
`tools`, a get_weather function_call item), JSON or the event stream with sequence numbers;
`error-<status>` as above; `stream-error` sends an `error` event after the first deltas.
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


def stream_events(model: str, include_usage: bool, text: str | None = None, tools: bool = False) -> list[dict[str, Any]]:
    if model == "tools" or tools:
        evs = [chunk(model, {"role": "assistant", "content": None,
                             "tool_calls": [{"index": 0, "id": "call_abc123", "type": "function",
                                             "function": {"name": "get_weather", "arguments": ""}}]})]
        for frag in ['{"ci', 'ty": ', '"Par', 'is"}']:
            evs.append(chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": frag}}]}))
        evs.append(chunk(model, {}, "tool_calls"))
    else:
        evs = [chunk(model, {"role": "assistant", "content": ""})]
        for piece in ["Hello", " from ", model, "!"] if text is None else [text[:4], text[4:]]:
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
        app.router.add_post("/v1/responses", self.responses)

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
        text, tools = None, model == "tools"
        if model == "tool-loop":
            last = (body.get("messages") or [{}])[-1]
            tools = last.get("role") != "tool"
            text = None if tools else f"The tool said: {last.get('content')}"
        if not body.get("stream"):
            obj = tool_completion(model) if tools else completion(model, text or f"Hello from {model}!")
            return web.json_response(obj)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        events = stream_events(model, include_usage, text, tools)
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

    # ------------------------------------------------------------------ the Responses API

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        model = body.get("model")
        if not isinstance(model, str) or body.get("input") is None:
            return web.json_response({"error": {"message": "Missing required parameter: 'input'.",
                                                "type": "invalid_request_error", "param": "input",
                                                "code": "missing_required_parameter"}}, status=400)
        early = await self._prelude(model)
        if early is not None:
            return early
        final = response_object(model, body)
        if not body.get("stream"):
            return web.json_response(final)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i, ev in enumerate(response_events(final)):
            if model == "stream-error" and ev["type"] == "response.output_text.done":
                ev = {"type": "error", "code": "server_error", "message": "fake failure mid-stream", "param": None}
            ev["sequence_number"] = i
            await resp.write(f"event: {ev['type']}\ndata: ".encode() + orjson.dumps(ev) + b"\n\n")
            if ev["type"] == "error":
                break
        await resp.write_eof()
        return resp


RESPONSES_USAGE = {"input_tokens": 11, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                   "output_tokens": 6, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 17}


def response_object(model: str, body: dict[str, Any]) -> dict[str, Any]:
    if model == "tools":
        item: dict[str, Any] = {"id": "fc_fake1", "type": "function_call", "status": "completed",
                                "call_id": "call_fake1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    else:
        item = {"id": "msg_fake1", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": f"Hello from {model}!", "annotations": [], "logprobs": []}]}
    return {"id": "resp_fake1", "object": "response", "created_at": 1700000000, "status": "completed",
            "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "model": model, "output": [item],
            "parallel_tool_calls": True, "previous_response_id": body.get("previous_response_id"),
            "store": body.get("store", True), "temperature": 1.0, "text": {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []), "top_p": 1.0,
            "truncation": "disabled", "usage": RESPONSES_USAGE, "metadata": body.get("metadata") or {}}


def response_events(final: dict[str, Any]) -> list[dict[str, Any]]:
    """The event sequence of the real API for a one-item answer (no sequence numbers yet)."""
    start = {**final, "status": "in_progress", "output": [], "usage": None}
    item = final["output"][0]
    evs: list[dict[str, Any]] = [{"type": "response.created", "response": start},
                                 {"type": "response.in_progress", "response": start}]
    where = {"item_id": item["id"], "output_index": 0}
    if item["type"] == "message":
        text = item["content"][0]["text"]
        evs.append({"type": "response.output_item.added", "output_index": 0,
                    "item": {**item, "status": "in_progress", "content": []}})
        evs.append({"type": "response.content_part.added", **where, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []}})
        for piece in (text[:5], text[5:]):
            evs.append({"type": "response.output_text.delta", **where, "content_index": 0, "delta": piece,
                        "logprobs": []})
        evs.append({"type": "response.output_text.done", **where, "content_index": 0, "text": text, "logprobs": []})
        evs.append({"type": "response.content_part.done", **where, "content_index": 0, "part": item["content"][0]})
    else:
        evs.append({"type": "response.output_item.added", "output_index": 0,
                    "item": {**item, "status": "in_progress", "arguments": ""}})
        evs.append({"type": "response.function_call_arguments.delta", **where, "delta": item["arguments"]})
        evs.append({"type": "response.function_call_arguments.done", **where, "arguments": item["arguments"]})
    evs.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    evs.append({"type": "response.completed", "response": final})
    return evs
