"""Server-sent events: a decoder for upstream streams (bytes -> events) and the encoder.

The decoder follows the WHATWG rules that real upstreams exercise: events split across TCP
reads, CRLF or CR line endings, `:` comment lines (keep-alives), multi-line `data:`.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson


@dataclass(slots=True)
class SSEEvent:
    event: str
    data: str


class SSEDecoder:
    __slots__ = ("_buf", "_data", "_event")

    def __init__(self) -> None:
        self._buf = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk
        if b"\r" in buf:
            # a lone trailing CR may be the first half of CRLF: keep it for the next read
            keep_cr = buf.endswith(b"\r")
            if keep_cr:
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if keep_cr:
                buf += b"\r"
        out: list[SSEEvent] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            self.handle_line(line, out)
        self._buf = buf[start:]
        return out

    def close(self) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        if self._buf and self._buf != b"\r":
            self.handle_line(self._buf, out)
        self._buf = b""
        self.handle_line(b"", out)
        return out

    def handle_line(self, line: bytes, out: list[SSEEvent]) -> None:
        """One line without its ending. Subclasses may override it to accept what some
        upstreams write outside the SSE grammar (Gemini's bare error JSON)."""
        if not line:
            if self._data or self._event:
                out.append(SSEEvent(self._event or "message", "\n".join(self._data)))
            self._event, self._data = "", []
            return
        if line[:1] == b":":
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        text = value.decode("utf-8", "replace")
        if name == b"data":
            self._data.append(text)
        elif name == b"event":
            self._event = text


DONE = b"data: [DONE]\n\n"


def encode(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def encode_event(event: str, obj: object) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"
