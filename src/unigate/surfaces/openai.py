"""The OpenAI-compatible surface: routes under /v1 and how errors look on it."""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from unigate.errors import GatewayError, MethodNotAllowed, ModelNotFound, NotFound
from unigate.pipeline import Gateway

log = logging.getLogger("unigate.http")

_RID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STARTED = int(time.time())

Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


class _Ids:
    """Request ids: a random per-process prefix and a counter (no syscall per request). Forked
    workers draw a new prefix."""

    prefix = "req_" + os.urandom(8).hex()
    counter = itertools.count(1)

    @classmethod
    def reseed(cls) -> None:
        cls.prefix, cls.counter = "req_" + os.urandom(8).hex(), itertools.count(1)


os.register_at_fork(after_in_child=_Ids.reseed)


def _new_id() -> str:
    return f"{_Ids.prefix}{next(_Ids.counter):08x}"


def request_id(request: web.Request) -> str:
    rid = request.headers.get("x-request-id")
    if rid and _RID_OK.match(rid):
        return rid
    return _new_id()


def error_response(e: GatewayError, rid: str) -> web.Response:
    return web.Response(
        body=e.json(), status=e.http_status, content_type="application/json", headers={"x-request-id": rid, **e.headers()}
    )


def internal_error(rid: str) -> web.Response:
    body = {"error": {"message": f"Internal error in the gateway (request {rid}); the operator's log has the details.",
                      "type": "server_error", "param": None, "code": "internal_error"}}
    return web.Response(body=orjson.dumps(body), status=500, content_type="application/json", headers={"x-request-id": rid})


def guarded(fn: Handler, render: Callable[[GatewayError, str], web.Response] = error_response) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wraps a handler: request id in, every failure out as the surface's error envelope, never a
    stack trace. (A wrapper, not middleware: it costs one call per request.)"""

    async def handler(request: web.Request) -> web.StreamResponse:
        rid = request_id(request)
        try:
            return await fn(request, rid)
        except GatewayError as e:
            return render(e, rid)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("unhandled error in request %s %s (%s)", request.method, request.path, rid)
            return internal_error(rid)

    return handler


class ExpectationFailed(GatewayError):
    status = 417
    type = "invalid_request_error"
    default_code = "expectation_failed"


def expect_handler(render: Callable[[GatewayError, str], web.Response] = error_response
                   ) -> Callable[[web.Request], Awaitable[web.StreamResponse | None]]:
    """A route's handler of the Expect header: `100-continue` is answered as HTTP/1.1 says; any
    other expectation gets the surface's envelope (aiohttp's own answer is text/plain)."""

    async def handle(request: web.Request) -> web.StreamResponse | None:
        expect = request.headers.get("Expect", "")
        if expect.lower() == "100-continue":
            if request.version >= (1, 1):
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return None
        return render(ExpectationFailed(f"Unsupported Expect header {expect[:40]!r}; "
                                        "only '100-continue' is understood."), request_id(request))

    return handle


def model_object(model_id: str, owned_by: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": _STARTED, "owned_by": owned_by, **(extra or {})}


class OpenAISurface:
    def __init__(self, gw: Gateway, list_models: Callable[[], list[dict[str, Any]]]) -> None:
        self.gw = gw
        self.list_models = list_models

    def routes(self) -> list[web.RouteDef]:
        gw = self.gw
        expect = expect_handler()
        return [
            web.post("/v1/chat/completions", guarded(gw.chat_completions), expect_handler=expect),
            web.post("/chat/completions", guarded(gw.chat_completions), expect_handler=expect),
            web.post("/v1/completions", guarded(gw.completions), expect_handler=expect),
            web.post("/v1/embeddings", guarded(gw.embeddings), expect_handler=expect),
            web.post("/embeddings", guarded(gw.embeddings), expect_handler=expect),
            web.get("/v1/models", guarded(self.models), expect_handler=expect),
            web.get("/models", guarded(self.models), expect_handler=expect),
            web.get("/v1/models/{model_id:.+}", guarded(self.model), expect_handler=expect),
        ]

    async def models(self, request: web.Request, rid: str) -> web.Response:
        await self.gw.auth.authenticate(request.headers)
        body = {"object": "list", "data": self.list_models()}
        return web.Response(body=orjson.dumps(body), content_type="application/json", headers={"x-request-id": rid})

    async def model(self, request: web.Request, rid: str) -> web.Response:
        await self.gw.auth.authenticate(request.headers)
        mid = request.match_info["model_id"]
        for m in self.list_models():
            if m["id"] == mid:
                return web.Response(body=orjson.dumps(m), content_type="application/json", headers={"x-request-id": rid})
        deps = self.gw.router.resolve(mid)  # a direct provider/model id that is routable but not listed
        obj = model_object(mid, deps[0].provider.id)
        return web.Response(body=orjson.dumps(obj), content_type="application/json", headers={"x-request-id": rid})


def fallback_handler(known_paths: set[str]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    served = ", ".join(sorted(p for p in known_paths if p.startswith("/v1/") and "{" not in p))

    async def not_found(request: web.Request, rid: str) -> web.StreamResponse:
        path = request.path
        if path in known_paths:
            raise MethodNotAllowed(f"{request.method} is not allowed on {path[:200]}.")
        # say what is true: a path under /v1 may be a real API endpoint this gateway lacks
        where = "" if path.startswith("/v1/") else " The API is under /v1."
        raise NotFound(f"Unknown path {path[:200]}: this gateway does not serve it.{where} It serves {served}.")

    return guarded(not_found)


__all__ = ["ModelNotFound", "OpenAISurface", "error_response", "fallback_handler", "guarded", "model_object"]
