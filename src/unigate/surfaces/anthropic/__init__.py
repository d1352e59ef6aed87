"""The Anthropic-compatible surface: `POST /v1/messages` (and `/v1/messages/count_tokens`) for
clients such as the official `anthropic` SDK or Claude Code pointed at the gateway with
ANTHROPIC_BASE_URL.

A Messages request is translated to the canonical OpenAI chat body (request.py) and runs
through the same pipeline as every other call (`Gateway.run`); the answer comes back through
`AnthropicEgress` (response.py for JSON, stream.py for SSE). Keys are read from `x-api-key` or
`Authorization: Bearer` (the Authenticator takes both); `anthropic-version` and
`anthropic-beta` are not needed, and go on to Anthropic upstreams (the native pass-through).
`count_tokens` answers for every model: exactly where the provider counts (Anthropic, Gemini, Bedrock), else an estimate
(count.py). Every failure is Anthropic's error envelope.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from unigate import catalog
from unigate.canonical.types import JSON
from unigate.egress import PLAIN_JSON
from unigate.endpoints import Endpoint
from unigate.errors import GatewayError, UpstreamCannotCount
from unigate.pipeline import Call, Gateway
from unigate.providers.anthropic.native import native_headers
from unigate.providers.base import AdapterBase, Deployment, NativeBody
from unigate.surfaces import validate
from unigate.surfaces.anthropic.count import TOKEN_COUNT_HEADER, estimate_tokens
from unigate.surfaces.anthropic.request import Target, dropped_in_translation, request_model, to_canonical
from unigate.surfaces.anthropic.response import render_error
from unigate.surfaces.anthropic.stream import AnthropicEgress
from unigate.surfaces.openai import Handler, expect_handler, guarded

log = logging.getLogger("unigate.http")

__all__ = ["AnthropicSurface", "render_error", "target_for"]

#: adapters that read the non-OpenAI `top_k` from the canonical body
_TOP_K_DIALECTS = frozenset({"anthropic", "gemini", "cohere"})

def target_for(deps: list[Deployment]) -> Target:
    """What the deployments behind a model can take beyond the OpenAI fields (request.py)."""
    dialects = {d.adapter.dialect for d in deps}
    reasoning = all(_may_reason(d) for d in deps)
    return Target(native=dialects == {"anthropic"}, top_k=bool(dialects) and dialects <= _TOP_K_DIALECTS,
                  reasoning=reasoning)


def _may_reason(dep: Deployment) -> bool:
    """False only when the catalog knows the model does not reason (unknown models may)."""
    info = catalog.lookup(dep.provider.preset.id, dep.model)
    return info is None or info.supports("reasoning") is not False


def _internal(fn: Handler) -> Handler:
    """An unexpected exception becomes a GatewayError, so that `guarded` renders it in this
    surface's envelope too (its own fallback speaks the OpenAI one)."""

    async def handler(request: web.Request, rid: str) -> web.StreamResponse:
        try:
            return await fn(request, rid)
        except (GatewayError, web.HTTPException):
            raise
        except Exception:
            log.exception("unhandled error in request %s %s (%s)", request.method, request.path, rid)
            raise GatewayError(f"Internal error in the gateway (request {rid}); "
                               "the operator's log has the details.") from None

    return handler


class AnthropicSurface:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        expect = expect_handler(render_error)
        return [
            web.post("/v1/messages", guarded(_internal(self.messages), render=render_error), expect_handler=expect),
            web.post("/v1/messages/count_tokens", guarded(_internal(self.count_tokens), render=render_error),
                     expect_handler=expect),
        ]

    async def messages(self, request: web.Request, rid: str) -> web.StreamResponse:
        gw = self.gw
        call = await gw.admit(request, rid, Endpoint.CHAT)
        model = request_model(call.body)
        # planned here: what the deployments can take decides the translation (404 for an unknown model)
        target = target_for(gw.plan(_with_model(call, model)))
        canonical = to_canonical(call.body, target)
        # the canonical body is checked like a client's, so every translator can trust it
        validate.validate_chat(canonical)
        # an Anthropic upstream gets the client's body itself; the others get the translation,
        # and the header names what it left out
        call.native = NativeBody("anthropic", call.body, native_headers(request.headers))
        call.dropped = tuple(dropped_in_translation(call.body, target))
        call.body, call.egress = canonical, AnthropicEgress(model, canonical.get("stop"), rid)
        return await gw.run(call)

    async def count_tokens(self, request: web.Request, rid: str) -> web.StreamResponse:
        """Every model has a count: the provider's own (exact, through the same call path) where
        the deployments include one that counts (Anthropic, Gemini and Bedrock upstreams), else an estimate made
        here (count.py), with no upstream call. `x-unigate-token-count` says which it is."""
        gw = self.gw
        call = await gw.admit(request, rid, Endpoint.COUNT_TOKENS)
        model = request_model(call.body)
        deps = gw.plan(_with_model(call, model))  # a model the key may not use is refused here
        # the same validation as /v1/messages (count_tokens has no max_tokens)
        canonical = to_canonical({**call.body, "max_tokens": 1, "stream": False}, target_for(deps))
        validate.validate_chat(canonical)
        exact = [d for d in deps if counts_natively(d)]
        if not exact:
            # no upstream call: nothing to route, charge or record in the ledger
            return _estimate(call.body, rid, deps)
        messages = call.body
        call.attempts = exact  # the deployments that count; the others would only be skipped
        # Anthropic counts the client's body as it came; Gemini and Bedrock count the translation
        call.native = NativeBody("anthropic", messages, native_headers(request.headers))
        call.body, call.egress = canonical, PLAIN_JSON
        try:
            resp = await gw.run(call)
        except UpstreamCannotCount:
            return _estimate(messages, rid, deps)  # a provider that counts, but not this model (Bedrock)
        resp.headers["request-id"] = rid
        resp.headers[TOKEN_COUNT_HEADER] = "exact"
        return resp


def _estimate(body: JSON, rid: str, deps: list[Deployment]) -> web.Response:
    headers = {"x-request-id": rid, "request-id": rid, TOKEN_COUNT_HEADER: "estimate"}
    if deps:
        headers["x-unigate-model"] = deps[0].public_id
    return web.Response(body=orjson.dumps({"input_tokens": estimate_tokens(body)}), content_type="application/json",
                        headers=headers)


def counts_natively(dep: Deployment) -> bool:
    """Whether the deployment's adapter has a provider-side token count."""
    cls: Any = type(dep.adapter)  # (mypy: the Protocol's method and the base's do not overlap)
    return cls.count_tokens_request is not AdapterBase.count_tokens_request


def _with_model(call: Call, model: str) -> Call:
    call.body["model"] = model
    return call
