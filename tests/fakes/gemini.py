"""A fake Gemini Developer API speaking the real generateContent / streamGenerateContent?alt=sse /
batchEmbedContents wire format, strict the way the real one is: a wrong `x-goog-api-key` is
answered like Google does (HTTP 400 INVALID_ARGUMENT, reason API_KEY_INVALID), unknown fields
get "Invalid JSON payload received. Unknown name ...", roles must be user/model, a part holds
exactly one data member, tool schemas must stay on the OpenAPI subset, and function responses
must answer the function-call turn right before them.

Behaviour is chosen by the model name:

    anything          "Hello from <model>!" (stream: four text deltas); n>1 -> that many candidates
    tools             a get_weather({"city": "Paris"}) call with a thoughtSignature; in a stream the
                      call and the STOP finishReason come in different chunks (the real quirk)
    parallel          two calls in one turn (get_weather, get_time)
    thinking          a thought part then "42", with thoughtsTokenCount
    length            "Hello" cut off with MAX_TOKENS
    safety            finishReason SAFETY, no content
    blocked           promptFeedback.blockReason SAFETY and no candidates
    error-<status>    that HTTP status with a Google error body (429: RetryInfo "7s", no header)
    midstream-error   one text chunk, then a bare pretty-printed error object (503 UNAVAILABLE)
    midstream-data-error  one text chunk, then `data: {"error": ...}` (429 RESOURCE_EXHAUSTED)
    ragged            CRLF, ':' comment lines, events split in small pieces across TCP writes
    truncated         one text chunk and EOF without a finishReason

A request whose last turn holds function responses is answered "<name> said <response json>";
a request with responseMimeType application/json is answered with a JSON object.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import FakeUpstream, write_in_pieces

API_KEY = "gem-upstream-test"

_TOP = {"contents", "systemInstruction", "tools", "toolConfig", "safetySettings", "generationConfig", "cachedContent"}
_GEN = {"temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences", "presencePenalty",
        "frequencyPenalty", "seed", "responseMimeType", "responseSchema", "responseJsonSchema", "responseLogprobs",
        "logprobs", "thinkingConfig", "responseModalities"}
_DATA = {"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult"}
_PART_META = {"thought", "thoughtSignature", "videoMetadata", "mediaResolution"}
_SCHEMA = {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
           "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
           "propertyOrdering", "default", "items", "minimum", "maximum"}
_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def google_error(code: int, message: str, status: str | None = None, details: list[Any] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message, "status": status or _STATUS.get(code, "UNKNOWN")}
    if details:
        err["details"] = details
    return {"error": err}


def bad_key_error() -> dict[str, Any]:
    return google_error(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT", [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
    ])


def status_error(code: int) -> dict[str, Any]:
    if code == 429:
        return google_error(429, "You exceeded your current quota, please check your plan and billing details.",
                            details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}])
    if code == 404:
        return google_error(404, "models/nope is not found for API version v1beta, or is not supported for generateContent.")
    if code == 503:
        return google_error(503, "The model is overloaded. Please try again later.")
    return google_error(code, f"fake upstream error {code}")


def usage(prompt: int = 12, out: int = 5, thoughts: int = 0) -> dict[str, Any]:
    u = {"promptTokenCount": prompt, "candidatesTokenCount": out, "totalTokenCount": prompt + out + thoughts,
         "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}
    if thoughts:
        u["thoughtsTokenCount"] = thoughts
    return u


def response(candidates: list[dict[str, Any]] | None, model: str, meta: dict[str, Any] | None = None,
             **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if candidates is not None:
        obj["candidates"] = candidates
    if meta is not None:
        obj["usageMetadata"] = meta
    obj.update({"modelVersion": model, "responseId": "resp-fake-1"}, **extra)
    return obj


def cand(parts: list[dict[str, Any]] | None, finish: str | None = None, index: int = 0) -> dict[str, Any]:
    c: dict[str, Any] = {"index": index}
    if parts is not None:
        c["content"] = {"role": "model", "parts": parts}
    if finish:
        c["finishReason"] = finish
    return c


# ------------------------------------------------------------------ request validation


def _unknown(where: str, name: str) -> str:
    return f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field."


def _check_schema(s: Any, where: str, root: bool = False) -> str | None:
    if not isinstance(s, dict):
        return f"{where}: a schema must be an object"
    for k in s:
        if k not in _SCHEMA:
            return _unknown(where, k)
    t = s.get("type")
    if t is not None and (not isinstance(t, str) or t.upper() not in _TYPES):
        return f"Invalid value at '{where}.type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type)"
    t = t.upper() if isinstance(t, str) else None
    if ("properties" in s or "required" in s) and t != "OBJECT":
        return f"GenerateContentRequest.{where}.properties: only allowed for OBJECT type"
    if root and t == "OBJECT" and not s.get("properties"):
        return f"GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type"
    if "items" in s and t != "ARRAY":
        return f"GenerateContentRequest.{where}.items: only allowed for ARRAY type"
    if t == "ARRAY" and "items" not in s:
        return f"GenerateContentRequest.{where}.items: missing field."
    for name, sub in (s.get("properties") or {}).items():
        if err := _check_schema(sub, f"{where}.properties[{name}].value"):
            return err
    for r in s.get("required") or ():
        if r not in (s.get("properties") or {}):
            return f"GenerateContentRequest.{where}.required[{r}]: property is not defined"
    if "items" in s and (err := _check_schema(s["items"], f"{where}.items")):
        return err
    for i, sub in enumerate(s.get("anyOf") or ()):
        if err := _check_schema(sub, f"{where}.any_of[{i}]"):
            return err
    return None


def _check_parts(parts: Any, where: str) -> str | None:
    if not isinstance(parts, list) or not parts:
        return f"GenerateContentRequest.{where}.parts: contents.parts must not be empty."
    for j, p in enumerate(parts):
        w = f"{where}.parts[{j}]"
        if not isinstance(p, dict):
            return f"{w}: a part must be an object"
        for k in p:
            if k not in _DATA and k not in _PART_META:
                return _unknown(w, k)
        data = [k for k in p if k in _DATA]
        if len(data) != 1:
            return f"{w}: a part must hold exactly one data field, got {data}"
        if "inlineData" in p and set(p["inlineData"]) != {"mimeType", "data"}:
            return f"{w}.inline_data: needs mimeType and data"
        if "fileData" in p and "fileUri" not in p["fileData"]:
            return f"{w}.file_data: needs fileUri"
        if "functionCall" in p and not (isinstance(p["functionCall"].get("args"), dict) and p["functionCall"].get("name")):
            return f"{w}.function_call: needs name and an args object"
        if "functionResponse" in p and not (p["functionResponse"].get("name") and isinstance(p["functionResponse"].get("response"), dict)):
            return f"{w}.function_response: needs name and a response object"
    return None


def check_request(body: Any) -> str | None:
    """What the real API would refuse with a 400, or None."""
    if not isinstance(body, dict):
        return "Invalid JSON payload received."
    for k in body:
        if k not in _TOP:
            return _unknown("", k)
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    prev: dict[str, Any] | None = None
    for i, c in enumerate(contents):
        if c.get("role") not in ("user", "model"):
            return f"Please use a valid role: user, model. (contents[{i}].role={c.get('role')!r})"
        if err := _check_parts(c.get("parts"), f"contents[{i}]"):
            return err
        responses = [p for p in c["parts"] if "functionResponse" in p]
        if responses:
            calls = [p for p in (prev or {}).get("parts", []) if "functionCall" in p]
            if c["role"] != "user" or not calls:
                return ("Please ensure that function response turn comes immediately after a function call turn.")
            if len(responses) != len(calls):
                return ("Please ensure that the number of function response parts is equal to the number of "
                        "function call parts of the function call turn.")
        if prev is not None and prev["role"] == c["role"]:
            return "Please ensure that multiturn requests alternate between user and model."
        prev = c
    if "systemInstruction" in body and (err := _check_parts(body["systemInstruction"].get("parts"), "system_instruction")):
        return err
    for i, t in enumerate(body.get("tools") or ()):
        for j, d in enumerate(t.get("functionDeclarations") or ()):
            w = f"tools[{i}].function_declarations[{j}]"
            for k in d:
                if k not in ("name", "description", "parameters", "parametersJsonSchema", "response", "behavior"):
                    return _unknown(w, k)
            if "parameters" in d and (err := _check_schema(d["parameters"], f"{w}.parameters", root=True)):
                return err
    fcc = (body.get("toolConfig") or {}).get("functionCallingConfig")
    if fcc is not None:
        if fcc.get("mode") not in ("AUTO", "ANY", "NONE", "VALIDATED"):
            return "Invalid value at 'tool_config.function_calling_config.mode'"
        if fcc.get("allowedFunctionNames") and fcc["mode"] not in ("ANY", "VALIDATED"):
            return "allowed_function_names is only allowed with mode ANY"
    gen = body.get("generationConfig") or {}
    for k in gen:
        if k not in _GEN:
            return _unknown("generation_config", k)
    if "responseSchema" in gen and (err := _check_schema(gen["responseSchema"], "generation_config.response_schema")):
        return err
    return None


# ------------------------------------------------------------------ answers


def _last_responses(body: dict[str, Any]) -> list[dict[str, Any]]:
    last = body["contents"][-1]
    return [p["functionResponse"] for p in last["parts"] if "functionResponse" in p]


def _wants_json(body: dict[str, Any]) -> bool:
    return (body.get("generationConfig") or {}).get("responseMimeType") == "application/json"


def answer_text(model: str, body: dict[str, Any]) -> str:
    responses = _last_responses(body)
    if responses:
        return "; ".join(f"{r['name']} said {orjson.dumps(r['response']).decode()}" for r in responses)
    if _wants_json(body):
        return '{"city": "Paris", "temp_c": 21}'
    return f"Hello from {model}!"


WEATHER_CALL = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLWFiYw=="}
TIME_CALL = {"functionCall": {"name": "get_time", "args": {"city": "Paris", "utc": True}}}


def stream_events(model: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    if model in ("tools", "parallel") and not _last_responses(body):
        calls = [WEATHER_CALL] if model == "tools" else [WEATHER_CALL, TIME_CALL]
        return [response([cand(calls)], model, usage(12, 0)),
                # the finish reason comes alone, with an empty text part (envoyproxy/ai-gateway#2399)
                response([cand([{"text": ""}], "STOP")], model, usage(12, 9))]
    if model == "thinking":
        return [response([cand([{"text": "Let me think.", "thought": True}])], model, usage(12, 0, 10)),
                response([cand([{"text": "42"}], "STOP")], model, usage(12, 1, 10))]
    if model == "length":
        return [response([cand([{"text": "Hello"}], "MAX_TOKENS")], model, usage(12, 1))]
    if model == "safety":
        return [response([cand(None, "SAFETY")], model, usage(12, 0))]
    if model == "blocked":
        return [response(None, model, usage(12, 0), promptFeedback={"blockReason": "SAFETY"})]
    text = answer_text(model, body)
    n = int((body.get("generationConfig") or {}).get("candidateCount") or 1)
    pieces = ["Hello", " from ", model, "!"] if text == f"Hello from {model}!" else [text[: len(text) // 2], text[len(text) // 2 :]]
    evs = []
    for k, piece in enumerate(pieces):
        last = k == len(pieces) - 1
        cands = [cand([{"text": piece}], "STOP" if last else None, index=i) for i in range(n)]
        evs.append(response(cands, model, usage(12, (5 if last else k + 1) * n)))
    return evs


def full_response(model: str, body: dict[str, Any]) -> dict[str, Any]:
    """The non-streaming answer: the stream's events merged, as the real API does."""
    evs = stream_events(model, body)
    merged: dict[int, dict[str, Any]] = {}
    for ev in evs:
        for c in ev.get("candidates") or ():
            m = merged.setdefault(c["index"], {"index": c["index"], "content": {"role": "model", "parts": []}})
            for p in (c.get("content") or {}).get("parts", []):
                parts = m["content"]["parts"]
                if "text" in p and parts and "text" in parts[-1] and bool(parts[-1].get("thought")) == bool(p.get("thought")):
                    parts[-1] = {**parts[-1], "text": parts[-1]["text"] + p["text"]}
                elif p != {"text": ""}:
                    parts.append(dict(p))
            if c.get("finishReason"):
                m["finishReason"] = c["finishReason"]
    for m in merged.values():
        if not m["content"]["parts"]:
            del m["content"]
    last = evs[-1]
    out = response(list(merged.values()) if merged else None, model, last.get("usageMetadata"))
    if "promptFeedback" in last:
        out["promptFeedback"] = last["promptFeedback"]
    return out


