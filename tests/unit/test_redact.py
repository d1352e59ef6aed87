"""What of an upstream's words reaches a client: redact.client_text, applied by UpstreamError,
and the Retry-After values an upstream may send."""

from __future__ import annotations

import math

import pytest

from unigate import redact
from unigate.errors import (
    MAX_RETRY_AFTER,
    UpstreamRateLimited,
    UpstreamUnavailable,
    upstream_error_for_status,
)
from unigate.providers.openai_compat import retry_after_seconds

SECRET = "gw-held-secret-0123456789"


@pytest.fixture(autouse=True)
def registered() -> None:
    redact.register_secret(SECRET)
    redact.register_host("vllm.internal.corp:8000")
    redact.register_host("vllm.internal.corp")


@pytest.mark.parametrize("text, gone", [
    (f"request had credentials Bearer {SECRET}", SECRET),
    (f"bad key {SECRET}!", SECRET),
    ("Incorrect API key provided: sk-proj-abcdefghijklmnop", "sk-proj-abcdefghijklmnop"),
    ("key=AIzaSyA1234567890abcdefghijklmno rejected", "AIzaSyA1234567890abcdefghijklmno"),
    ("x-api-key: opaque-value-999 is not valid", "opaque-value-999"),
    ("AKIAABCDEFGHIJKLMNOP not authorised", "AKIAABCDEFGHIJKLMNOP"),
    ("Connect call failed ('127.0.0.1', 9)", "127.0.0.1"),
    ("upstream 10.0.3.7:8000 refused", "10.0.3.7"),
    ("cannot reach http://vllm.internal.corp:8000/v1", "vllm.internal.corp"),
    ("dial tcp [::1]:8080: connection refused", "::1"),
])
def test_secrets_and_internal_addresses_are_removed(text: str, gone: str) -> None:
    out = redact.client_text(text)
    assert gone not in out
    assert "[redacted]" in out or "[upstream address]" in out


def test_a_huge_message_is_bounded_before_any_pattern_runs() -> None:
    out = redact.client_text("x" * 50_000_000)
    assert len(out) <= redact.MAX_MESSAGE_CHARS and out.endswith("…")


def test_an_html_page_is_reduced_to_its_title() -> None:
    page = "upstream: <html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"
    assert redact.client_text(page) == "upstream: an HTML page (502 Bad Gateway)"
    assert redact.client_text("<!DOCTYPE html><p>x</p>") == "an HTML page"


def test_ordinary_text_is_kept() -> None:
    text = "The model `gpt-4o` does not exist or you do not have access to it. See https://platform.openai.com/docs"
    assert redact.client_text(text) == text


def test_every_upstream_error_passes_through_it() -> None:
    e = upstream_error_for_status(401, f"openai: echo Bearer {SECRET}\n\n<b>", provider="openai", code=SECRET)
    assert SECRET not in e.message and SECRET not in str(e.code) and "\n" not in e.message
    assert SECRET not in UpstreamUnavailable(f"x {SECRET}").json().decode()


@pytest.mark.parametrize("headers, expected", [
    ({"retry-after": "inf"}, MAX_RETRY_AFTER), ({"retry-after": "1e400"}, MAX_RETRY_AFTER),
    ({"retry-after": "nan"}, None), ({"retry-after-ms": "nan"}, None), ({"retry-after": "-5"}, None),
    ({"retry-after": "garbage"}, None), ({"retry-after-ms": "nan", "retry-after": "3"}, 3.0),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0), ({"retry-after": "Wed, 99 Foo 0 99:99:99 GMT"}, None),
    ({"retry-after-ms": "1500"}, 1.5),
])
def test_any_retry_after_gives_a_sane_wait(headers: dict[str, str], expected: float | None) -> None:
    err = UpstreamRateLimited("slow down", retry_after=retry_after_seconds(headers))
    assert err.retry_after == expected
    h = err.headers()
    if expected is None:
        assert h == {}
    else:
        assert 0 <= int(h["Retry-After"]) <= MAX_RETRY_AFTER and not math.isnan(float(h["Retry-After"]))
