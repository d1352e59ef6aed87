"""OpenTelemetry: a span per request and one per upstream attempt, with the GenAI attribute names
and the request id; a fallback shows both attempts; an incoming traceparent is the parent; off
unless the OTEL_* variables turn it on, and then not even imported; on, spans reach an OTLP/HTTP
collector (a real one on 127.0.0.1, decoded with opentelemetry-proto)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.openai import FakeOpenAI
from unigate.telemetry.otel import RequestTracer
from unigate.telemetry.tracing import tracer_from_env, wanted

MASTER = "sk-master-test"
HI: Any = [{"role": "user", "content": "hi"}]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def env_for(fake: FakeOpenAI) -> dict[str, str]:
    return {"OPENAI_API_KEY": "sk-upstream-test", "OPENAI_BASE_URL": fake.url + "/v1", "UNIGATE_MASTER_KEY": MASTER}


def traced(gw: RunningGateway) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gw.gateway.tracer = RequestTracer(provider)
    return exporter


async def chat(gw: RunningGateway, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/v1/chat/completions", json={"messages": HI, **body},
                                                    headers={"Authorization": f"Bearer {MASTER}", **(headers or {})}) as r:
        return r.status, r.headers["x-request-id"], await r.read()


def by_kind(spans: tuple[ReadableSpan, ...]) -> tuple[ReadableSpan, list[ReadableSpan]]:
    (request,) = [s for s in spans if s.kind is SpanKind.SERVER]
    attempts = sorted((s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.attributes["unigate.attempt"])  # type: ignore[index, arg-type, return-value]
    return request, attempts


async def test_a_request_that_fell_back_shows_its_span_and_both_attempts(start_gateway: GatewayFactory,
                                                                         openai_fake: FakeOpenAI) -> None:
    gw = await start_gateway({"deployments": [{"name": "g", "model": "openai/error-500"},
                                              {"name": "g", "model": "openai/gpt-4o-mini", "priority": 1}]},
                             env=env_for(openai_fake))
    exporter = traced(gw)
    status, rid, _ = await chat(gw, {"model": "g", "max_tokens": 50, "temperature": 0.5},
                                {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert status == 200
    request, attempts = by_kind(exporter.get_finished_spans())
    assert len(exporter.get_finished_spans()) == 3 and len(attempts) == 2

    # the request's span: a child of the caller's traceparent, the GenAI names, what served it
    assert request.name == "chat g"
    assert request.context is not None and request.parent is not None
    assert format(request.context.trace_id, "032x") == TRACE_ID and format(request.parent.span_id, "016x") == PARENT_ID
    a = request.attributes or {}
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "g"
    assert a["gen_ai.request.max_tokens"] == 50 and a["gen_ai.request.temperature"] == 0.5
    assert a["unigate.request_id"] == rid and a["unigate.attempts"] == 2 and a["http.response.status_code"] == 200
    assert a["gen_ai.provider.name"] == "openai" and a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.usage.input_tokens"] == 12 and a["gen_ai.usage.output_tokens"] > 0
    assert request.status.status_code is StatusCode.UNSET

    # the attempts: children of the request's span, the failed one marked as an error
    first, second = attempts
    for span in attempts:
        assert span.parent is not None and span.parent.span_id == request.context.span_id
        assert span.context is not None and span.context.trace_id == request.context.trace_id
        assert (span.attributes or {})["unigate.request_id"] == rid
        assert span.start_time is not None and span.end_time is not None and span.start_time <= span.end_time
    f, s = first.attributes or {}, second.attributes or {}
    assert first.name == "chat error-500" and f["gen_ai.request.model"] == "error-500"
    assert f["gen_ai.provider.name"] == "openai" and f["gen_ai.system"] == "openai"
    assert f["unigate.deployment"] == "g#0" and f["http.response.status_code"] == 502
    assert first.status.status_code is StatusCode.ERROR and f["error.type"] == "fake_500"
    assert "gen_ai.usage.input_tokens" not in f
    assert second.name == "chat gpt-4o-mini" and s["unigate.deployment"] == "g#1" and s["unigate.attempt"] == 2
    assert second.status.status_code is StatusCode.UNSET and s["gen_ai.usage.input_tokens"] == 12
    assert first.start_time <= second.start_time  # type: ignore[operator]


async def test_a_stream_and_a_failed_request(gw_openai: RunningGateway) -> None:
    exporter = traced(gw_openai)
    status, rid, body = await chat(gw_openai, {"model": "openai/gpt-4o-mini", "stream": True,
                                               "stream_options": {"include_usage": True}})
    assert status == 200 and b"[DONE]" in body
    request, (attempt,) = by_kind(exporter.get_finished_spans())
    assert (request.attributes or {})["unigate.stream"] is True
    a = attempt.attributes or {}
    assert a["unigate.ttft_ms"] > 0 and a["gen_ai.usage.output_tokens"] > 0 and a["unigate.request_id"] == rid
    # the attempt's span lasts the whole stream, and ends before the request's does
    assert attempt.end_time is not None and request.end_time is not None
    assert attempt.end_time <= request.end_time + 1_000_000  # within 1 ms: two clocks (time.time, perf_counter)

    exporter.clear()
    status, rid, _ = await chat(gw_openai, {"model": "openai/error-500"})
    assert status == 502
    request, (attempt,) = by_kind(exporter.get_finished_spans())
    assert request.status.status_code is StatusCode.ERROR and attempt.status.status_code is StatusCode.ERROR
    r = request.attributes or {}
    assert r["error.type"] == "fake_500" and r["http.response.status_code"] == 502 and r["unigate.request_id"] == rid
    # no traceparent came: the request's span is a root
    assert request.parent is None


def test_off_unless_the_otel_variables_ask() -> None:
    assert not wanted({})
    assert not wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"})
    assert not wanted({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"})
    assert wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"})
    assert wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces"})
    assert wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert tracer_from_env({}) is None
    on = tracer_from_env({"OTEL_TRACES_EXPORTER": "console"})
    assert isinstance(on, RequestTracer)
    on.shutdown()


def test_off_the_gateway_never_imports_opentelemetry() -> None:
    code = ("import os, sys\n"
            "from unigate.app import create_app\n"
            "from unigate.config import parse_config\n"
            "env = {'UNIGATE_LOCAL': 'off'}\n"
            "app = create_app(parse_config({}, where='<t>', env=env), env)\n"
            "from unigate.app import GATEWAY_KEY\n"
            "assert app[GATEWAY_KEY].tracer is None\n"
            "loaded = [m for m in sys.modules if m.startswith('opentelemetry')]\n"
            "assert not loaded, loaded\n"
            "print('ok')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2] / "src"), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


@pytest_asyncio.fixture
async def collector() -> AsyncIterator[tuple[str, list[bytes]]]:
    """An OTLP/HTTP collector: what is POSTed to /v1/traces, kept."""
    got: list[bytes] = []

    async def traces(request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        got.append(await request.read())
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", got
    await runner.cleanup()


async def test_on_with_an_otlp_endpoint_spans_reach_the_collector(start_gateway: GatewayFactory, openai_fake: FakeOpenAI,
                                                                  collector: tuple[str, list[bytes]],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    url, got = collector
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_SERVICE_NAME": "gateway-under-test"}
    for k, v in otel.items():
        monkeypatch.setenv(k, v)  # the OTLP exporter reads the process environment
    gw = await start_gateway(env={**env_for(openai_fake), **otel})
    tracer = gw.gateway.tracer
    assert isinstance(tracer, RequestTracer)
    status, rid, _ = await chat(gw, {"model": "openai/gpt-4o-mini"})
    assert status == 200
    # the exporter's thread posts to the collector on this loop: flush from a thread
    assert tracer.provider is not None and await asyncio.to_thread(tracer.provider.force_flush, 10_000)
    spans = []
    for body in got:
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            service = {a.key: a.value.string_value for a in rs.resource.attributes}["service.name"]
            assert service == "gateway-under-test"
            for ss in rs.scope_spans:
                spans.extend(ss.spans)
    assert sorted(s.name for s in spans) == ["chat gpt-4o-mini", "chat openai/gpt-4o-mini"]
    for s in spans:
        attrs = {a.key: a.value for a in s.attributes}
        assert attrs["unigate.request_id"].string_value == rid
        assert attrs["gen_ai.operation.name"].string_value == "chat"
