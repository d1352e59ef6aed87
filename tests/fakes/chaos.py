"""An OpenAI-format upstream whose behaviour per model name is set, and changed, while traffic
runs: for the routing tests (breakers, fallbacks, retries, latency-aware strategies).

    chaos.modes["a"] = "500"      every request for model "a" gets that fault until changed
    chaos.delay["a"] = 0.08       seconds before answering (latency strategies)
    chaos.fail_next["a"] = 2      the next two requests for "a" get a 503

Modes: ok, 429 (Retry-After 1), 500, 503, hang (never answers), reset (closes the connection),
badjson (200 with `{not json`), cut-before (a stream that ends before its first event),
cut-after (a stream that ends after its first event, without [DONE]).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from tests.fakes.openai import chunk, completion
from tests.fakes.server import FakeUpstream

MODES = ("ok", "429", "500", "503", "hang", "reset", "badjson", "cut-before", "cut-after")


@dataclass
class ChaosUpstream(FakeUpstream):
    modes: dict[str, str] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    #: the next n requests for a model answer 503, then its mode applies again
    fail_next: Counter[str] = field(default_factory=Counter)
    #: requests per model, and per (model, mode they met)
    served: Counter[str] = field(default_factory=Counter)
    met: Counter[tuple[str, str]] = field(default_factory=Counter)

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        model = body["model"]
        mode = self.modes.get(model, "ok")
        if self.fail_next[model] > 0:
            self.fail_next[model] -= 1
            mode = "503"
        self.served[model] += 1
        self.met[(model, mode)] += 1
        if self.delay.get(model):
            await asyncio.sleep(self.delay[model])
        if mode in ("429", "500", "503"):
            headers = {"Retry-After": "1"} if mode == "429" else {}
            return web.json_response({"error": {"message": f"chaos {mode}", "type": "x", "param": None, "code": None}},
                                     status=int(mode), headers=headers)
        if mode == "hang":
            await asyncio.sleep(3600)
        if mode == "reset":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if mode == "badjson":
            return web.Response(body=b"{not json", content_type="application/json")
        if not body.get("stream"):
            return web.json_response(completion(model, f"Hello from {model}!"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if mode == "cut-before":
            assert request.transport is not None
            request.transport.close()
            return resp
        await resp.write(b"data: " + orjson.dumps(chunk(model, {"role": "assistant", "content": "Hello"})) + b"\n\n")
        if mode == "cut-after":
            assert request.transport is not None
            request.transport.close()
            return resp
        await resp.write(b"data: " + orjson.dumps(chunk(model, {"content": f" from {model}!"}, "stop")) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
