"""What an attempt's failure says about the deployment, in the few kinds routing decides on.

The breaker (health.py) and the retry policy (retry.py) both read a failure as a `FailureKind`,
so the attempt loop classifies an error once (`classify`) and hands the kind to both.

Why these kinds and not HTTP statuses: what matters for routing is whose fault a failure is and
whether trying again can help.

    kind            counts against the deployment   retry the same one   try another
    SERVER_ERROR    yes (5xx)                       yes, with backoff    yes
    CONNECTION      yes (refused, reset, DNS)       yes, with backoff    yes
    TIMEOUT         yes (its own timeout fired)     no: it used the time yes
    RATE_LIMITED    yes; opens at once for a        yes, if its wait     yes
                    Retry-After                     fits (retry.py)
    REJECTED        yes (401/403/404: a key or      no: it will refuse   yes
                    model the deployment refuses)   again
    CALLER_TIMEOUT  NO: the caller's own deadline   no                   no: the deadline
                    was shorter than the deploy-                         is spent
                    ment's, so it says nothing
                    about the deployment
    (None)          no: the request's own fault (a 400), or not a failure of the upstream

A REJECTED deployment is counted because every request to it fails the same way (a revoked key,
a model the provider retired): the breaker taking it out of rotation saves each request a
round trip, and the half-open probe notices when the operator has fixed it.
"""

from __future__ import annotations

import enum

from unigate.errors import (
    GatewayError,
    ServiceUnavailable,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamForbidden,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)


class FailureKind(enum.Enum):
    SERVER_ERROR = "server_error"
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    REJECTED = "rejected"
    CALLER_TIMEOUT = "caller_timeout"

    @property
    def counts(self) -> bool:
        """Whether this failure is evidence against the deployment's health."""
        return self is not FailureKind.CALLER_TIMEOUT


def classify(error: GatewayError, *, caller_timeout: bool = False) -> FailureKind | None:
    """The kind of an attempt's error, or None when it is not the deployment's failure.

    `caller_timeout` is the attempt loop's knowledge, not the error's: a timeout that fired
    because the caller's remaining deadline was shorter than the deployment's own timeout."""
    if isinstance(error, UpstreamTimeout):
        return FailureKind.CALLER_TIMEOUT if caller_timeout else FailureKind.TIMEOUT
    if isinstance(error, UpstreamRateLimited):
        return FailureKind.RATE_LIMITED
    if isinstance(error, UpstreamUnavailable):
        # the transport maps connection failures without a status; an answer had one
        return FailureKind.SERVER_ERROR if error.upstream_status is not None else FailureKind.CONNECTION
    if isinstance(error, (UpstreamAuthError, UpstreamForbidden, UpstreamNotFound)):
        return FailureKind.REJECTED
    if isinstance(error, UpstreamBadRequest):
        return None
    if isinstance(error, ServiceUnavailable) and error.fallbackable:
        # the embedded engine's full queue (503 + Retry-After): an overload, like a 429; the
        # gateway's own shutdown (not fallbackable) is nobody's health
        return FailureKind.RATE_LIMITED if error.retry_after else FailureKind.SERVER_ERROR
    return None
