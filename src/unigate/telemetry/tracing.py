"""OpenTelemetry tracing, off unless the standard variables turn it on: OTEL_TRACES_EXPORTER
(`otlp`, `console`, a comma-separated list; `none` turns it off), or an OTLP endpoint
(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT) with the exporter unset.
OTEL_SDK_DISABLED=true wins over both.

This module imports nothing of opentelemetry: off, the gateway never loads it, and the request
path pays one `tracer is not None` check per call and one per attempt (pipeline.py). On, the
spans are made in otel.py (the `otel` extra: opentelemetry-sdk and the OTLP/HTTP exporter)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from unigate.telemetry.otel import RequestTracer

log = logging.getLogger("unigate.tracing")


def wanted(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return any(e.strip() not in ("", "none") for e in exporters.split(","))
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def tracer_from_env(env: Mapping[str, str]) -> RequestTracer | None:
    """The request tracer the environment asks for, or None (tracing off)."""
    if not wanted(env):
        return None
    try:
        from unigate.telemetry import otel
    except ImportError as e:
        # asked for, but not installed: say so loudly, and serve without traces
        log.error("OTEL_* variables ask for tracing, but OpenTelemetry is not installed (%s): "
                  "pip install 'unigate[otel]'. Serving without traces.", e)
        return None
    return otel.from_env(env)
