"""A fake Azure OpenAI resource speaking the real wire format (providers.md §7 row 1; openai-python
`lib/azure.py`). It enforces what Azure enforces — the `api-key` header (401 otherwise) and, on
the classic deployment paths, an `api-version` query (404 "Resource not found" otherwise) — and
adds Azure's content-filter annotations. Behaviour is chosen by the deployment name:

    anything          "Hello from <deployment>!"; streams open with Azure's prompt-filter chunk
                      (`choices: []`, empty id/model, only `prompt_filter_results`)
    filtered-prompt   HTTP 400 with error.code "content_filter" (the prompt was blocked)
    filtered-output   finish_reason "content_filter" after a partial answer
    error-<status>    that status with Azure's error body (429 adds Retry-After and retry-after-ms)

Classic paths: /openai/deployments/{deployment}/{chat/completions,completions,embeddings};
v1 paths: /openai/v1/{chat/completions,embeddings} with the deployment as the body's `model`.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.fakes.openai import USAGE, chunk, completion
from tests.fakes.server import FakeUpstream, write_in_pieces

MODEL = "gpt-4o-mini-2024-07-18"  # Azure answers with the model behind the deployment
SAFE = {"hate": {"filtered": False, "severity": "safe"}, "self_harm": {"filtered": False, "severity": "safe"},
        "sexual": {"filtered": False, "severity": "safe"}, "violence": {"filtered": False, "severity": "safe"}}
PROMPT_FILTER = [{"prompt_index": 0, "content_filter_results": SAFE}]
#: the first event of every Azure chat stream, byte for byte
PROMPT_FILTER_CHUNK = orjson.dumps({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                                    "prompt_filter_results": PROMPT_FILTER})


def _error(http_status: int, code: str, message: str, **extra: Any) -> web.Response:
    headers = {"Retry-After": "7", "retry-after-ms": "7000"} if http_status == 429 else {}
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=http_status, headers=headers)


class FakeAzure(FakeUpstream):
    def __init__(self, api_key: str = "az-test-key") -> None:
        super().__init__()
        self.api_key = api_key

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.chat)
        app.router.add_post("/openai/deployments/{deployment}/completions", self.completions)
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self.embeddings)
        app.router.add_post("/openai/v1/chat/completions", self.chat)
        app.router.add_post("/openai/v1/embeddings", self.embeddings)

    async def _prelude(self, request: web.Request) -> tuple[dict[str, Any], str, web.Response | None]:
        body = orjson.loads(await request.read())
        if request.headers.get("api-key") != self.api_key:
            return body, "", _error(401, "401", "Access denied due to invalid subscription key or wrong API endpoint.")
        deployment = request.match_info.get("deployment")
        if deployment is None:  # v1 API: the body names the deployment, no api-version needed
            deployment = body.get("model", "")
        elif not request.query.get("api-version"):
            return body, deployment, _error(404, "404", "Resource not found")
        if deployment.startswith("error-"):
            status = int(deployment[6:])
            return body, deployment, _error(status, str(status), f"fake azure error {status}")
        if deployment == "filtered-prompt":
            return body, deployment, _error(
                400, "content_filter",
                "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
                param="prompt", status=400,
                innererror={"code": "ResponsibleAIPolicyViolation",
                            "content_filter_result": {**SAFE, "violence": {"filtered": True, "severity": "high"}}})
        return body, deployment, None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, deployment, early = await self._prelude(request)
        if early is not None:
            return early
        filtered = deployment == "filtered-output"
        text = "Here is how to" if filtered else f"Hello from {deployment}!"
        if not body.get("stream"):
            obj = completion(MODEL, text)
            obj["prompt_filter_results"] = PROMPT_FILTER
            choice = obj["choices"][0]
            choice["content_filter_results"] = SAFE
            if filtered:
                choice["finish_reason"] = "content_filter"
                choice["content_filter_results"] = {**SAFE, "violence": {"filtered": True, "severity": "medium"}}
            return web.json_response(obj)
        events = [PROMPT_FILTER_CHUNK]
        first = chunk(MODEL, {"role": "assistant", "content": ""})
        first["choices"][0]["content_filter_results"] = {}
        events.append(orjson.dumps(first))
        for piece in (text[:5], text[5:]):
            c = chunk(MODEL, {"content": piece})
            c["choices"][0]["content_filter_results"] = SAFE
            events.append(orjson.dumps(c))
        events.append(orjson.dumps(chunk(MODEL, {}, "content_filter" if filtered else "stop")))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(orjson.dumps({"id": "chatcmpl-fake1", "object": "chat.completion.chunk", "created": 1700000000,
                                        "model": MODEL, "choices": [], "usage": USAGE}))
        data = b"".join(b"data: " + e + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await write_in_pieces(resp, data, [9, 50, 4, 120], delay=0.0005)
        await resp.write_eof()
        return resp

    async def completions(self, request: web.Request) -> web.StreamResponse:
        _body, _deployment, early = await self._prelude(request)
        if early is not None:
            return early
        return web.json_response({"id": "cmpl-fake1", "object": "text_completion", "created": 1700000000, "model": MODEL,
                                  "choices": [{"text": " world", "index": 0, "logprobs": None, "finish_reason": "stop",
                                               "content_filter_results": SAFE}],
                                  "prompt_filter_results": PROMPT_FILTER, "usage": USAGE})

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        body, _deployment, early = await self._prelude(request)
        if early is not None:
            return early
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": [0.5, 0.25 * i, 0.125]} for i in range(len(inputs))]
        return web.json_response({"object": "list", "data": data, "model": "text-embedding-3-small",
                                  "usage": {"prompt_tokens": 3, "total_tokens": 3}})
