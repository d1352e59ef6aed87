"""Responses in, Responses out, for an upstream that has OpenAI's Responses API (the `openai`
preset): the client's `POST /v1/responses` body goes to the upstream's /v1/responses as it came
(only the model is replaced by the deployment's), and the answer comes back as it was sent.

What the gateway still needs is read without re-encoding: the usage (for the ledger and cost),
an `error` event in a stream, and whether the stream reached its terminal event
(response.completed, response.incomplete or response.failed)."""

from __future__ import annotations

import orjson

from unigate.canonical.types import JSON
from unigate.errors import GatewayError, UpstreamUnavailable
from unigate.providers.base import Deployment, NativeBody, UpstreamRequest

#: the NativeBody dialect of a Responses request (the OpenAI adapter's dialect: see Call.is_native)
DIALECT = "openai"
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_SEQ = b'"sequence_number":'


class RelayedStreamError(UpstreamUnavailable):
    """A relayed Responses stream's failure; `after` is the sequence number of the last event the
    client got (the surface numbers its error event after it), None when none was seen."""

    def __init__(self, message: str, *, after: int | None, provider: str, code: str | None = None) -> None:
        super().__init__(message, provider=provider, code=code)
        self.after = after


def responses_request(native: NativeBody, dep: Deployment, *, stream: bool) -> UpstreamRequest:
    body = {**native.body, "model": dep.model}
    return UpstreamRequest("POST", f"{dep.provider.base_url}/responses", dep.provider.headers, orjson.dumps(body))


def chat_usage(u: object) -> JSON | None:
    """Responses usage -> the OpenAI chat usage the ledger reads."""
    if not isinstance(u, dict):
        return None
    inp, out = _int(u.get("input_tokens")), _int(u.get("output_tokens"))
    idt = u.get("input_tokens_details")
    odt = u.get("output_tokens_details")
    return {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out,
            "prompt_tokens_details": {"cached_tokens": _int(idt.get("cached_tokens") if isinstance(idt, dict) else 0)},
            "completion_tokens_details": {
                "reasoning_tokens": _int(odt.get("reasoning_tokens") if isinstance(odt, dict) else 0)}}


def _int(v: object) -> int:
    return v if type(v) is int else 0


def response_usage(data: bytes) -> JSON:
    """The usage of a Response object, checking it is one (else ValueError: a 502)."""
    obj = orjson.loads(data)
    if not isinstance(obj, dict) or obj.get("object") != "response" or not isinstance(obj.get("output"), list):
        raise ValueError("not a Response object")
    return chat_usage(obj.get("usage")) or {}


class ResponsesStreamWatch:
    """Looks at the events of a relayed Responses stream that matter to the gateway: only events
    holding one of `MARKERS` are parsed, the others go by as bytes."""

    MARKERS = (b'"usage"', b'"error"', b"response.completed", b"response.incomplete", b"response.failed")
    __slots__ = ("_provider", "ended", "seq", "usage")

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self.ended = False
        self.usage: JSON | None = None
        #: the sequence number of the last whole event relayed (one rfind per block)
        self.seq: int | None = None

    def see(self, block: bytes) -> tuple[bytes, GatewayError | None]:
        if not any(m in block for m in self.MARKERS):
            self._last_seq(block)
            return block, None
        pos = 0
        for event in block.split(b"\n\n"):
            end = pos + len(event) + 2
            obj = _payload(event) if any(m in event for m in self.MARKERS) else None
            if obj is not None:
                kind = obj.get("type")
                if kind in _TERMINAL:
                    self.ended = True
                    r = obj.get("response")
                    u = chat_usage(r.get("usage")) if isinstance(r, dict) else None
                    if u is not None:
                        self.usage = u
                elif kind == "error":
                    self._last_seq(block[:pos])
                    message = obj.get("message")
                    code = obj.get("code")
                    return block[:pos], RelayedStreamError(
                        f"{self._provider}: {message if isinstance(message, str) else 'error in the stream'}",
                        after=self.seq, provider=self._provider, code=code if isinstance(code, str) else None)
            pos = end
        self._last_seq(block)
        return block, None

    def _last_seq(self, block: bytes) -> None:
        i = block.rfind(_SEQ)
        if i >= 0:
            j = i + len(_SEQ)
            digits = block[j : j + 24].lstrip()
            n = 0
            while n < len(digits) and 48 <= digits[n] <= 57:
                n += 1
            if n:
                self.seq = int(digits[:n])

    def close(self) -> None:
        if not self.ended:
            raise RelayedStreamError(f"{self._provider}: the upstream stream ended before its last event",
                                     after=self.seq, provider=self._provider)


def _payload(event: bytes) -> JSON | None:
    d = event.find(b"data:")
    if d < 0:
        return None
    try:
        obj = orjson.loads(event[d + 5 :])
    except orjson.JSONDecodeError:
        raise UpstreamUnavailable("the upstream sent an unreadable stream event") from None
    return obj if isinstance(obj, dict) else None
