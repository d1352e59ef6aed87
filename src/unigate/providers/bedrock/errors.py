"""Bedrock errors -> gateway errors, for HTTP error answers and for exception frames in a stream.

The AWS error code comes from the `x-amzn-ErrorType` header (`ValidationException:http://…`,
the part before `:`), else the body's `__type` (`…#ValidationException`) or `code`; the text
from `message` / `Message` (botocore `parsers.py` RestJSONParser). Exception statuses are the
ones in service-2.json; the gateway's answer follows /work/shared/reference/providers.md §8.8.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from unigate.canonical.upstream import retry_after_seconds
from unigate.errors import (
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamCannotCount,
    UpstreamError,
    UpstreamForbidden,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    upstream_error_for_status,
)

#: AWS error code -> (gateway error class, HTTP status override or None).
_BY_CODE: dict[str, tuple[type[UpstreamError], int | None]] = {
    "ValidationException": (UpstreamBadRequest, None),
    "AccessDeniedException": (UpstreamForbidden, None),
    # AWS answers 403 for every authentication failure; to a client they are a bad key (401).
    "UnrecognizedClientException": (UpstreamAuthError, None),
    "InvalidSignatureException": (UpstreamAuthError, None),
    "IncompleteSignatureException": (UpstreamAuthError, None),
    "MissingAuthenticationTokenException": (UpstreamAuthError, None),
    "InvalidClientTokenId": (UpstreamAuthError, None),
    "SignatureDoesNotMatch": (UpstreamAuthError, None),
    "ExpiredTokenException": (UpstreamAuthError, None),
    "ResourceNotFoundException": (UpstreamNotFound, None),
    "ThrottlingException": (UpstreamRateLimited, None),
    "ModelNotReadyException": (UpstreamRateLimited, None),
    # a token/request quota for the account: a limit the client can wait out, like a 429
    "ServiceQuotaExceededException": (UpstreamRateLimited, None),
    "ServiceUnavailableException": (UpstreamUnavailable, 503),
    "ModelTimeoutException": (UpstreamTimeout, None),
    "ModelErrorException": (UpstreamUnavailable, None),
    "ModelStreamErrorException": (UpstreamUnavailable, None),
    "InternalServerException": (UpstreamUnavailable, None),
    "InternalFailure": (UpstreamUnavailable, None),
}

_AUTH_HINTS = ("signature", "security token", "credential", "authorization header")


def parse_error(data: bytes, headers: Mapping[str, str]) -> tuple[str | None, str]:
    """(AWS error code or None, message) from an error answer (`headers` with lower-case names)."""
    code = headers.get("x-amzn-errortype") or headers.get("x-amzn-ErrorType")
    message = ""
    try:
        obj = orjson.loads(data) if data else {}
    except orjson.JSONDecodeError:
        obj = data.decode("utf-8", "replace").strip()[:500]
    if isinstance(obj, dict):
        message = str(obj.get("message") or obj.get("Message") or "")
        if not code:
            code = obj.get("__type") or obj.get("code") or obj.get("Code")
    elif isinstance(obj, str):
        message = obj
    if code:
        code = str(code).split(":", 1)[0].rpartition("#")[2] or None
    return code, message


def make_error(
    pid: str, code: str | None, message: str, status: int, retry_after: float | None = None
) -> UpstreamError:
    text = f"{pid}: {code + ': ' if code else ''}{message or f'upstream answered HTTP {status}'}"
    if code == "ValidationException" and "counting tokens" in message:
        # CountTokens on a model it does not count ("The provided model doesn't support counting tokens")
        return UpstreamCannotCount(text, provider=pid, upstream_status=status)
    hit = _BY_CODE.get(code or "")
    if hit is None and status == 403 and any(h in message.lower() for h in _AUTH_HINTS):
        hit = (UpstreamAuthError, None)
    if hit is None:
        return upstream_error_for_status(status, text, provider=pid, retry_after=retry_after)
    cls, out_status = hit
    return cls(text, provider=pid, upstream_status=status, retry_after=retry_after, status=out_status)


def http_error(pid: str, status: int, data: bytes, headers: Mapping[str, str]) -> UpstreamError:
    low = {k.lower(): v for k, v in headers.items()}  # errors are rare; any Mapping, any case
    code, message = parse_error(data, low)
    return make_error(pid, code, message, status, retry_after_seconds(low))


#: stream exception member -> the HTTP status service-2.json gives it (used for unknown codes).
_STREAM_STATUS = {"internalServerException": 500, "modelStreamErrorException": 424, "validationException": 400,
                  "throttlingException": 429, "serviceUnavailableException": 503}


def stream_error(pid: str, member: str, payload: bytes) -> UpstreamError:
    """An exception frame (`:message-type: exception`, `:exception-type: throttlingException`)."""
    message = ""
    try:
        obj = orjson.loads(payload) if payload else {}
        if isinstance(obj, dict):
            message = str(obj.get("message") or obj.get("Message") or "")
            orig = obj.get("originalMessage")
            if orig and orig not in message:  # modelStreamErrorException carries the model's own text
                message = f"{message} ({orig})" if message else str(orig)
    except orjson.JSONDecodeError:
        message = payload.decode("utf-8", "replace")[:500]
    code = member[:1].upper() + member[1:] if member else None
    return make_error(pid, code, message or "the stream failed", _STREAM_STATUS.get(member, 500))
