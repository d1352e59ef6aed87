"""What aiohttp's HTTP server says on its own, before any handler of ours runs.

A request the HTTP parser refuses (a NUL in a header, a bad chunk size, an unknown
Content-Encoding) is answered by aiohttp's `RequestHandler.handle_error`, which quotes the
offending line in a text/plain body and logs it with a traceback at ERROR: with
`Authorization: Bearer <key>\\0` that line is the client's key. aiohttp has no option for
this, so `install()` replaces that one method (once per process): the answer becomes our JSON
envelope naming only the kind of fault, and the log line says the same, at INFO.

It also replaces the `Server: Python/3.x aiohttp/3.y` header, which tells an attacker the exact
versions to look up, with `Server: unigate`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from aiohttp import web, web_protocol, web_response

log = logging.getLogger("unigate.http")

SERVER_HEADER = "unigate"
_installed = False
#: the fault's name: the first words of aiohttp's message, before any quoted input
_KIND = re.compile(r"[A-Za-z][A-Za-z -]{0,80}")


def _kind(message: str) -> str:
    m = _KIND.match(message.strip())
    return m.group(0).strip() if m else "bad request"


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    web_response.SERVER_SOFTWARE = SERVER_HEADER  # type: ignore[attr-defined]  # not in its __all__
    original = web_protocol.RequestHandler.handle_error

    def handle_error(self: web_protocol.RequestHandler, request: Any, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            return original(self, request, status, exc, message)  # our handlers never let one through
        kind = _kind(message or "")
        log.info("refused a malformed HTTP request from %s: %s (HTTP %d)", request.remote, kind, status)
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        body = {"error": {"message": f"Malformed HTTP request: {kind}.", "type": "invalid_request_error",
                          "param": None, "code": "bad_http_request"}}
        resp = web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
        resp.force_close()
        return resp

    web_protocol.RequestHandler.handle_error = handle_error  # type: ignore[method-assign]
