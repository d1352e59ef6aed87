"""Anthropic in, Anthropic out: the client's Messages request goes upstream as it came, and the
answer comes back as the upstream sent it. Only the model is replaced (by the deployment's) and
the client's `anthropic-beta` header joins the provider's. Nothing the canonical form cannot
hold (context_management, output_config, mcp_servers, signed thinking, is_error on a
tool_result, a system message in the middle of the conversation, beta features) is lost.

What the gateway still needs is read from the answer without re-encoding it: the usage (for the
ledger and cost), errors in a stream, and whether the stream ended with message_stop."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from unigate.canonical.types import JSON
from unigate.errors import GatewayError, InvalidRequest, UpstreamUnavailable
from unigate.providers.anthropic.response import stream_error, usage

#: the client headers that belong to the request itself (the rest is the client's own business):
#: the body is in the client's version of the API and may use the client's betas
FORWARDED_HEADERS = ("anthropic-beta", "anthropic-version")
#: forwarded headers holding one value (the others are comma-separated lists that join)
_SINGLE = frozenset({"anthropic-version"})


def native_headers(client: Mapping[str, str]) -> dict[str, str]:
    """The client's anthropic-* headers to forward. Their values are dates and beta names:
    printable ASCII, or a 400 here (HTTP/1.1 cannot carry anything else upstream faithfully)."""
    out = {name: client[name] for name in FORWARDED_HEADERS if client.get(name)}
    for name, value in out.items():
        if not (value.isascii() and value.isprintable()):
            raise InvalidRequest(f"The {name} header must be printable ASCII (a version date or beta names).",
                                 param=name)
    return out


def merge_headers(provider: Mapping[str, str], client: Mapping[str, str],
                  configured: Mapping[str, str] | None = None) -> dict[str, str]:
    """The provider's headers with the client's forwarded ones; two anthropic-beta lists join
    (an operator may turn a beta on for every call, a client for its own). The client's
    anthropic-version replaces the adapter's default, unless the operator configured one
    (`configured`: the provider's own headers), which wins."""
    out = dict(provider)
    for name, value in client.items():
        mine = next((v for k, v in out.items() if k.lower() == name), None)
        if mine is None:
            out[name] = value
        elif name in _SINGLE:
            if configured is None or not any(k.lower() == name for k in configured):
                out = {k: v for k, v in out.items() if k.lower() != name}
                out[name] = value
        else:
            have = [b.strip() for b in mine.split(",") if b.strip()]
            out = {k: v for k, v in out.items() if k.lower() != name}
            out[name] = ",".join([*have, *(b.strip() for b in value.split(",") if b.strip() and b.strip() not in have)])
    return out


def message_usage(data: bytes) -> JSON:
    """The OpenAI-style usage of a Messages answer, checking it is one (else ValueError: a 502)."""
    obj = orjson.loads(data)
    if not isinstance(obj, dict) or obj.get("type") != "message" or not isinstance(obj.get("content"), list):
        raise ValueError("not a Messages answer")
    u = obj.get("usage")
    return usage(u if isinstance(u, dict) else {})


class NativeStreamWatch:
    """Looks at the events of a relayed Messages stream that matter to the gateway. Only events
    that hold one of `MARKERS` are parsed; the others go by as bytes."""

    MARKERS = (b'"usage"', b"error", b"message_stop")
    __slots__ = ("_native", "_provider", "stopped", "usage")

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._native: JSON = {}
        self.stopped = False
        self.usage: JSON | None = None

    def see(self, block: bytes) -> tuple[bytes, GatewayError | None]:
        """`block` holds whole events: what to relay of it, and the upstream's in-stream error
        to end the stream with (the events before it are relayed, the error is re-rendered)."""
        if not any(m in block for m in self.MARKERS):
            return block, None
        pos = 0
        for event in block.split(b"\n\n"):
            end = pos + len(event) + 2
            obj = _payload(event) if any(m in event for m in self.MARKERS) else None
            if obj is not None:
                kind = obj.get("type")
                if kind == "message_start":
                    msg = obj.get("message")
                    self._merge(msg.get("usage") if isinstance(msg, dict) else None)
                elif kind == "message_delta":
                    self._merge(obj.get("usage"))
                elif kind == "message_stop":
                    self.stopped = True
                elif kind == "error":
                    return block[:pos], stream_error(obj, self._provider)
            pos = end
        return block, None

    def _merge(self, u: object) -> None:
        if isinstance(u, dict):
            # message_delta's counts are cumulative and may repeat message_start's: the last wins
            self._native.update({k: v for k, v in u.items() if v is not None})
            self.usage = usage(self._native)

    def close(self) -> None:
        if not self.stopped:
            raise UpstreamUnavailable(f"{self._provider}: the upstream stream ended before message_stop",
                                      provider=self._provider)


def _payload(event: bytes) -> JSON | None:
    d = event.find(b"data:")
    if d < 0:
        return None
    try:
        obj = orjson.loads(event[d + 5 :])
    except orjson.JSONDecodeError:
        raise UpstreamUnavailable("the upstream sent an unreadable stream event") from None
    return obj if isinstance(obj, dict) else None
