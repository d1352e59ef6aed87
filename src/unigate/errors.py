"""The gateway's whole error tree, and how each error is rendered to a client.

    GatewayError                      status  type
    ├── InvalidRequest                 400    invalid_request_error
    │   └── UnsupportedFeature         400    invalid_request_error (code unsupported_feature)
    ├── Unauthenticated                401    authentication_error
    ├── Forbidden                      403    permission_error
    ├── ModelNotFound                  404    invalid_request_error (code model_not_found)
    ├── BodyTooLarge                   413    invalid_request_error
    ├── RateLimited                    429    rate_limit_error (+ Retry-After)
    ├── ServiceUnavailable             503    server_error (+ Retry-After)
    └── UpstreamError                  the upstream's trouble, mapped
        ├── UpstreamBadRequest         400 (the upstream refused the request)
        │   └── UpstreamCannotCount    400 (no token count for this model: estimated instead)
        ├── UpstreamAuthError          401
        ├── UpstreamRateLimited        429 (keeps Retry-After)
        ├── UpstreamUnavailable        502/503 (5xx, connection failures)
        └── UpstreamTimeout            504

`fallbackable` tells the router whether another deployment may be tried after this error.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import orjson

from unigate.redact import client_text

#: the longest wait a Retry-After may ask of a client (an upstream's `inf` or 1e400 becomes this)
MAX_RETRY_AFTER = 86400.0


class GatewayError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None
    fallbackable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.retry_after = sane_retry_after(retry_after)
        self.http_status = status if status is not None else self.status

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def json(self) -> bytes:
        return orjson.dumps(self.body())

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(0, int(self.retry_after + 0.999)))}


def sane_retry_after(v: float | None) -> float | None:
    """A wait in seconds a client can be told, or None: NaN and negatives are no advice, and
    infinity or an absurd value is capped rather than passed on (int(inf) would raise)."""
    if v is None or math.isnan(v):
        return None
    return min(max(v, 0.0), MAX_RETRY_AFTER)


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class UnsupportedFeature(InvalidRequest):
    default_code = "unsupported_feature"


class Unauthenticated(GatewayError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class Forbidden(GatewayError):
    status = 403
    type = "permission_error"
    default_code = "model_not_allowed"


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    default_code = "model_not_found"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class BodyTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class PaymentRequired(GatewayError):
    status = 402
    type = "insufficient_quota"
    default_code = "insufficient_credits"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "server_error"
    default_code = "service_unavailable"
    fallbackable = True


class UpstreamError(GatewayError):
    """An error that came from (or on the way to) a provider. Its message is the provider's
    words as a client may see them (`redact.client_text`: bounded, no secret, no internal
    address), whichever adapter made it."""

    status = 502
    type = "server_error"
    default_code = "upstream_error"
    fallbackable = True

    def __init__(self, message: str, *, provider: str = "", upstream_status: int | None = None, **kw: Any) -> None:
        code = kw.get("code")
        if code is not None:
            kw["code"] = client_text(str(code), 100)
        super().__init__(client_text(message), **kw)
        self.provider = provider
        self.upstream_status = upstream_status


class UpstreamBadRequest(UpstreamError):
    status = 400
    type = "invalid_request_error"
    default_code = "upstream_bad_request"
    fallbackable = False


class UpstreamCannotCount(UpstreamBadRequest):
    """The provider has a token count, but not for this model (Bedrock's CountTokens takes some
    models only): the Anthropic surface estimates instead, and another deployment may count."""

    default_code = "count_unsupported"
    fallbackable = True


class UpstreamAuthError(UpstreamError):
    status = 401
    type = "authentication_error"
    default_code = "upstream_auth_error"


class UpstreamForbidden(UpstreamError):
    status = 403
    type = "permission_error"
    default_code = "upstream_permission_error"


class UpstreamNotFound(UpstreamError):
    status = 404
    type = "invalid_request_error"
    default_code = "model_not_found"


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class UpstreamUnavailable(UpstreamError):
    status = 502
    type = "server_error"
    default_code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "server_error"
    default_code = "upstream_timeout"


def upstream_error_for_status(
    status: int, message: str, *, provider: str, retry_after: float | None = None, code: str | None = None
) -> UpstreamError:
    """The error class a plain HTTP status from a provider maps to."""
    cls: type[UpstreamError]
    out_status: int | None = None
    if status == 401:
        cls = UpstreamAuthError
    elif status == 403:
        cls = UpstreamForbidden
    elif status == 404:
        cls = UpstreamNotFound
    elif status == 413:
        cls, out_status = UpstreamBadRequest, 413
    elif status == 429:
        cls = UpstreamRateLimited
    elif status in (408, 504):
        cls = UpstreamTimeout
    elif status == 503 or status == 529:
        cls, out_status = UpstreamUnavailable, 503
    elif 400 <= status < 500:
        cls = UpstreamBadRequest
    else:
        cls = UpstreamUnavailable
    return cls(
        message, provider=provider, upstream_status=status, retry_after=retry_after, code=code, status=out_status
    )
