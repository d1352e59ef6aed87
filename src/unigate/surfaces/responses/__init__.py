"""The Responses API surface: `POST /v1/responses` in front of every model, and `GET` /
`DELETE /v1/responses/{id}` (`GET .../input_items`) for the responses the gateway stored.

A Responses request is translated to the canonical OpenAI chat body (request.py) and runs
through the same pipeline as every other call (`Gateway.run`: keys, limits, budgets, fallbacks,
the ledger); the answer comes back through `ResponsesEgress` (response.py for JSON, stream.py for
the event stream). When every deployment of the model is on the `openai` preset, which has the
Responses API, the client's body goes upstream untouched and the answer comes back untouched
(providers/openai_responses.py; decision 14's pass-through). Errors are OpenAI's envelope.

`store` (the API's default is true) keeps a response in the state layer when there is one (a
master key is set), owned by the key that made it; without a state layer store is accepted and
nothing is kept (the answer says `store: false`), and `previous_response_id` is a clear 400
(unless the model passes through to OpenAI, which keeps its own responses).
docs/decisions.md (decision 16) has the reasoning.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from unigate.canonical.types import JSON
from unigate.endpoints import Endpoint
from unigate.errors import InvalidRequest, NotFound
from unigate.governance.auth import Principal
from unigate.pipeline import Gateway
from unigate.providers.base import Deployment, NativeBody
from unigate.providers.openai_responses import DIALECT
from unigate.state.sql_responses import SqlResponses, StoredResponse
from unigate.surfaces import validate
from unigate.surfaces.openai import expect_handler, guarded
from unigate.surfaces.responses.request import Translation, bad, input_items, to_canonical
from unigate.surfaces.responses.response import Echo, new_id
from unigate.surfaces.responses.stream import ResponsesEgress

__all__ = ["ResponsesSurface"]

log = logging.getLogger("unigate.http")

#: the preset whose upstream has the Responses API itself (OpenAI-compatible hosts do not)
_RESPONSES_PRESETS = frozenset({"openai"})
_JSON = "application/json"


def passes_through(deps: list[Deployment]) -> bool:
    """Every deployment can take the client's Responses body itself."""
    return bool(deps) and all(d.provider.preset.id in _RESPONSES_PRESETS and d.adapter.dialect == DIALECT
                              for d in deps)


def owner_of(p: Principal) -> str:
    # the master key and loopback mode (no key) own theirs under fixed names
    return p.key_id or "anonymous"


def _bookkeeping(body: JSON) -> JSON:
    """A canonical body for a passed-through request the translation could not read (a built-in
    tool, a field it does not know): the upstream judges the request itself; the pipeline only
    needs the model, the stream flag and the output limit (the budget's worst case)."""
    out: JSON = {"model": body["model"], "messages": [{"role": "user", "content": ""}]}
    if body.get("stream") is True:
        out["stream"] = True
    limit = body.get("max_output_tokens")
    if type(limit) is int and limit > 0:
        out["max_completion_tokens"] = limit
    return out


