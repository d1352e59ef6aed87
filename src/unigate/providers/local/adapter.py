"""The `local` dialect: an in-process adapter (see `InProcessAdapter` in providers/base.py). The
pipeline awaits `chat`/`embeddings` or iterates `chat_stream_iter`; the work itself runs in the
model's worker thread (engine.py), so the event loop only waits."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from unigate.errors import UnsupportedFeature
from unigate.providers.base import AdapterBase, Deployment, usage_dict
from unigate.providers.local.engine import END, Job, LocalEngine, Work
from unigate.providers.local.generate import chat_work, embed_work
from unigate.providers.local.params import chat_params, embedding_inputs

JSON = dict[str, Any]


def engine_for(dep: Deployment) -> LocalEngine:
    engine: LocalEngine = dep.provider.options["engines"][dep.model]
    return engine


def _queue_opts(dep: Deployment) -> dict[str, Any]:
    o = dep.provider.options
    return {"max_queue": o["max_queue"], "queue_timeout": o["queue_timeout"]}


class LocalAdapter(AdapterBase):
    dialect: ClassVar[str] = "local"
    in_process: ClassVar[bool] = True

    async def chat(self, body: JSON, dep: Deployment) -> JSON:
        engine = engine_for(dep)
        _check_chat_model(engine, dep)
        work = chat_work(chat_params(body, dep.public_id), dep.model, stream=False)
        return await _run_to_end(engine, work, dep)

    def chat_stream_iter(self, body: JSON, dep: Deployment) -> LocalStream:
        engine = engine_for(dep)
        _check_chat_model(engine, dep)
        # translate now: a bad request gets its 400 before it queues for the model
        work = chat_work(chat_params(body, dep.public_id), dep.model, stream=True)
        return LocalStream(engine, work, _queue_opts(dep))

    async def embeddings(self, body: JSON, dep: Deployment) -> JSON:
        engine = engine_for(dep)
        if not engine.spec.embedding:
            raise UnsupportedFeature(
                f"local: {dep.public_id} is a chat model; for /v1/embeddings declare a GGUF under local.models "
                "with `embedding: true`",
                param="model",
            )
        dims = body.get("dimensions")
        if dims is not None and type(dims) is not int:
            raise UnsupportedFeature("local: 'dimensions' must be an integer", param="dimensions")
        work = embed_work(embedding_inputs(body, dep.public_id), dep.model,
                          encoding_format=body.get("encoding_format"), dimensions=dims)
        return await _run_to_end(engine, work, dep)


def _check_chat_model(engine: LocalEngine, dep: Deployment) -> None:
    if engine.spec.embedding:
        raise UnsupportedFeature(f"local: {dep.public_id} is an embedding model; use it with /v1/embeddings",
                                 param="model")


async def _run_to_end(engine: LocalEngine, work: Work, dep: Deployment) -> JSON:
    job = await engine.run(work, **_queue_opts(dep))
    result: JSON | None = None
    try:
        while (item := await job.next()) is not END:
            result = item
    except asyncio.CancelledError:
        engine.cancel(job)
        raise
    assert result is not None, "a finished local job always returns its answer"
    return result


class LocalStream:
    """Canonical chunks of one streamed generation (an `InProcessStream`). The job is queued on the
    first `__anext__`, so a busy model's 503 surfaces before the response starts and the router
    can still fall back."""

    def __init__(self, engine: LocalEngine, work: Work, opts: dict[str, Any]) -> None:
        self.usage: JSON | None = None
        self._engine = engine
        self._work = work
        self._opts = opts
        self._job: Job | None = None
        self._over = False

    def __aiter__(self) -> LocalStream:
        return self

    async def __anext__(self) -> JSON:
        if self._over:
            raise StopAsyncIteration
        try:
            if self._job is None:
                self._job = await self._engine.run(self._work, **self._opts)
            item = await self._job.next()
        except BaseException:
            self._over = True
            if self._job is not None:
                self._engine.cancel(self._job)
            raise
        if item is END:
            self._over = True
            self._set_usage(self._job)
            raise StopAsyncIteration
        chunk: JSON = item
        return chunk

    async def aclose(self) -> None:
        """Done, or the client left: stop the generation (within one token) and let go."""
        self._over = True
        job = self._job
        if job is None:
            return
        if job.state != "done":
            await self._engine.stop(job)
        self._set_usage(job)

    def _set_usage(self, job: Job) -> None:
        if self.usage is None and job.state == "done":
            self.usage = usage_dict(job.prompt_tokens, job.completion_tokens)
