"""The admin surface: `GET /admin/deployments`, each deployment's health as the router sees it
(breaker state, error rate and requests in its window, requests in flight, latency figures).
Master key only (a virtual key, once they exist, is refused here)."""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
from aiohttp import web

from unigate.errors import GatewayError
from unigate.pipeline import Gateway
from unigate.providers.base import Deployment
from unigate.surfaces.openai import guarded


class Forbidden(GatewayError):
    status = 403
    type = "permission_error"
    default_code = "admin_only"


class AdminSurface:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/admin/deployments", guarded(self.deployments))]

    async def _admin(self, request: web.Request) -> None:
        principal = await self.gw.auth.authenticate(request.headers)
        if not principal.is_master:
            raise Forbidden("The admin API takes the master key only.")

    async def deployments(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        router = self.gw.router
        out = [describe(router, d) for d in router.known_deployments()]
        return web.Response(body=orjson.dumps({"object": "list", "data": out}), content_type="application/json",
                            headers={"x-request-id": rid})


def describe(router: Any, d: Deployment) -> dict[str, Any]:
    st = router.breakers.state(d.id)
    fig = router.live.figures(d.id)
    now = time.monotonic()

    def ms(v: float) -> float | None:
        return None if not v or math.isnan(v) else round(v * 1000, 2)

    return {"id": d.id, "model": d.public_id, "provider": d.provider.id, "state": st.state.value,
            "error_rate": round(st.error_rate, 4), "requests_in_window": st.requests, "failures_in_window": st.failures,
            "reopens_in_s": None if st.reopens_at is None else round(max(st.reopens_at - now, 0.0), 3),
            "in_flight": fig.in_flight, "ttft_ms": ms(fig.ttft.value), "ms_per_output_token": ms(fig.per_token.value)}
