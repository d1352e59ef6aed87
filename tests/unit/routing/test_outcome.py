from __future__ import annotations

from unigate.drain import ShuttingDown
from unigate.errors import (
    InvalidRequest,
    ServiceUnavailable,
    UnsupportedFeature,
    UpstreamTimeout,
    UpstreamUnavailable,
    upstream_error_for_status,
)
from unigate.routing.outcome import FailureKind, classify


def test_upstream_errors_map_to_their_kinds() -> None:
    def kind(status: int) -> FailureKind | None:
        return classify(upstream_error_for_status(status, "x", provider="p"))

    assert kind(500) is FailureKind.SERVER_ERROR
    assert kind(503) is FailureKind.SERVER_ERROR
    assert kind(529) is FailureKind.SERVER_ERROR
    assert kind(504) is FailureKind.TIMEOUT
    assert kind(429) is FailureKind.RATE_LIMITED
    assert kind(401) is FailureKind.REJECTED
    assert kind(403) is FailureKind.REJECTED
    assert kind(404) is FailureKind.REJECTED
    assert kind(400) is None  # the request's fault, not the deployment's
    assert kind(413) is None


def test_the_transports_failures_and_the_callers_own_timeout() -> None:
    assert classify(UpstreamUnavailable("cannot connect", provider="p")) is FailureKind.CONNECTION
    timeout = UpstreamTimeout("slow", provider="p")
    assert classify(timeout) is FailureKind.TIMEOUT
    assert classify(timeout, caller_timeout=True) is FailureKind.CALLER_TIMEOUT
    assert not FailureKind.CALLER_TIMEOUT.counts
    assert all(k.counts for k in FailureKind if k is not FailureKind.CALLER_TIMEOUT)


def test_gateway_errors_that_are_nobodys_health() -> None:
    assert classify(ServiceUnavailable("queue full", retry_after=2)) is FailureKind.RATE_LIMITED
    assert classify(ServiceUnavailable("model failed to load")) is FailureKind.SERVER_ERROR
    assert classify(ShuttingDown()) is None
    assert classify(InvalidRequest("bad")) is None
    assert classify(UnsupportedFeature("no embeddings")) is None
