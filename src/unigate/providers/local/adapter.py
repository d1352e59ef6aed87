"""The `local` dialect: the embedded model as an adapter like the others. Requests are translated
here; the work runs in the model's worker thread (engine.py) and is reached through an
in-process exchange (exchange.py) instead of HTTP, so the event loop only waits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from unigate.canonical.types import JSON
from unigate.errors import UnsupportedFeature, UpstreamError, upstream_error_for_status
from unigate.providers.base import AdapterBase, Deployment, UpstreamRequest
from unigate.providers.local.engine import LocalEngine
from unigate.providers.local.exchange import LocalExchange
from unigate.providers.local.generate import chat_work, embed_work
from unigate.providers.local.models import LocalOptions
from unigate.providers.local.params import chat_params, embedding_inputs
from unigate.providers.openai_compat import OpenAIStreamDecoder
from unigate.providers.options import options_as


def engine_for(dep: Deployment) -> LocalEngine:
    return options_as(dep.provider.options, LocalOptions).engines[dep.model]


def _queue_opts(dep: Deployment) -> dict[str, Any]:
    o = options_as(dep.provider.options, LocalOptions)
    return {"max_queue": o.max_queue, "queue_timeout": o.queue_timeout}


class LocalAdapter(AdapterBase):
    """The embedded model speaks the OpenAI format through its own exchange (exchange.py), so it
    is a passthrough adapter: the request is translated here (a bad one is a 400 before it
    queues), and the answer is relayed and accounted like any OpenAI-compatible upstream's."""

    dialect: ClassVar[str] = "local"
    passthrough: ClassVar[bool] = True

    def chat_request(self, body: JSON, dep: Deployment, *, stream: bool) -> UpstreamRequest:
        engine = engine_for(dep)
        _check_chat_model(engine, dep)
        work = chat_work(chat_params(body, dep.public_id), dep.model, stream=stream)
        return _in_process(dep, LocalExchange(engine, work, _queue_opts(dep), stream))

    def chat_response(self, data: bytes, dep: Deployment) -> JSON:
        obj: JSON = orjson.loads(data)
        return obj

    def chat_stream(self, body: JSON, dep: Deployment) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(dep.provider.id)

    def error(self, status: int, data: bytes, headers: Mapping[str, str], dep: Deployment) -> UpstreamError:
        # never reached: the exchange raises the engine's own errors, it has no error statuses
        return upstream_error_for_status(status, f"local: HTTP {status}", provider="local")

    def embeddings_request(self, body: JSON, dep: Deployment) -> UpstreamRequest:
        engine = engine_for(dep)
        if not engine.spec.embedding:
            raise UnsupportedFeature(
                f"local: {dep.public_id} is a chat model; for /v1/embeddings declare a GGUF under local.models "
                "with `embedding: true`",
                param="model",
            )
        dims = body.get("dimensions")
        work = embed_work(embedding_inputs(body, dep.public_id), dep.model,
                          encoding_format=body.get("encoding_format"), dimensions=dims)
        return _in_process(dep, LocalExchange(engine, work, _queue_opts(dep), stream=False))


def _in_process(dep: Deployment, exchange: LocalExchange) -> UpstreamRequest:
    return UpstreamRequest("POST", f"local://{dep.model}", {}, None, exchange=exchange)


def _check_chat_model(engine: LocalEngine, dep: Deployment) -> None:
    if engine.spec.embedding:
        raise UnsupportedFeature(f"local: {dep.public_id} is an embedding model; use it with /v1/embeddings",
                                 param="model")
