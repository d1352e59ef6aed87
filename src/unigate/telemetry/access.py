"""One structured log line per request, written by aiohttp once the response is finished (a
stream at its end): the request id, method, path, status, the model asked for and what served it
(deployment, provider, attempts), the key id and team, latency (the whole request, the upstream
part, a stream's time to first token), tokens and cost.

Nothing is added to the request's path for it: the pipeline leaves the body it read and each
attempt's ledger record on the request (two dict stores it makes anyway, see Gateway.plan and
Gateway.attempts), and this logger reads them after the response is sent.

The line is a JSON object after the log prefix, so it can be parsed and never breaks on a
client-chosen value (a path or model name with quotes or newlines is escaped). Headers and query
strings are never written: they are where secrets travel. Bodies only with `logging.bodies: true`,
cut to `logging.max_body_chars` and with secrets redacted (redact.scrub_secrets): the request's
body as the gateway read it (the canonical OpenAI form), and a JSON answer's body; a stream's
events are not kept, so a stream's answer is not logged."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from unigate import redact

LOGGER = logging.getLogger("unigate.access")


def _request_key(name: str) -> Any:
    """A key for a request's storage: aiohttp 3.14 has typed `web.RequestKey`s and warns (once
    per key and process, on stderr) about plain strings; older releases take only strings."""
    key_type = getattr(web, "RequestKey", None)
    return name if key_type is None else key_type(name, object)


#: where the pipeline leaves the body it read (the model asked for is in it; see Gateway.plan)
REQUEST_BODY = _request_key("unigate.body")
#: where the pipeline leaves the ledger record of the request's latest attempt (Gateway.attempts)
LAST_ATTEMPT = _request_key("unigate.attempt")
#: where the pipeline leaves the principal a key's limits, budget or credits refused (Gateway.run)
REFUSED = _request_key("unigate.refused")
#: the app's `logging.max_body_chars` when bodies are logged, absent (or 0) when not (app.py)
LOG_BODIES: web.AppKey[int] = web.AppKey("unigate.log_bodies", int)
_MAX_VALUE = 200  # a client-chosen string is cut to this in the log
#: beyond the cut, this much more is scrubbed first, so no secret is cut into a piece the patterns miss
_SCRUB_MARGIN = 256


def _cut(value: Any) -> str | None:
    return value[:_MAX_VALUE] if isinstance(value, str) else None


def body_text(data: Any, limit: int) -> str | None:
    """A body for the log: JSON text, secrets removed, at most `limit` characters."""
    if data is None:
        return None
    if isinstance(data, (bytes, bytearray)):
        text = bytes(data[: (limit + _SCRUB_MARGIN) * 4]).decode("utf-8", "replace")
    else:
        try:
            text = orjson.dumps(data).decode()
        except TypeError:  # not JSON (a payload object): nothing worth logging
            return None
    text = redact.scrub_secrets(text[: limit + _SCRUB_MARGIN])
    return text if len(text) <= limit else text[:limit] + "…"


_NO_ATTEMPT: dict[str, Any] = dict.fromkeys(
    ("served", "deployment", "provider", "attempts", "key_id", "team", "stream", "upstream_ms", "ttft_ms",
     "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "error_code"))


class AccessLog(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        h = response.headers
        body = request.get(REQUEST_BODY)
        rec = request.get(LAST_ATTEMPT)
        line: dict[str, Any] = {
            "request_id": h.get("x-request-id") or (rec.request_id if rec is not None else None),
            "method": request.method,
            "path": request.path[:_MAX_VALUE],
            "status": response.status,
            "model": _cut(body.get("model")) if isinstance(body, dict) else None,
            "latency_ms": round(time * 1000, 2),
        }
        if rec is None:  # refused or failed before any upstream: the same keys, empty
            line.update(_NO_ATTEMPT)
            who = request.get(REFUSED)
            if who is not None:  # refused by its limits: which key and team
                line["key_id"], line["team"] = who.key_id, who.team
        else:
            # the record of the last attempt: what served the call (or failed last), and its usage
            line.update({
                "served": rec.served_model or None, "deployment": rec.deployment or None,
                "provider": rec.provider or None, "attempts": rec.attempt, "key_id": rec.key_id, "team": rec.team,
                "stream": rec.stream, "upstream_ms": round(rec.latency_ms, 2),
                "ttft_ms": None if rec.ttfb_ms is None else round(rec.ttfb_ms, 2),
                "input_tokens": rec.prompt_tokens if rec.usage_known else None,
                "output_tokens": rec.completion_tokens if rec.usage_known else None,
                "cached_tokens": rec.cached_tokens if rec.usage_known else None,
                "cost_usd": rec.cost_usd, "error_code": rec.error_code,
            })
        limit = request.config_dict.get(LOG_BODIES) if isinstance(request, web.Request) else None
        if limit:
            line["request_body"] = body_text(body, limit)
            # a stream's events are not kept; a JSON answer's bytes are on the response
            line["response_body"] = body_text(response.body, limit) if isinstance(response, web.Response) else None
        self.logger.info("%s", orjson.dumps(line).decode())

    @property
    def enabled(self) -> bool:
        # checked once per connection by aiohttp: with the level above info, no line is built
        return self.logger.isEnabledFor(logging.INFO)
