"""The local engine's thread, queue and cancellation, with plain Python work in place of
llama.cpp (the real model is exercised in tests/integration/test_local_model.py). Work that must
stay "running" blocks on a threading.Event the test releases."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from unigate.errors import InvalidRequest, ServiceUnavailable, UpstreamUnavailable
from unigate.providers.local.engine import END, Job, LocalEngine, ModelSpec

Q = {"max_queue": 4, "queue_timeout": 30.0}


class Loader:
    def __init__(self, fail: int = 0) -> None:
        self.threads: list[str] = []
        self.fail = fail

    def __call__(self, spec: ModelSpec) -> Any:
        self.threads.append(threading.current_thread().name)
        if self.fail:
            self.fail -= 1
            raise ValueError("Failed to load model from file")
        return object()


def engine(loader: Loader | None = None) -> LocalEngine:
    return LocalEngine(ModelSpec("m", "/models/m.gguf", 512, 1), loader or Loader())


def blocking(gate: threading.Event, ran: list[str], tag: str) -> Any:
    def work(model: Any, job: Job) -> dict[str, str]:
        ran.append(tag)
        while not gate.wait(0.005):
            if job.cancelled:
                job.finish_reason = "cancelled"
                return {"tag": tag, "cancelled": "yes"}
        job.finish_reason = "stop"
        return {"tag": tag}

    return work


async def result(job: Job) -> Any:
    out = None
    while (item := await job.next()) is not END:
        out = item
    return out


async def test_loads_lazily_once_in_the_worker_thread() -> None:
    loader = Loader()
    eng = engine(loader)
    assert not eng.loaded and loader.threads == []
    gate, ran = threading.Event(), []
    gate.set()
    for tag in ("a", "b"):
        assert await result(await eng.run(blocking(gate, ran, tag), **Q)) == {"tag": tag}
    assert loader.threads == ["unigate-local-m"] and eng.loaded
    assert eng.stats.completed == 2 and list(eng.history) == [("stop", 0), ("stop", 0)]
    eng.shutdown()


async def test_queue_full_and_queue_timeout() -> None:
    eng = engine()
    gate, ran = threading.Event(), []
    first = await eng.run(blocking(gate, ran, "a"), max_queue=1, queue_timeout=30)
    queued = asyncio.create_task(eng.run(blocking(gate, ran, "b"), max_queue=1, queue_timeout=30))
    while eng.pending != 1:
        await asyncio.sleep(0.005)
    with pytest.raises(ServiceUnavailable) as ei:
        await eng.run(blocking(gate, ran, "c"), max_queue=1, queue_timeout=30)
    assert ei.value.http_status == 503 and ei.value.retry_after is not None and ei.value.retry_after >= 1
    assert "local.max_queue" in ei.value.message
    with pytest.raises(ServiceUnavailable, match=r"local\.queue_timeout"):
        await eng.run(blocking(gate, ran, "d"), max_queue=5, queue_timeout=0.05)
    assert eng.pending == 1  # "d" left the queue; "b" still waits
    gate.set()
    assert await result(first) == {"tag": "a"}
    assert await result(await queued) == {"tag": "b"}
    assert ran == ["a", "b"]  # the rejected and timed-out requests never ran
    assert (eng.stats.rejected_full, eng.stats.rejected_timeout) == (1, 1)
    eng.shutdown()


async def test_cancel_while_queued_and_while_running() -> None:
    eng = engine()
    gate, ran = threading.Event(), []
    running = await eng.run(blocking(gate, ran, "a"), **Q)
    waiter = asyncio.create_task(eng.run(blocking(gate, ran, "b"), **Q))
    while eng.pending != 1:
        await asyncio.sleep(0.005)
    waiter.cancel()  # the client left while waiting: it leaves the queue
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert eng.pending == 0
    await eng.stop(running)  # returns once the worker has let go
    assert running.state == "done" and eng.running is None
    assert eng.history[-1] == ("cancelled", 0) and eng.stats.cancelled == 1
    gate.set()
    assert await result(await eng.run(blocking(gate, ran, "c"), **Q)) == {"tag": "c"}
    assert ran == ["a", "c"]
    eng.shutdown()


async def test_load_failure_is_503_and_retried() -> None:
    loader = Loader(fail=1)
    eng = engine(loader)
    gate, ran = threading.Event(), []
    gate.set()
    with pytest.raises(ServiceUnavailable, match=r"could not load local/m from /models/m\.gguf"):
        await result(await eng.run(blocking(gate, ran, "a"), **Q))
    assert await result(await eng.run(blocking(gate, ran, "b"), **Q)) == {"tag": "b"}
    assert len(loader.threads) == 2 and eng.stats.failed == 1
    eng.shutdown()


@pytest.mark.parametrize(
    "exc, cls, code",
    [
        (ValueError("Requested tokens (3000) exceed context window of 2048"), InvalidRequest, "context_length_exceeded"),
        (ValueError("Invalid chat handler: nope"), InvalidRequest, None),
        (RuntimeError("llama_decode returned -3"), UpstreamUnavailable, "upstream_unavailable"),
    ],
)
async def test_errors_in_the_worker_reach_the_request(exc: Exception, cls: type, code: str | None) -> None:
    eng = engine()

    def work(model: Any, job: Job) -> None:
        raise exc

    job = await eng.run(work, **Q)
    with pytest.raises(cls) as ei:
        await result(job)
    assert ei.value.code == code and ei.value.message.startswith("local: ")
    await job.done  # the error is delivered first, then the worker finishes its bookkeeping
    assert eng.running is None and eng.history[-1] == ("error", 0)
    eng.shutdown()
