"""The Anthropic-compatible surface: `POST /v1/messages` (and `/v1/messages/count_tokens`) for
clients such as the official `anthropic` SDK or Claude Code pointed at the gateway with
ANTHROPIC_BASE_URL.

A Messages request is translated to the canonical OpenAI chat body (request.py) and runs
through the same pipeline as every other call (`Gateway.run`); the answer comes back through
`AnthropicEgress` (response.py for JSON, stream.py for SSE). Keys are read from `x-api-key` or
`Authorization: Bearer` (the Authenticator takes both); `anthropic-version` and
`anthropic-beta` are accepted and not needed. Every failure is Anthropic's error envelope.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from unigate import catalog
from unigate.errors import GatewayError, InvalidRequest, UpstreamUnavailable
from unigate.pipeline import Gateway
from unigate.providers.anthropic.request import ANTHROPIC_VERSION
from unigate.providers.base import Deployment, UpstreamRequest
from unigate.providers.transport import BodyTooLong, read_limited, read_prefix
from unigate.surfaces import validate
from unigate.surfaces.anthropic.request import Target, request_model, to_canonical
from unigate.surfaces.anthropic.response import render_error
from unigate.surfaces.anthropic.stream import AnthropicEgress
from unigate.surfaces.openai import Endpoint, expect_handler, guarded

log = logging.getLogger("unigate.http")

__all__ = ["AnthropicSurface", "render_error", "target_for"]

#: adapters that read the non-OpenAI `top_k` from the canonical body
_TOP_K_DIALECTS = frozenset({"anthropic", "gemini", "cohere"})
#: fields of a Messages body that count_tokens also takes (it refuses the generation ones)
_COUNT_FIELDS = ("messages", "system", "tools", "tool_choice", "thinking", "cache_control", "output_config",
                 "mcp_servers", "context_management")


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


def _internal(fn: Endpoint) -> Endpoint:
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
        principal = gw.auth.authenticate(request.headers)
        body = await gw.read_json(request)
        model = request_model(body)
        canonical = to_canonical(body, target_for(gw.router.resolve(model)))  # resolve: 404 for an unknown model
        # the canonical body is checked like a client's, so every translator can trust it
        validate.validate_chat(canonical)
        egress = AnthropicEgress(model, canonical.get("stop"), rid)
        return await gw.run(request, rid, principal, canonical, endpoint="chat", egress=egress)

    async def count_tokens(self, request: web.Request, rid: str) -> web.StreamResponse:
        """Exact counts only: the request is forwarded to the first deployment that is an
        Anthropic upstream (its own count_tokens endpoint). Other upstreams have no counting
        API and the gateway does not estimate, so they get a clear 400."""
        gw = self.gw
        gw.auth.authenticate(request.headers)
        body = await gw.read_json(request)
        model = request_model(body)
        deps = gw.router.resolve(model)
        # the same validation as /v1/messages (count_tokens has no max_tokens)
        to_canonical({**body, "max_tokens": 1, "stream": False}, target_for(deps))
        dep = next((d for d in deps if d.adapter.dialect == "anthropic"), None)
        if dep is None:
            raise InvalidRequest(f"count_tokens is available only for models served by an Anthropic upstream; "
                                 f"{model!r} is not, and the gateway does not estimate token counts", param="model")
        native: dict[str, Any] = {k: body[k] for k in _COUNT_FIELDS if k in body}
        native["model"] = dep.model
        base = dep.provider.base_url.rstrip("/")
        # ANTHROPIC_BASE_URL is the host root, as in the Anthropic SDK (providers/anthropic does the same)
        url = f"{base}/messages/count_tokens" if base.endswith("/v1") else f"{base}/v1/messages/count_tokens"
        headers = {"anthropic-version": ANTHROPIC_VERSION, **dep.provider.headers}
        req = UpstreamRequest("POST", url, headers, orjson.dumps(native))
        limits = gw.cfg.server
        async with gw.transport.open(req, dep.timeouts, dep.provider.id) as up:
            if up.status >= 400:
                raise gw.upstream_error(dep, up, await read_prefix(up, limits.max_upstream_error_bytes))
            try:
                data = await read_limited(up, limits.max_upstream_error_bytes)  # a count is a few bytes
            except BodyTooLong:
                data = b""
        try:
            n = orjson.loads(data)["input_tokens"]
        except (ValueError, KeyError, TypeError):
            n = None
        if type(n) is not int:
            raise UpstreamUnavailable(f"{dep.provider.id}: unreadable count_tokens answer", provider=dep.provider.id)
        return web.Response(body=orjson.dumps({"input_tokens": n}), content_type="application/json",
                            headers={"x-request-id": rid, "request-id": rid, "x-unigate-deployment": dep.public_id})
