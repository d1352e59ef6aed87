"""The path of one request, in one place: a `Call` through the stages of `Gateway`

    admit (authenticate, read the body) -> the surface validates (and translates to canonical)
    -> plan (model -> ordered deployments) -> attempt each deployment: build the native request,
    exchange it (HTTP, or the in-process engine), translate back (JSON, or a relayed/translated
    stream); on a fallbackable error try the next one -> settle (usage, cost, the ledger row,
    off the hot path) -> egress (the surface's encoding).

Handlers in `surfaces/` call the stages here; adapters in `providers/` do the translating;
`transport.py` does the exchange. docs/architecture.md says where each concern plugs in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
import orjson
from aiohttp import web

from unigate import catalog
from unigate.accounting import pricing
from unigate.accounting.ledger import Ledger, UsageRecord
from unigate.canonical.types import JSON
from unigate.canonical.upstream import error_message
from unigate.config import Config, Timeouts
from unigate.drain import Drain
from unigate.egress import OPENAI, Egress, StreamEncoder
from unigate.endpoints import Endpoint
from unigate.errors import (
    BodyTooLarge,
    GatewayError,
    InvalidRequest,
    ServiceUnavailable,
    UnsupportedFeature,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    upstream_error_for_status,
)
from unigate.governance.access import allowed, auto_permits, check_auto
from unigate.governance.auth import ANONYMOUS, Authenticator, Principal
from unigate.governance.enforce import Enforcer, Ticket
from unigate.providers.base import NOT_LOOKED_UP, Deployment, NativeBody, UpstreamRequest, unread_fields
from unigate.providers.transport import BodyTooLong, Transport, read_limited, read_prefix
from unigate.routing import auto, controls
from unigate.routing.attempts import context_overflow, controlled, policy_for, record_success, within
from unigate.routing.controls import Controls
from unigate.routing.outcome import classify
from unigate.routing.retry import Step, next_step
from unigate.routing.router import Router
from unigate.routing.strategies import RequestFacts
from unigate.state import State
from unigate.streams import (
    CLIENT_GONE,
    embeddings_to_base64,
    relay_native_stream,
    relay_openai_stream,
    translate_stream,
)
from unigate.surfaces import completions, validate
from unigate.telemetry.access import LAST_ATTEMPT, REFUSED, REQUEST_BODY

if TYPE_CHECKING:
    from unigate.telemetry.otel import CallSpan, RequestTracer

log = logging.getLogger("unigate.pipeline")

JSON_CT = "application/json"
_CLIENT_GONE = CLIENT_GONE
#: what a translator raises on an upstream answer of the wrong shape (a 502, never a 500)
MALFORMED = (ValueError, KeyError, TypeError, AttributeError, IndexError)
#: the part of a JSON answer that must have this type for the relay to pass it on untouched
_RELAY_SHAPE = {Endpoint.CHAT: ("choices", list), Endpoint.COMPLETIONS: ("choices", list),
               Endpoint.EMBEDDINGS: ("data", list)}


class Call:
    """One request on its way through the stages; each stage adds what it knows.

    `body` is the canonical (OpenAI) body, for COUNT_TOKENS too, whose client's Messages body
    rides in `native` (an Anthropic upstream counts that, Gemini and Bedrock the translation).
    Only a CHAT answer is relayed in the client's own dialect. The defaults are class attributes
    and __init__ sets only what every call has (as UsageRecord: bench/ counts the generated one)."""

    request: web.Request
    rid: str
    endpoint: Endpoint
    body: JSON
    principal: Principal = ANONYMOUS
    egress: Egress = OPENAI
    #: plan: the deployments to try, first choice first (a surface may plan early, see anthropic)
    attempts: list[Deployment] | None = None
    #: the client's body in its own dialect, for upstreams of that dialect (sent as it came)
    native: NativeBody | None = None
    #: what the surface's translation to `body` left out (named on translated attempts only)
    dropped: tuple[str, ...] = ()
    #: the request's routing controls (timeout, fallbacks, ...), taken out of the body by plan
    controls: Controls = controls.NONE
    #: the request body's size in bytes (a token estimate for the context-window check)
    size: int = 0
    #: attempts made so far
    tries: int = 0
    #: why the plan is what it is, when the gateway chose the model (`auto`): x-unigate-route
    route_note: str = ""
    #: the x-ratelimit-* headers of a virtual key with rpm/tpm limits
    limit_headers: dict[str, str] | None = None
    #: the request's span, when tracing is on (telemetry/otel.py)
    span: CallSpan | None = None

    def __init__(self, request: web.Request, rid: str, endpoint: Endpoint, body: JSON,
                 principal: Principal = ANONYMOUS, size: int = 0) -> None:
        self.request, self.rid, self.endpoint, self.body, self.principal, self.size = (
            request, rid, endpoint, body, principal, size)

    def is_native(self, dep: Deployment) -> bool:  # (callers test `native is not None` first: it is rare)
        return self.native is not None and self.native.dialect == dep.adapter.dialect

    @property
    def stream(self) -> bool:
        return self.endpoint.streams and self.body.get("stream") is True


@dataclass(slots=True)
class Gateway:
    """Everything a request needs, built once per process, and the stages of one call:

        admit    who is calling (async: a key may be looked up in a database); the hooks where
                 limits, budgets and credits check and reserve
        plan     the model resolved once into an ordered list of attempts
        attempt  each deployment through its adapter and transport (HTTP or in-process)
        settle   usage, cost and the ledger row, in one place, also when the client left
        egress   the surface's encoding (`call.egress`)
    """

    cfg: Config
    router: Router
    transport: Transport
    ledger: Ledger
    auth: Authenticator
    drain: Drain = field(default_factory=Drain)  # what the shutdown deadline ends (server.py)
    #: keys, limits, spend and the persisted ledger (state/), opened at start-up when needed
    state: State | None = None
    #: virtual keys' limits, budgets and credits, with the state
    enforcer: Enforcer | None = None
    #: OpenTelemetry, when the OTEL_* variables turn it on (telemetry/tracing.py); None costs one check
    tracer: RequestTracer | None = None

    # ------------------------------------------------------------------ the OpenAI surface

    async def chat_completions(self, request: web.Request, rid: str) -> web.StreamResponse:
        call = await self.admit(request, rid, Endpoint.CHAT)
        validate.validate_chat(call.body)
        return await self.run(call)

    async def completions(self, request: web.Request, rid: str) -> web.StreamResponse:
        call = await self.admit(request, rid, Endpoint.COMPLETIONS)
        validate.validate_completions(call.body)
        return await self.run(call)

    async def embeddings(self, request: web.Request, rid: str) -> web.StreamResponse:
        call = await self.admit(request, rid, Endpoint.EMBEDDINGS)
        validate.validate_embeddings(call.body)
        return await self.run(call)

    # ------------------------------------------------------------------ the stages

    async def admit(self, request: web.Request, rid: str, endpoint: Endpoint) -> Call:
        """Authenticate, then read the body (a refused key costs no body read)."""
        principal = await self.auth.authenticate(request.headers)
        body, size = await self.read_json(request)
        return Call(request, rid, endpoint, body, principal, size=size)

    def plan(self, call: Call) -> list[Deployment]:
        """The deployments to try, first choice first: the route of the model (strategy, then
        breakers), then what the request's own controls add or filter (routing/controls.py)."""
        if call.attempts is None:
            body = call.body
            model = body["model"]
            call.request[REQUEST_BODY] = body  # for the request's log line (telemetry/access.py)
            c = call.controls = controls.take(body)
            router = self.router
            planned = router.planned(model, body) if c is controls.NONE and not call.principal.restricted else None
            if planned is not None:
                call.attempts = planned  # one deployment, or a group needing no token estimate (the common cases)
                return planned
            limit = body.get("max_completion_tokens") or body.get("max_tokens")
            facts = RequestFacts(body.get("stream") is True, call.size // 4, limit if type(limit) is int else 0)
            policy = auto.policy_of(model) if model.startswith("auto") else None
            if policy is not None:
                p = call.principal
                check_auto(p, model)
                allow = None if not p.restricted else (lambda mid: auto_permits(p, mid))
                call.attempts, call.route_note = router.auto_plan(policy, facts, auto.needs_of(body), allow)
                return call.attempts
            if c is controls.NONE:
                call.attempts = router.resolve(model, facts)
            else:
                call.attempts = controlled(router, model, c, facts)
            if call.principal.restricted:
                call.attempts = allowed(call.principal, model, call.attempts)
        return call.attempts

    async def run(self, call: Call) -> web.StreamResponse:
        """Plan, then a virtual key's limits, budget and credits (held for the call, charged when
        it ends), then the attempts."""
        if self.tracer is not None and call.span is None:
            # the tracer opens the request's span and comes back here (call.span set)
            return await self.tracer.run(call, self.run)
        deployments = self.plan(call)
        terms = call.principal.terms
        if terms is None:
            return await self.attempts(call, deployments, None)
        enforcer = self.enforcer
        if enforcer is None:  # terms come from the state, which brings the enforcer: never here
            raise ServiceUnavailable("The gateway cannot enforce this key's limits right now.")
        try:
            ticket, deployments = await enforcer.admit(terms, call.endpoint, call.body, call.size, deployments)
        except GatewayError:
            call.request[REFUSED] = call.principal  # who was refused, for the request's log line
            raise
        call.limit_headers = enforcer.headers(ticket)
        try:
            return await self.attempts(call, deployments, ticket)
        finally:
            await enforcer.finish(ticket)

    async def attempts(self, call: Call, deployments: list[Deployment], ticket: Ticket | None) -> web.StreamResponse:
        """The one retry/fallback loop: each deployment in turn (a failing last one retried with
        backoff, within the retry budget), every attempt recorded by the breakers, the live
        figures and the ticket, and settled. After a stream's first byte nothing is retried."""
        router, c = self.router, call.controls
        breakers, live = router.breakers, router.live
        stream, endpoint, task = call.stream, call.endpoint, call.request.task
        deadline = time.monotonic() + c.timeout if c.timeout is not None else None
        retries = c.num_retries if c.num_retries is not None else 0
        if router.retrying or retries:
            retries = retries or router.retries_for(call.body["model"])
            if retries:
                router.retry_budget.record_request()  # the budget is a share of the calls that may retry
        last: GatewayError | None = None
        i = retry = 0
        while i < len(deployments):
            dep = deployments[i]
            info = dep.catalog_info
            if info is NOT_LOOKED_UP:
                info = dep.catalog_info = catalog.lookup(dep.provider.preset.id, dep.model)
            try:
                # a deployment the catalog says cannot serve this request is skipped, not called
                catalog.check_capabilities(call.body, info, endpoint)
                if info is not None and info.context_window and call.size // 4 > info.context_window:
                    raise _too_long(call, dep, info.context_window)
            except GatewayError as e:
                last = last or e
                breakers.release(dep.id)
                i += 1
                continue
            timeouts, cut = dep.timeouts, False
            if deadline is not None:
                timeouts, cut = within(timeouts, deadline - time.monotonic())
            call.tries += 1
            rec = UsageRecord(request_id=call.rid, endpoint=endpoint, model=call.body["model"],
                              key_id=call.principal.key_id, deployment=dep.id, provider=dep.provider.id, stream=stream)
            rec.attempt, rec.served_model = call.tries, dep.public_id
            if call.principal.team is not None:
                rec.team = call.principal.team
            fig = live.figures(dep.id) if dep.tracked else None
            if fig is not None:
                live.start(fig)
            t0 = time.perf_counter()
            try:
                if stream:
                    resp = await self.drain.call(task, self._attempt_stream(call, dep, rec, timeouts))
                else:
                    resp = await self.drain.call(task, self._attempt_json(call, dep, rec, timeouts))
            except GatewayError as e:
                rec.status, rec.error_code = e.http_status, e.code
                last = e
                step = self._after_failure(call.rid, e, dep, cut, retry, i + 1 < len(deployments), retries, deadline)
                if step is None:
                    raise
                if step > 0:  # the same deployment again, after the backoff
                    retry += 1
                    await asyncio.sleep(step)
                else:
                    i += 1
                continue
            finally:
                if fig is not None:
                    live.finish(fig)
                rec.latency_ms = (time.perf_counter() - t0) * 1000
                self.settle(dep, rec)
                self.ledger.add(rec)
                if ticket is not None:
                    ticket.add(dep, rec)
                call.request[LAST_ATTEMPT] = rec  # for the request's log line (telemetry/access.py)
                if call.span is not None:
                    call.span.attempt(dep, rec)
            if fig is not None:
                record_success(router, dep, fig, rec)
                if breakers.tripped:  # else no probe is out: nothing to hand back
                    for rest in deployments[i + 1:]:
                        breakers.release(rest.id)  # planned, not tried: a half-open probe stays free
            return resp
        assert last is not None
        raise last

    def _after_failure(self, rid: str, e: GatewayError, dep: Deployment, cut: bool, retry: int, has_next: bool,
                       retries: int, deadline: float | None) -> float | None:
        """After a failed attempt: None to give up (raise it), 0 for the next deployment, or the
        seconds to wait before retrying the same one."""
        router = self.router
        kind = classify(e, caller_timeout=cut)
        if kind is None:
            if isinstance(e, UnsupportedFeature) or e.fallbackable or context_overflow(e):
                # an adapter that cannot express the request (count_tokens off Anthropic), or a
                # prompt the provider found too long for this model: another deployment may serve it
                return 0.0 if has_next else None
            return None
        if dep.tracked:
            router.breakers.record_failure(dep.id, kind, e.retry_after)
        remaining = None if deadline is None else deadline - time.monotonic()
        d = next_step(kind, retry + 1, has_next=has_next, policy=policy_for(retries), budget=router.retry_budget,
                      rng=router.rng, retry_after=e.retry_after, remaining=remaining)
        if d.step is Step.GIVE_UP:
            return None
        log.warning("request %s: %s failed (%s), %s", rid, dep.id, e.message,
                    "retrying it" if d.step is Step.RETRY else "trying the next deployment")
        return max(d.wait, 1e-6) if d.step is Step.RETRY else 0.0

    @staticmethod
    def settle(dep: Deployment, rec: UsageRecord) -> None:
        """The call's cost, once: when its usage is known (a JSON answer's headers need it before
        the ledger does; a stream's is known at its end, or at the client's leaving)."""
        if rec.usage_known and not rec.priced:
            rec.cost_usd, rec.priced = _cost(dep, rec), True

    def _build(self, call: Call, dep: Deployment) -> UpstreamRequest:
        a, body, endpoint = dep.adapter, call.body, call.endpoint
        try:
            if endpoint is Endpoint.CHAT:
                if call.native is not None and call.is_native(dep):
                    return a.native_request(call.native, dep, stream=call.stream)
                return self._chat_request(call, dep, body)
            if endpoint is Endpoint.EMBEDDINGS:
                return a.embeddings_request(body, dep)
            if endpoint is Endpoint.COUNT_TOKENS:
                assert call.native is not None  # the Anthropic surface sets it (its only caller)
                return a.count_tokens_request(body, call.native, dep)
            # legacy completions: natively where the upstream has them (relayed), else the prompt
            # as a chat call whose answer the egress re-encodes; chosen per attempt, as a group
            # may mix both kinds (surfaces/completions.py)
            if completions.has_native_completions(dep):
                call.egress = OPENAI
                return a.completions_request(body, dep, stream=call.stream)
            call.egress = completions.EGRESS
            return self._chat_request(call, dep, completions.chat_body(body))
        except MALFORMED as e:
            # validation types what translators read; a field of a shape it does not check that a
            # translator still trips on is the client's input, so a 400, and a bug to fix in validate
            log.warning("%s could not translate a request: %s: %s", dep.public_id, type(e).__name__, str(e)[:200])
            raise InvalidRequest(f"The request could not be translated for {dep.public_id}: a field has a shape "
                                 f"it cannot take ({type(e).__name__}).") from None

    @staticmethod
    def _chat_request(call: Call, dep: Deployment, body: JSON) -> UpstreamRequest:
        a = dep.adapter
        req = a.chat_request(body, dep, stream=call.stream)
        if call.dropped:
            req.dropped = (*call.dropped, *(d for d in req.dropped if d not in call.dropped))
        if a.reads is not None:
            # a translator names what it read but could not send; what it does not read
            # at all is named here, for every dialect at once
            unread = [k for k in unread_fields(body, a.reads) if k not in req.dropped]
            if unread:
                req.dropped = (*req.dropped, *unread)
        return req

    def _parse(self, call: Call, dep: Deployment, data: bytes) -> JSON:
        """A JSON answer -> the canonical object (a relayed one is only checked for its shape)."""
        a, endpoint = dep.adapter, call.endpoint
        if endpoint is Endpoint.COUNT_TOKENS:
            return a.count_tokens_response(data, dep)
        if a.passthrough:
            obj = orjson.loads(data)
            field, kind = _RELAY_SHAPE[endpoint]
            if not isinstance(obj, dict) or not isinstance(obj.get(field), kind):
                raise ValueError(f"no {field!r} list")
            return obj
        if endpoint is Endpoint.EMBEDDINGS:
            obj = a.embeddings_response(data, dep)
            if call.body.get("encoding_format") == "base64":
                embeddings_to_base64(obj)
            return obj
        return a.chat_response(data, dep)

    async def _attempt_json(self, call: Call, dep: Deployment, rec: UsageRecord, timeouts: Timeouts) -> web.Response:
        req = self._build(call, dep)
        pid, limits = dep.provider.id, self.cfg.server
        async with self.transport.open(req, timeouts, pid) as up:
            try:
                status = up.status
                if status >= 400:
                    raise self.upstream_error(dep, up, await read_prefix(up, limits.max_upstream_error_bytes))
                data = await read_limited(up, limits.max_upstream_body_bytes)
            except TimeoutError:
                raise UpstreamTimeout(f"{pid}: the upstream did not finish in time", provider=pid) from None
            except BodyTooLong:
                raise UpstreamUnavailable(f"{pid}: the upstream's answer is larger than the gateway's limit of "
                                          f"{limits.max_upstream_body_bytes} bytes", provider=pid) from None
        rec.status = 200
        egress = call.egress
        usage: JSON | None
        try:
            if call.native is not None and call.endpoint is Endpoint.CHAT and call.is_native(dep):
                # the client's own dialect: the answer goes out as it came, read for its usage
                out, usage = data, dep.adapter.native_usage(data)
            else:
                obj = self._parse(call, dep, data)
                # an OpenAI-format answer goes out byte for byte: it is parsed only for its usage
                out = data if dep.adapter.passthrough and egress.relay_openai else egress.encode_json(obj)
                usage = obj.get("usage")
        except MALFORMED as e:
            rec.status = 502
            raise UpstreamUnavailable(f"{pid}: unreadable upstream response ({e})", provider=pid) from None
        headers = _headers(call, dep, req)
        rec.set_usage(usage)
        if rec.usage_known:
            self.settle(dep, rec)
            headers["x-unigate-cost"] = "null" if rec.cost_usd is None else f"{rec.cost_usd:.10f}".rstrip("0").rstrip(".")
        return web.Response(body=out, content_type=JSON_CT, headers=headers)

    async def _attempt_stream(self, call: Call, dep: Deployment, rec: UsageRecord,
                              timeouts: Timeouts) -> web.StreamResponse:
        req = self._build(call, dep)
        request, rid, body, egress = call.request, call.rid, call.body, call.egress
        encoder = egress.stream_encoder(body)
        pid, limits = dep.provider.id, self.cfg.server
        t0 = time.perf_counter()
        async with self.transport.open(req, timeouts, pid) as up:
            if up.status >= 400:
                raise self.upstream_error(dep, up, await read_prefix(up, limits.max_upstream_error_bytes))
            if up.content_type != dep.adapter.stream_content_type:
                # a 200 that is not a stream (often an error object): nothing reached the client
                # yet, so it is an error response, and another deployment may still be tried
                said, _ = error_message(await read_prefix(up, limits.max_upstream_error_bytes))
                raise UpstreamUnavailable(f"{pid}: the upstream answered a stream request with {up.content_type!r}"
                                          f", not an event stream{f': {said}' if said else ''}", provider=pid)
            # the client's response begins only with the upstream's first bytes: a stream that
            # breaks off or ends before them can still go to another deployment
            try:
                first = await up.content.readany()
            except TimeoutError:
                raise UpstreamTimeout(f"{pid}: the upstream sent no event in time", provider=pid) from None
            except aiohttp.ClientError as e:
                raise UpstreamUnavailable(f"{pid}: the upstream stream broke off before its first event "
                                          f"({type(e).__name__})", provider=pid) from None
            if not first:
                raise UpstreamUnavailable(f"{pid}: the upstream's stream ended before its first event", provider=pid)
            rec.ttfb_ms = (time.perf_counter() - t0) * 1000
            # From here on the client has a 200 and an event stream: no more fallback, and
            # every failure becomes one error event in the stream, then a clean end.
            resp = web.StreamResponse(headers={**SSE_HEADERS, **_headers(call, dep, req)})
            await resp.prepare(request)
            rec.status = 200
            try:
                if call.native is not None and call.is_native(dep):
                    await self.drain.stream(request.task, relay_native_stream(
                        up, first, resp, dep.adapter.native_stream(dep), rec, limits.max_stream_event_bytes))
                elif dep.adapter.passthrough and egress.relay_openai:
                    if not await self.drain.stream(request.task, relay_openai_stream(
                            up, first, resp, validate.wants_usage(body), rec, limits.max_stream_event_bytes)):
                        await resp.write(encoder.finish(None))
                else:
                    await self.drain.stream(request.task, translate_stream(
                        up, first, resp, dep.adapter.chat_stream(body, dep), encoder, rec,
                        limits.max_stream_event_bytes, dep.adapter.stream_content_type == SSE_CT))
            except _CLIENT_GONE:
                rec.client_disconnected = True
                return resp
            except Exception as e:  # noqa: BLE001 - after the headers an error can only be an event
                await _write_stream_error(resp, encoder, _stream_failure(e, pid, rid), rec)
        try:
            await resp.write_eof()
        except _CLIENT_GONE:
            rec.client_disconnected = True
        return resp

    @staticmethod
    def upstream_error(dep: Deployment, up: aiohttp.ClientResponse, data: bytes) -> UpstreamError:
        """The adapter's reading of an error answer; one it cannot read is still the status."""
        try:
            return dep.adapter.error(up.status, data, up.headers, dep)
        except MALFORMED:
            return upstream_error_for_status(up.status, f"{dep.provider.id}: upstream answered HTTP {up.status}",
                                             provider=dep.provider.id)

    async def read_json(self, request: web.Request) -> tuple[JSON, int]:
        limit = self.cfg.server.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise BodyTooLarge(f"The request body is {request.content_length} bytes; the limit is {limit}.")
        encoding = request.headers.get("Content-Encoding")
        if encoding is not None and encoding.lower() not in _DECODED:
            # aiohttp passes a body in an encoding it does not know through as it is
            raise InvalidRequest(f"Unsupported Content-Encoding {encoding[:40]!r}: send gzip, deflate or none.")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise BodyTooLarge(f"The request body exceeds the limit of {limit} bytes.") from None
        except web.RequestPayloadError as e:
            # a body that does not decode as its Content-Encoding says (gzip that is not gzip)
            raise InvalidRequest(f"The request body could not be read: {_first_words(str(e))}.") from None
        return validate.parse_json_object(raw, self.cfg.server.max_json_depth), len(raw)


#: the request Content-Encodings aiohttp decodes here (br and zstd need packages it reports missing)
_DECODED = frozenset({"identity", "gzip", "x-gzip", "deflate"})
SSE_CT = "text/event-stream"
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _cost(dep: Deployment, rec: UsageRecord) -> float | None:
    """USD for this call, or None when the model has no known price (never a silent $0). A
    deployment's own prices (config, or $0 for the models running inside the gateway) win."""
    if dep.input_price is None and dep.output_price is None:
        override = None
    else:
        override = (dep.input_price, dep.output_price)
    if rec.counts is None:
        return None
    return pricing.cost_of(dep.provider.preset.id, dep.model, rec.counts, override)


def _headers(call: Call, dep: Deployment, req: UpstreamRequest) -> dict[str, str]:
    # the model that served the call (a bare name or alias says which one it came to), the
    # deployment (a configured one's `<name>#<index>`, else the same `provider/model`), and
    # how many attempts it took
    h = {"x-request-id": call.rid, "x-unigate-model": dep.public_id, "x-unigate-deployment": dep.id,
         "x-unigate-attempts": _ATTEMPTS[call.tries] if call.tries < 10 else str(call.tries)}
    if call.route_note:
        h["x-unigate-route"] = call.route_note
    if call.limit_headers is not None:
        h.update(call.limit_headers)
    if req.dropped:
        h["x-unigate-dropped-params"] = ",".join(req.dropped)
    return h


_ATTEMPTS = tuple(str(n) for n in range(10))
def _too_long(call: Call, dep: Deployment, window: int) -> InvalidRequest:
    return InvalidRequest(f"The request (about {call.size // 4} tokens) is longer than the context window of "
                          f"{dep.public_id} ({window} tokens).", param="messages", code="context_length_exceeded")


def _stream_failure(e: Exception, pid: str, rid: str) -> GatewayError:
    """What the client is told when a started stream fails."""
    if isinstance(e, GatewayError):
        return e
    if isinstance(e, asyncio.TimeoutError):
        return UpstreamTimeout(f"{pid}: the upstream stream stalled", provider=pid)
    if isinstance(e, aiohttp.ClientError):
        return UpstreamUnavailable(f"{pid}: the upstream stream broke off ({type(e).__name__})", provider=pid)
    if isinstance(e, MALFORMED):
        log.warning("request %s: unreadable event from %s: %s: %s", rid, pid, type(e).__name__, str(e)[:200])
        return UpstreamUnavailable(f"{pid}: the upstream sent an unreadable stream event", provider=pid)
    log.exception("request %s: stream from %s failed", rid, pid)
    return GatewayError(f"Internal error in the gateway (request {rid}); the operator's log has the details.",
                        code="internal_error")


def _first_words(message: str) -> str:
    # aiohttp's text is "400, message:\n  Can not decode content-encoding: gzip": the last line
    return message.strip().rsplit("\n", 1)[-1].strip()[:100]


async def _write_stream_error(resp: web.StreamResponse, encoder: StreamEncoder, err: GatewayError, rec: UsageRecord) -> None:
    rec.status, rec.error_code = err.http_status, err.code
    try:
        await resp.write(encoder.error(err))
    except _CLIENT_GONE:
        rec.client_disconnected = True

