"""The embedded model behind the transport's contract.

An HTTP upstream is reached through `transport.Exchange`; the engine in this process through
`LocalExchange`, which answers the way an OpenAI-compatible upstream does: a JSON body, or an
SSE stream of chunks that ends with a usage chunk and `[DONE]`. So the local adapter is a
passthrough adapter like OpenAI's, and relay, usage, cost and response headers are the same
code for both (no in-process branch in the pipeline).

Entering the exchange queues the job and waits for its first item: a full queue or a queue
timeout (503 + Retry-After), a model that fails to load, or a prompt it refuses are errors
before any byte reaches the client, so the router may still fall back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import orjson
from multidict import CIMultiDict

from unigate.canonical.types import JSON
from unigate.providers import sse
from unigate.providers.base import usage_dict
from unigate.providers.local.engine import END, Job, LocalEngine, Work

_NO_HEADERS: CIMultiDict[str] = CIMultiDict()


class LocalExchange:
    __slots__ = ("_engine", "_job", "_opts", "_stream", "_work")

    def __init__(self, engine: LocalEngine, work: Work, opts: dict[str, Any], stream: bool) -> None:
        self._engine, self._work, self._opts, self._stream = engine, work, opts, stream
        self._job: Job | None = None

    async def __aenter__(self) -> LocalResponse:
        job = self._job = await self._engine.run(self._work, **self._opts)
        first = await job.next()  # raises the job's error (the engine maps it to a GatewayError)
        if not self._stream:
            answer = first
            while (item := await job.next()) is not END:
                answer = item
            return LocalResponse(self._engine, job, body=orjson.dumps(answer))
        return LocalResponse(self._engine, job, first=first)

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        job = self._job
        if job is not None and job.state != "done":
            # the call ended early (a failure, a cancellation, a client that left): stop the
            # generation within one token and wait until the worker has let go of the model
            await self._engine.stop(job)


class LocalResponse:
    """What the pipeline reads of an upstream response (aiohttp.ClientResponse's few members)."""

    status = 200
    headers = _NO_HEADERS

    def __init__(self, engine: LocalEngine, job: Job, *, body: bytes | None = None, first: JSON | None = None) -> None:
        self._engine, self._job, self._body, self._first = engine, job, body, first
        self.content_type = "application/json" if body is not None else "text/event-stream"
        self.content_length = len(body) if body is not None else None
        self.content = self  # `resp.content.readany()`, as aiohttp spells it
        self._reader: AsyncIterator[bytes] | None = None

    async def read(self) -> bytes:
        if self._body is not None:
            return self._body
        return b"".join([piece async for piece in self.iter_any()])

    def iter_any(self) -> AsyncIterator[bytes]:
        return self._pieces()

    async def readany(self) -> bytes:
        """The next piece, b"" at the end (aiohttp's StreamReader.readany)."""
        if self._reader is None:
            self._reader = self._pieces()
        try:
            return await anext(self._reader)
        except StopAsyncIteration:
            return b""

    async def _pieces(self) -> AsyncIterator[bytes]:
        if self._body is not None:
            yield self._body
            return
        item: Any = self._first
        last: JSON = {}
        while item is not END:
            last = item
            yield sse.encode(item)
            item = await self._job.next()
        job = self._job
        usage = {"id": last.get("id", ""), "object": "chat.completion.chunk", "created": last.get("created", 0),
                 "model": last.get("model", ""), "choices": [],
                 "usage": usage_dict(job.prompt_tokens, job.completion_tokens)}
        yield sse.encode(usage) + sse.DONE

    def abandon(self) -> None:
        """The client left: stop generating at the next token. The stream then ends with the
        usage of what was generated, which the relay records as for any upstream."""
        self._engine.cancel(self._job)

    def close(self) -> None:
        self._engine.cancel(self._job)