class ResponsesSurface:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._store: SqlResponses | None = None
        #: streamed responses between their last event and their row (a client may chain the
        #: next turn as soon as it read response.completed); in this process only
        self._pending: dict[str, StoredResponse] = {}

    def routes(self) -> list[web.RouteDef]:
        expect = expect_handler()
        return [
            web.post("/v1/responses", guarded(self.create), expect_handler=expect),
            web.get("/v1/responses/{id}", guarded(self.retrieve), expect_handler=expect),
            web.delete("/v1/responses/{id}", guarded(self.delete), expect_handler=expect),
            web.get("/v1/responses/{id}/input_items", guarded(self.input_items), expect_handler=expect),
        ]

    @property
    def store(self) -> SqlResponses | None:
        state = self.gw.state
        if state is None:
            return None
        if self._store is None:
            days = self.gw.cfg.state.responses_ttl_days
            self._store = SqlResponses(state.db, ttl=None if days is None else days * 86400.0)
        return self._store

    # ------------------------------------------------------------------ POST /v1/responses

    async def create(self, request: web.Request, rid: str) -> web.StreamResponse:
        gw = self.gw
        call = await gw.admit(request, rid, Endpoint.CHAT)
        body = call.body
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise bad("Missing required parameter: 'model'." if model is None else
                      "Invalid type for 'model': expected a non-empty string.", "model",
                      "missing_required_parameter" if model is None else "invalid_type")
        store = self.store
        owner = owner_of(call.principal)
        prev_id = body.get("previous_response_id")
        prev: StoredResponse | None = None
        if prev_id is not None:
            if not isinstance(prev_id, str) or not prev_id:
                raise bad("Invalid type for 'previous_response_id': expected a string.", "previous_response_id",
                          "invalid_type")
            prev = None if store is None else await self._find(prev_id, owner)
            if prev is not None:
                # the earlier turns go upstream too: the context-window check and a key's token
                # estimate count them (a streamed row still being written has no size yet: 0)
                call.size += prev.size
        # planned here: whether the upstream has the Responses API decides between relay and translation
        deps = gw.plan(call)
        # a turn the gateway did not store may be OpenAI's own: an upstream with the API continues it
        native = prev is None and passes_through(deps)
        if prev_id is not None and prev is None and not native:
            if store is None:
                raise InvalidRequest("'previous_response_id' needs the gateway's state layer, which is off: the "
                                     "gateway keeps responses only with a master key set (UNIGATE_MASTER_KEY). "
                                     "Send the whole conversation in 'input' instead.",
                                     param="previous_response_id", code="unsupported_parameter")
            raise InvalidRequest(f"Previous response with id '{prev_id}' not found.", param="previous_response_id",
                                 code="previous_response_not_found")
        history = prev.history() if prev is not None else None
        try:
            t = to_canonical(body, history)
            # the canonical body is checked like a client's, so every translator can trust it
            validate.validate_chat(t.body)
        except InvalidRequest:
            if not native:
                raise
            t = Translation(_bookkeeping(body))  # the upstream reads the request itself
        if native:
            # OpenAI keeps (or not) what it answers: the gateway stores nothing of a relayed call
            call.native = NativeBody(DIALECT, body, {})
            # its egress renders only a failure of the relay (the answer goes out as it came)
            call.body, call.egress = t.body, ResponsesEgress(Echo.of(body, False), relayed=True)
            return await gw.run(call)
        keep = store is not None and body.get("store") is not False
        egress = ResponsesEgress(Echo.of(body, keep))
        conversation = [*(history or ()), *_with_ids(input_items(body))] if keep else []
        if keep and call.stream:
            egress.on_final = lambda final: self._remember(final, owner, model, prev_id, conversation)
        call.dropped = tuple(t.dropped)
        call.body, call.egress = t.body, egress
        resp = await gw.run(call)
        final = egress.final
        if keep and store is not None and final is not None and final.get("status") != "failed":
            # (a streamed one stays visible from the pending map until its row is written)
            row = self._pending.get(final["id"]) or StoredResponse(
                final["id"], owner, float(final["created_at"]), model, prev_id, conversation, final)
            try:
                await store.put(row)
            except Exception:  # the client has (or is getting) its answer, paid for: keep it
                log.exception("request %s: could not store response %s", rid, row.id)
            finally:
                self._pending.pop(row.id, None)
        return resp

    def _remember(self, final: JSON, owner: str, model: str, prev_id: str | None, conversation: list[Any]) -> None:
        row = StoredResponse(final["id"], owner, float(final["created_at"]), model, prev_id, conversation, final)
        self._pending[row.id] = row

    async def _find(self, response_id: str, owner: str) -> StoredResponse | None:
        row = self._pending.get(response_id)
        if row is not None:
            return row if row.owner == owner else None
        store = self.store
        return None if store is None else await store.get(response_id, owner)

    # ------------------------------------------------------------------ stored responses

    async def _stored(self, request: web.Request) -> tuple[StoredResponse, SqlResponses]:
        principal = await self.gw.auth.authenticate(request.headers)
        response_id = request.match_info["id"]
        store = self.store
        if store is None:
            raise NotFound(f"Response with id '{response_id}' not found: the gateway keeps responses only with "
                           "its state layer (a master key set).", param="response_id")
        row = await self._find(response_id, owner_of(principal))
        if row is None:
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        return row, store

    async def retrieve(self, request: web.Request, rid: str) -> web.StreamResponse:
        if request.query.get("stream", "false").lower() not in ("false", "0", ""):
            # the API can replay a stored response as its event stream; the gateway keeps the object only
            raise bad("'stream' is not supported when retrieving a stored response: the gateway returns the "
                      "Response object.", "stream", "unsupported_parameter")
        row, _ = await self._stored(request)
        return _json(row.response, rid)

    async def delete(self, request: web.Request, rid: str) -> web.StreamResponse:
        row, store = await self._stored(request)
        await store.delete(row.id, row.owner)
        return _json({"id": row.id, "object": "response", "deleted": True}, rid)

    async def input_items(self, request: web.Request, rid: str) -> web.StreamResponse:
        row, _ = await self._stored(request)
        q = request.query
        order = q.get("order", "desc")
        if order not in ("asc", "desc"):
            raise bad(f"Invalid value for 'order': {order!r}. Supported values are: 'asc' and 'desc'.", "order")
        try:
            limit = int(q.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            raise bad("Invalid 'limit': expected an integer from 1 to 100.", "limit")
        items = list(row.conversation)
        if order == "desc":
            items.reverse()
        after = q.get("after")
        if after:
            ids = [it.get("id") for it in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        page = items[:limit]
        return _json({"object": "list", "data": page, "first_id": page[0].get("id") if page else None,
                      "last_id": page[-1].get("id") if page else None, "has_more": len(items) > limit}, rid)


def _with_ids(items: list[JSON]) -> list[JSON]:
    """The input items as stored, in the shape input_items lists them: each with an id, a
    message's text as a content part."""
    out = []
    for it in items:
        kind = it.get("type") or "message"
        item = {**it, "type": kind}
        if not isinstance(it.get("id"), str):
            item["id"] = new_id(_ID_PREFIX.get(kind, "item_"))
        content = it.get("content")
        if kind == "message" and isinstance(content, str):
            part = "output_text" if it.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": part, "text": content}]
        out.append(item)
    return out


_ID_PREFIX = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_"}


def _json(obj: JSON, rid: str) -> web.Response:
    return web.Response(body=orjson.dumps(obj), content_type=_JSON, headers={"x-request-id": rid})

