"""The admin surface, master key only (a virtual key is refused here):

    GET  /admin/deployments            each deployment's health as the router sees it
    POST /admin/keys                   a virtual key: {name, team, models, expires_at, metadata};
                                       the answer carries `id` and, this once, the secret as `key`
    GET  /admin/keys, /admin/keys/{id} keys (never a secret or its hash)
    PATCH /admin/keys/{id}             change fields
    POST /admin/keys/{id}/revoke       stops working everywhere within a second
    POST /admin/keys/{id}/rotate       a new secret; {"grace_seconds": n} keeps the old one that long

Limits, budgets and credits on keys (rpm, tpm, max_parallel, budget_usd, uses_credits) are
refused for now: this build does not enforce them yet, and a limit that is stored but does not
hold is worse than none."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from unigate.errors import GatewayError, InvalidRequest, NotFound, ServiceUnavailable
from unigate.pipeline import Gateway
from unigate.providers.base import Deployment
from unigate.state.errors import Invalid
from unigate.state.errors import NotFound as StateNotFound
from unigate.state.records import Key
from unigate.surfaces import validate
from unigate.surfaces.openai import guarded


class Forbidden(GatewayError):
    status = 403
    type = "permission_error"
    default_code = "admin_only"


class AdminSurface:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/admin/deployments", guarded(self.deployments)),
                web.post("/admin/keys", guarded(self.create_key)),
                web.get("/admin/keys", guarded(self.list_keys)),
                web.get("/admin/keys/{key_id}", guarded(self.get_key)),
                web.patch("/admin/keys/{key_id}", guarded(self.update_key)),
                web.post("/admin/keys/{key_id}/revoke", guarded(self.revoke_key)),
                web.post("/admin/keys/{key_id}/rotate", guarded(self.rotate_key))]

    async def _admin(self, request: web.Request) -> None:
        principal = await self.gw.auth.authenticate(request.headers)
        if not principal.is_master:
            raise Forbidden("The admin API takes the master key only.")

    def _keys(self) -> Any:
        if self.gw.state is None:
            raise ServiceUnavailable("Virtual keys need a master key (UNIGATE_MASTER_KEY): without one the "
                                     "gateway serves loopback without auth, and keeps no keys.")
        return self.gw.state.keys

    async def _fields(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        body = validate.parse_json_object(raw, 32) if raw.strip() else {}
        unenforced = sorted(set(body) & _UNENFORCED)
        if unenforced:
            raise InvalidRequest(f"{', '.join(unenforced)}: limits, budgets and credits on keys are not enforced by "
                                 "this version yet, so they are not stored either.", param=unenforced[0])
        return body

    async def create_key(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        store, fields = self._keys(), await self._fields(request)
        with _state_errors():
            key, secret = await store.create_key(fields, actor="master")
        return _json({**public(key), "key": secret}, rid, status=201)

    async def list_keys(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        keys = await self._keys().list_keys(team=request.query.get("team"))
        return _json({"object": "list", "data": [public(k) for k in keys]}, rid)

    async def get_key(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        key = await self._keys().get_key(request.match_info["key_id"])
        if key is None:
            raise NotFound(f"No key {request.match_info['key_id'][:100]!r}.", code="key_not_found")
        return _json(public(key), rid)

    async def update_key(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        store, fields = self._keys(), await self._fields(request)
        with _state_errors():
            key = await store.update_key(request.match_info["key_id"], fields, actor="master")
        return _json(public(key), rid)

    async def revoke_key(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        with _state_errors():
            key = await self._keys().revoke_key(request.match_info["key_id"], actor="master")
        return _json(public(key), rid)

    async def rotate_key(self, request: web.Request, rid: str) -> web.Response:
        await self._admin(request)
        raw = await request.read()
        body = validate.parse_json_object(raw, 8) if raw.strip() else {}
        grace = body.get("grace_seconds", 0)
        if type(grace) not in (int, float) or not 0 <= grace <= 30 * 86400:
            raise InvalidRequest("grace_seconds: a number of seconds, 0 to 30 days.", param="grace_seconds")
        with _state_errors():
            key, secret = await self._keys().rotate_key(request.match_info["key_id"], float(grace), actor="master")
        return _json({**public(key), "key": secret}, rid)

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


_UNENFORCED: frozenset[str] = frozenset()


def public(k: Key) -> dict[str, Any]:
    """A key as the admin API shows it: never the secret, nor its hash."""
    return {"id": k.id, "object": "key", "name": k.name, "team": k.team, "models": list(k.models),
            "expires_at": k.expires_at, "metadata": k.metadata, "created_at": k.created_at,
            "revoked_at": k.revoked_at, "previous_valid_until": k.previous_valid_until}


def _json(obj: Any, rid: str, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json",
                        headers={"x-request-id": rid})


@contextlib.contextmanager
def _state_errors() -> Iterator[None]:
    """The stores' admin errors as the API's: Invalid -> 400, NotFound -> 404."""
    try:
        yield
    except Invalid as e:
        raise InvalidRequest(str(e)) from None
    except StateNotFound as e:
        raise NotFound(str(e) or "No such key.", code="key_not_found") from None
