"""The Google Gemini native dialect (Developer API: generateContent / streamGenerateContent).

URLs are `{base}/{api_version}/models/{model}:generateContent` and
`...:streamGenerateContent?alt=sse`, where `base` is the host root (GEMINI_BASE_URL means what
the google-genai SDK means by it) and the API version is configurable because SDKs moved
between `v1beta` and `v1`. Auth is the preset's `x-goog-api-key` header.

Provider options (config file `providers.<id>.options`):
    api_version   "v1beta" (default) or "v1"
    schema_mode   "openapi" (default): tool and response schemas rewritten onto Gemini's
                  OpenAPI subset (`parameters` / `responseSchema`, works on every model and
                  version); "json": sent as JSON Schema (`parametersJsonSchema` /
                  `responseJsonSchema`, lossless, newer models on v1beta).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import quote

import orjson
from yarl import URL

from unigate.canonical.types import JSON
from unigate.errors import UpstreamError
from unigate.providers.base import AdapterBase, Deployment, NativeBody, UpstreamRequest
from unigate.providers.gemini import embeddings, request
from unigate.providers.gemini.errors import error_from_object, error_from_response
from unigate.providers.gemini.response import to_completion
from unigate.providers.gemini.stream import GeminiStreamDecoder
from unigate.providers.options import GeminiOptions, options_as

__all__ = ["GeminiAdapter", "GeminiStreamDecoder"]

#: the parts of a generateContent body that countTokens counts (generationConfig and safety do not)
_COUNTED = ("contents", "systemInstruction", "tools", "toolConfig", "cachedContent")


class GeminiAdapter(AdapterBase):
    dialect: ClassVar[str] = "gemini"
    reads: ClassVar[frozenset[str] | None] = request.READS

    def chat_request(self, body: JSON, dep: Deployment, *, stream: bool) -> UpstreamRequest:
        native, dropped = request.build_body(body, dep.model, schema_mode=_options(dep).schema_mode)
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return UpstreamRequest("POST", self.url(dep, action), dep.provider.headers, orjson.dumps(native), dropped)

    def chat_response(self, data: bytes, dep: Deployment) -> JSON:
        obj = orjson.loads(data)
        if not isinstance(obj, dict):
            raise ValueError("generateContent answer is not a JSON object")
        if "error" in obj:
            raise error_from_object(obj["error"], dep.provider.id)
        return to_completion(obj, dep.model)

    def chat_stream(self, body: JSON, dep: Deployment) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(dep.model, dep.provider.id)

    def error(self, status: int, data: bytes, headers: Mapping[str, str], dep: Deployment) -> UpstreamError:
        return error_from_response(status, data, headers, dep.provider.id)

    def count_tokens_request(self, body: JSON, native: NativeBody, dep: Deployment) -> UpstreamRequest:
        """`models.countTokens` (free) on the translation of the request, as generateContent
        would get it: the prompt, system instruction and tools count; generation settings not."""
        built, _ = request.build_body(body, dep.model, schema_mode=_options(dep).schema_mode)
        inner: JSON = {"model": _model_name(dep.model)}
        inner.update((k, built[k]) for k in _COUNTED if k in built)
        return UpstreamRequest("POST", self.url(dep, "countTokens"), dep.provider.headers,
                               orjson.dumps({"generateContentRequest": inner}))

    def count_tokens_response(self, data: bytes, dep: Deployment) -> JSON:
        obj = orjson.loads(data)
        if not isinstance(obj, dict):
            raise ValueError("countTokens answer is not a JSON object")
        if "error" in obj:
            raise error_from_object(obj["error"], dep.provider.id)
        n = obj.get("totalTokens", 0)  # proto3 JSON leaves a zero out
        if type(n) is not int or n < 0:
            raise ValueError("totalTokens is not a count")
        return {"input_tokens": n}

    def embeddings_request(self, body: JSON, dep: Deployment) -> UpstreamRequest:
        native, dropped = embeddings.build_body(body, _model_name(dep.model))
        return UpstreamRequest("POST", self.url(dep, "batchEmbedContents"), dep.provider.headers,
                               orjson.dumps(native), dropped)

    def embeddings_response(self, data: bytes, dep: Deployment) -> JSON:
        return embeddings.to_list(data, dep.model)

    def url(self, dep: Deployment, action: str) -> URL:
        version = _options(dep).api_version.strip("/") or GeminiOptions().api_version
        # encoded=True: yarl would otherwise decode the model's %3A back into a method-starting ':'
        return URL(f"{dep.provider.base_url}/{quote(version, safe='')}/{_model_path(dep.model)}:{action}", encoded=True)


def _options(dep: Deployment) -> GeminiOptions:
    return options_as(dep.provider.options, GeminiOptions)


def _model_name(model: str) -> str:
    """`models/<id>`; tuned models (`tunedModels/...`) and full names pass through."""
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def _model_path(model: str) -> str:
    """The name as URL path segments, each percent-encoded (a `:` too, which would otherwise
    start another method), so no model name reaches another path (the router refuses `..`)."""
    return "/".join(quote(seg, safe="-._~@+=") for seg in _model_name(model).split("/"))
