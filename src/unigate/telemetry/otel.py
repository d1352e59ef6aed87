"""The spans of a request, with OpenTelemetry (imported only when tracing is on: tracing.py).

One SERVER span per request that reaches `Gateway.run` (named `{operation} {model}`, as the
GenAI semantic conventions name them), honouring an incoming `traceparent`; one CLIENT child per
upstream attempt. An attempt's span is made when the attempt is over, from its ledger record (its
start, its duration, its status and usage), with its real start and end times: the loop does
nothing more for it than hand over the record it makes anyway. Both carry the request id
(`unigate.request_id`) and the GenAI attributes (gen_ai.operation.name, gen_ai.provider.name and
the older gen_ai.system, gen_ai.request.model, gen_ai.response.model, gen_ai.request.max_tokens,
temperature, top_p, gen_ai.usage.input_tokens / output_tokens); a failed attempt or request has
status ERROR and `error.type` (the error code).

`gen_ai.response.model` is the upstream model the deployment names (the gateway does not parse a
relayed answer for its `model` field)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from unigate.accounting.ledger import UsageRecord
from unigate.errors import GatewayError

if TYPE_CHECKING:
    from aiohttp import web

    from unigate.pipeline import Call
    from unigate.providers.base import Deployment

log = logging.getLogger("unigate.tracing")

#: gen_ai.operation.name per endpoint (the conventions' names where they have one)
OPERATION = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings",
             "count_tokens": "count_tokens"}
_MAX_ATTR = 200  # a client-chosen string attribute is cut to this


def _exporters(env: Mapping[str, str]) -> list[SpanExporter]:
    out: list[SpanExporter] = []
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    for name in names:
        if name in ("", "none"):
            continue
        if name == "otlp":
            protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            if protocol and protocol != "http/protobuf":
                log.warning("OTLP protocol %r is not available: traces go as http/protobuf", protocol)
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # the exporter reads its endpoint, headers, timeout and compression from OTEL_EXPORTER_OTLP_*
            out.append(OTLPSpanExporter())
        elif name == "console":
            out.append(ConsoleSpanExporter())
        else:
            log.warning("OTEL_TRACES_EXPORTER: unknown exporter %r ignored (otlp, console or none)", name)
    return out


def from_env(env: Mapping[str, str]) -> RequestTracer | None:
    exporters = _exporters(env)
    if not exporters:
        return None
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    # Resource.create adds OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES itself
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": "unigate"}))
    for e in exporters:
        provider.add_span_processor(BatchSpanProcessor(e))  # OTEL_BSP_* tune its batches
    log.info("tracing on: %s", ", ".join(type(e).__name__ for e in exporters))
    return RequestTracer(provider)


def _request_attributes(call: Call, op: str) -> dict[str, Any]:
    body = call.body
    model = body.get("model")
    attrs: dict[str, Any] = {"gen_ai.operation.name": op, "unigate.request_id": call.rid,
                             "http.request.method": call.request.method, "url.path": call.request.path[:_MAX_ATTR]}
    if isinstance(model, str):
        attrs["gen_ai.request.model"] = model[:_MAX_ATTR]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if type(limit) is int:
        attrs["gen_ai.request.max_tokens"] = limit
    for name in ("temperature", "top_p"):
        v = body.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            attrs[f"gen_ai.request.{name}"] = float(v)
    if call.stream:
        attrs["unigate.stream"] = True
    p = call.principal
    if p.key_id is not None:
        attrs["unigate.key_id"] = p.key_id
    if p.team is not None:
        attrs["unigate.team"] = p.team
    return attrs


def _usage(attrs: dict[str, Any], rec: UsageRecord) -> None:
    if rec.usage_known:
        attrs["gen_ai.usage.input_tokens"] = rec.prompt_tokens
        attrs["gen_ai.usage.output_tokens"] = rec.completion_tokens
        if rec.cost_usd is not None:
            attrs["unigate.cost_usd"] = rec.cost_usd


def _failed(rec: UsageRecord) -> bool:
    return rec.status != 200 or rec.error_code is not None


class CallSpan:
    """One request's span, and its attempts' spans as they finish."""

    __slots__ = ("attempts", "last", "last_dep", "op", "span", "tracer")

    def __init__(self, tracer: Tracer, span: Span, op: str) -> None:
        self.tracer, self.span, self.op = tracer, span, op
        self.attempts = 0
        self.last: UsageRecord | None = None
        self.last_dep: Deployment | None = None

    def attempt(self, dep: Deployment, rec: UsageRecord) -> None:
        """An attempt is over: its span, with the times it ran at."""
        self.attempts += 1
        self.last, self.last_dep = rec, dep
        start = int(rec.started * 1e9)
        provider = dep.provider.preset.id
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": self.op, "gen_ai.provider.name": provider, "gen_ai.system": provider,
            "gen_ai.request.model": dep.model, "gen_ai.response.model": dep.model,
            "unigate.request_id": rec.request_id, "unigate.deployment": dep.id, "unigate.provider": dep.provider.id,
            "unigate.attempt": rec.attempt, "http.response.status_code": rec.status}
        if rec.ttfb_ms is not None:
            attrs["unigate.ttft_ms"] = rec.ttfb_ms
        if rec.client_disconnected:
            attrs["unigate.client_disconnected"] = True
        _usage(attrs, rec)
        span = self.tracer.start_span(f"{self.op} {dep.model}", context=trace.set_span_in_context(self.span),
                                      kind=SpanKind.CLIENT, attributes=attrs, start_time=start)
        if _failed(rec):
            kind = rec.error_code or str(rec.status)
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, kind))
        span.end(end_time=start + int(rec.latency_ms * 1e6))

    def finish(self) -> None:
        """What served the request (its last attempt), then the end of the request's span."""
        span, rec, dep = self.span, self.last, self.last_dep
        span.set_attribute("unigate.attempts", self.attempts)
        if rec is not None and dep is not None:
            attrs: dict[str, Any] = {"gen_ai.provider.name": dep.provider.preset.id,
                                     "gen_ai.system": dep.provider.preset.id,
                                     "gen_ai.response.model": dep.model, "unigate.deployment": dep.id}
            if rec.ttfb_ms is not None:
                attrs["unigate.ttft_ms"] = rec.ttfb_ms
            _usage(attrs, rec)
            span.set_attributes(attrs)
        span.end()