def sse(obj: Any, eol: bytes = b"\r\n") -> bytes:
    return b"data: " + orjson.dumps(obj) + eol + eol


class FakeGemini(FakeUpstream):
    def setup(self, app: web.Application) -> None:
        app.router.add_post("/{version}/models/{target}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        version = request.match_info["version"]
        model, _, action = request.match_info["target"].rpartition(":")
        if version not in ("v1", "v1beta"):
            return web.json_response(google_error(404, f"API version {version} not found"), status=404)
        if request.headers.get("x-goog-api-key") != API_KEY:
            return web.json_response(bad_key_error(), status=400)
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.json_response(google_error(400, "Invalid JSON payload received."), status=400)
        if action == "batchEmbedContents":
            return self.embed(model, body)
        if action not in ("generateContent", "streamGenerateContent", "countTokens"):
            return web.json_response(google_error(404, f"unknown method {action}"), status=404)
        if model.startswith("error-"):
            code = int(model[6:])
            return web.json_response(status_error(code), status=code)
        if action == "countTokens":
            return self.count(model, body)
        if err := check_request(body):
            return web.json_response(google_error(400, err), status=400)
        if action == "generateContent":
            return web.json_response(full_response(model, body))
        if request.query.get("alt") != "sse":
            return web.json_response(google_error(400, "this fake only streams with alt=sse"), status=400)
        return await self.stream(request, model, body)

    def count(self, model: str, body: dict[str, Any]) -> web.Response:
        """models.countTokens: `contents` or a whole `generateContentRequest` (never both, and the
        latter names its model). The count is made up but exact to predict: a token per word of
        every text part, system instruction included, and 10 per function declaration."""
        inner = body.get("generateContentRequest")
        if ("contents" in body) == (inner is not None) or set(body) - {"contents", "generateContentRequest"}:
            return web.json_response(google_error(400, "send contents or generateContentRequest"), status=400)
        if inner is None:
            inner = {"contents": body["contents"]}
        elif inner.get("model") != f"models/{model}":
            return web.json_response(google_error(400, "generateContentRequest.model must name the model"), status=400)
        else:
            inner = {k: v for k, v in inner.items() if k != "model"}
        if "generationConfig" in inner:
            return web.json_response(google_error(400, "this fake counts prompts only"), status=400)
        if err := check_request(inner):
            return web.json_response(google_error(400, err), status=400)
        texts = [p.get("text", "") for c in [*inner.get("contents", []), inner.get("systemInstruction", {})]
                 for p in c.get("parts", [])]
        tools = sum(len(t.get("functionDeclarations", [])) for t in inner.get("tools", []))
        total = sum(len(t.split()) for t in texts) + 10 * tools
        return web.json_response({"totalTokens": total} if total else {})  # proto3 JSON leaves out a zero

    async def stream(self, request: web.Request, model: str, body: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if model in ("midstream-error", "midstream-data-error", "truncated"):
            await resp.write(sse(response([cand([{"text": "Partial"}])], model, usage(12, 1))))
            await asyncio.sleep(0.01)
            if model == "midstream-error":
                pretty = orjson.dumps(status_error(503), option=orjson.OPT_INDENT_2)
                await write_in_pieces(resp, pretty.replace(b"\n", b"\r\n") + b"\r\n", [17, 5])
            elif model == "midstream-data-error":
                await resp.write(sse(status_error(429)))
            await resp.write_eof()
            return resp
        events = stream_events(model, body)
        if model == "ragged":
            data = b": keep-alive\r\n\r\n" + b"".join(sse(ev) + b": ping\r\n\r\n" for ev in events)
            await write_in_pieces(resp, data, [7, 31, 3, 64, 1], delay=0.001)
        else:
            for ev in events:
                await resp.write(sse(ev))
        await resp.write_eof()
        return resp

    def embed(self, model: str, body: dict[str, Any]) -> web.Response:
        reqs = body.get("requests")
        if not isinstance(reqs, list) or not reqs:
            return web.json_response(google_error(400, "requests must not be empty"), status=400)
        for i, r in enumerate(reqs):
            if r.get("model") != f"models/{model}":
                return web.json_response(google_error(400, f"requests[{i}].model must be models/{model}"), status=400)
            if err := _check_parts((r.get("content") or {}).get("parts"), f"requests[{i}].content"):
                return web.json_response(google_error(400, err), status=400)
        dims = reqs[0].get("outputDimensionality") or 3
        return web.json_response({"embeddings": [{"values": [0.1 * (i + 1)] + [0.5] * (dims - 1)} for i in range(len(reqs))]})
