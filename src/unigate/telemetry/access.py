"""One access-log line per request, written by aiohttp once the response is finished (a stream
at its end): method, path, status, the model asked for and what served it, latency, request id.

The line is a JSON object after the log prefix, so it can be parsed and never breaks on a
client-chosen value (a path or model name with quotes or newlines is escaped). Headers, query
strings and bodies are never written: they are where secrets travel."""

from __future__ import annotations

import logging

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

LOGGER = logging.getLogger("unigate.access")
#: where the pipeline leaves the model the client asked for (see Gateway.plan)
REQUESTED_MODEL = "unigate.model"
_MAX_VALUE = 200  # a client-chosen string is cut to this in the log


class AccessLog(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        h = response.headers
        model = request.get(REQUESTED_MODEL)
        line = {
            "method": request.method,
            "path": request.path[:_MAX_VALUE],
            "status": response.status,
            "model": model[:_MAX_VALUE] if isinstance(model, str) else None,
            "served": h.get("x-unigate-model"),
            "deployment": h.get("x-unigate-deployment"),
            "latency_ms": round(time * 1000, 2),
            "request_id": h.get("x-request-id"),
        }
        self.logger.info("%s", orjson.dumps(line).decode())

    @property
    def enabled(self) -> bool:
        # checked once per connection by aiohttp: with the level above info, no line is built
        return self.logger.isEnabledFor(logging.INFO)