class RequestTracer:
    def __init__(self, provider: TracerProvider | None = None) -> None:
        """`provider`: the SDK provider this tracer owns (shut down with it); None: the global one."""
        self.provider = provider
        self.tracer = (provider or trace.get_tracer_provider()).get_tracer("unigate")

    async def run(self, call: Call, inner: Callable[[Call], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        op = OPERATION.get(str(call.endpoint), str(call.endpoint))
        model = call.body.get("model")
        parent = propagate.extract(call.request.headers)  # an incoming traceparent (OTEL_PROPAGATORS)
        span = self.tracer.start_span(f"{op} {model}"[:_MAX_ATTR] if isinstance(model, str) else op, context=parent,
                                      kind=SpanKind.SERVER, attributes=_request_attributes(call, op))
        cs = call.span = CallSpan(self.tracer, span, op)
        try:
            resp = await inner(call)
        except GatewayError as e:
            kind = e.code or type(e).__name__
            span.set_attributes({"error.type": kind, "http.response.status_code": e.http_status})
            span.set_status(Status(StatusCode.ERROR, kind))
            raise
        except BaseException as e:
            span.set_attribute("error.type", type(e).__name__)
            span.set_status(Status(StatusCode.ERROR, type(e).__name__))
            raise
        else:
            span.set_attribute("http.response.status_code", resp.status)
            last = cs.last
            if last is not None and _failed(last):  # a stream that failed after its 200
                kind = last.error_code or str(last.status)
                span.set_attribute("error.type", kind)
                span.set_status(Status(StatusCode.ERROR, kind))
            return resp
        finally:
            cs.finish()

    def shutdown(self) -> None:
        """Export what is batched, then stop (blocking: call it in a thread)."""
        if self.provider is not None:
            self.provider.shutdown()
