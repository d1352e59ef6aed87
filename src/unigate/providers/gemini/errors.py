"""Google RPC error bodies -> gateway errors.

The envelope is `{"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT",
"details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}`
(python-genai `errors.py`). Two quirks matter: a bad API key is HTTP **400** INVALID_ARGUMENT
with reason `API_KEY_INVALID` (message "API key not valid. Please pass a valid API key.") and
must reach the client as 401; a 429 RESOURCE_EXHAUSTED often has no Retry-After header but a
`google.rpc.RetryInfo` detail with `retryDelay: "17s"`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from unigate.canonical.types import JSON
from unigate.canonical.upstream import retry_after_seconds
from unigate.errors import UpstreamError, upstream_error_for_status

#: gRPC status name -> the HTTP status Google pairs it with, for errors that arrive inside a
#: 200 stream (their `code` is usually there, the status name always is).
_GRPC_HTTP = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "INTERNAL": 500, "UNKNOWN": 500, "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
}


def error_from_response(status: int, data: bytes, headers: Mapping[str, str], provider: str) -> UpstreamError:
    err = _find_error(data)
    if err is None:
        text = data.decode("utf-8", "replace").strip()[:500]
        return upstream_error_for_status(
            status, f"{provider}: {text or f'upstream answered HTTP {status}'}", provider=provider,
            retry_after=retry_after_seconds(headers),
        )
    return error_from_object(err, provider, http_status=status, headers=headers)


def error_from_object(err: Any, provider: str, *, http_status: int | None = None,
                      headers: Mapping[str, str] | None = None) -> UpstreamError:
    """Map one Google error object (the value of the `error` key)."""
    if not isinstance(err, dict):
        err = {"message": str(err)}
    grpc = err.get("status") if isinstance(err.get("status"), str) else ""
    code = err.get("code") if isinstance(err.get("code"), int) else None
    status = http_status or code or _GRPC_HTTP.get(grpc, 500)
    message = err.get("message") if isinstance(err.get("message"), str) else ""
    details = [d for d in err.get("details") or () if isinstance(d, dict)]
    reasons = {str(d.get("reason")) for d in details if d.get("reason")}
    out_code: str | None = None
    key_refused = status == 400 and (any(r.startswith("API_KEY") for r in reasons) or "API key not valid" in message)
    if key_refused or status == 401 or grpc == "UNAUTHENTICATED":
        status, out_code = 401, "invalid_api_key"
    elif status == 400:
        low = message.lower()
        if "token" in low and ("exceeds" in low or "too long" in low or "maximum" in low):
            out_code = "context_length_exceeded"
        elif grpc:
            out_code = grpc.lower()
    elif status == 200:  # an error object inside a 200 stream without a code
        status = _GRPC_HTTP.get(grpc, 500)
    retry_after = retry_after_seconds(headers) if headers else None
    if retry_after is None:
        retry_after = _retry_info(details)
    return upstream_error_for_status(
        status, f"{provider}: {message or grpc or f'upstream answered HTTP {status}'}", provider=provider,
        retry_after=retry_after, code=out_code,
    )


def _find_error(data: bytes) -> JSON | None:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        obj = obj[0]  # the stream endpoint without alt=sse wraps everything in an array
    err = obj.get("error") if isinstance(obj, dict) else None
    return err if isinstance(err, dict) else None


def _retry_info(details: list[JSON]) -> float | None:
    for d in details:
        if str(d.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = d.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return float(delay[:-1])
                except ValueError:
                    return None
            if isinstance(delay, dict):  # the proto's object form: {"seconds": 17, "nanos": 0}
                return float(delay.get("seconds") or 0) + float(delay.get("nanos") or 0) / 1e9
    return None
