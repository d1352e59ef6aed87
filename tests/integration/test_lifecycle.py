"""The process lifecycle of `unigate serve`, as an operator meets it: SIGTERM while requests and
streams are open (the drain holds `server.shutdown_timeout`, then ends streams with the
surface's error event), and `--workers N` supervision (a dead worker is replaced; workers do
not outlive their parent). Real processes on 127.0.0.1; every wait is bounded."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from tests.conftest import GatewayFactory, require_local_model
from tests.fakes.openai import FakeOpenAI, chunk
from tests.integration.test_serve import free_port, start_serve, wait_ready

SHUTDOWN_TIMEOUT = 2.0
#: what "about shutdown_timeout" may add: the grace for ending streams, and process exit
SLACK = 1.5
MSGS = [{"role": "user", "content": "hi"}]


class EndlessOpenAI(FakeOpenAI):
    """FakeOpenAI, plus model `endless`: a stream with a chunk every 100 ms that never ends."""

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        if body["model"] != "endless":
            return await super().chat(request)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: " + orjson.dumps(chunk("endless", {"role": "assistant", "content": ""})) + b"\n\n")
        n = 0
        try:
            while True:
                await resp.write(b"data: " + orjson.dumps(chunk("endless", {"content": f"{n} "})) + b"\n\n")
                n += 1
                await asyncio.sleep(0.1)
        except (ConnectionError, asyncio.CancelledError):  # the gateway hung up: that is the end
            return resp


@pytest_asyncio.fixture
async def endless() -> AsyncIterator[EndlessOpenAI]:
    fake = EndlessOpenAI()
    await fake.start()
    yield fake
    await fake.stop()


async def start_gateway_process(tmp_path: Path, upstream: FakeOpenAI, *args: str) -> tuple[int, asyncio.subprocess.Process]:
    cfg = tmp_path / "unigate.yaml"
    cfg.write_text(
        f"server:\n  shutdown_timeout: {SHUTDOWN_TIMEOUT}\n"
        "providers:\n  openai:\n    api_key: sk-up\n    base_url: " + upstream.url + "/v1\n"
    )
    port = free_port()
    proc = await start_serve("--config", str(cfg), "--port", str(port), *args, env={})
    await wait_ready(port, proc)
    return port, proc


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


def parse_sse(raw: bytes) -> list[tuple[str | None, bytes]]:
    """(event name, data) per event."""
    out: list[tuple[str | None, bytes]] = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = None, b""
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data = line[5:].strip()
        if data:
            out.append((name, data))
    return out


# ---------------------------------------------------------------------------------- SIGTERM drain


@pytest.mark.parametrize("surface", ["openai", "anthropic"])
async def test_sigterm_ends_an_endless_stream_with_an_error_event_at_the_deadline(
        tmp_path: Path, endless: EndlessOpenAI, surface: str) -> None:
    """The stream keeps flowing until shutdown_timeout after SIGTERM, then gets the surface's
    error event and a clean end of body; new connections are refused meanwhile; the process is
    gone within about shutdown_timeout (not twice that)."""
    port, proc = await start_gateway_process(tmp_path, endless)
    try:
        if surface == "openai":
            path, body = "/v1/chat/completions", {"model": "openai/endless", "messages": MSGS, "stream": True}
        else:
            path, body = "/v1/messages", {"model": "openai/endless", "messages": MSGS, "max_tokens": 50, "stream": True}
        raw = b""
        async with aiohttp.ClientSession() as s, s.post(f"http://127.0.0.1:{port}{path}", json=body,
                          timeout=aiohttp.ClientTimeout(total=SHUTDOWN_TIMEOUT * 4)) as r:
            assert r.status == 200
            while raw.count(b"\n\n") < 3:
                raw += await r.content.readany()
            before = len(parse_sse(raw))
            proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            await asyncio.sleep(0.3)
            with pytest.raises(aiohttp.ClientConnectionError):  # no longer accepting
                async with s.get(f"http://127.0.0.1:{port}/health/live") as h:
                    await h.read()
            # the whole remaining body; a body cut without its last chunk raises ClientPayloadError
            async for data in r.content.iter_any():
                raw += data
            ended = time.monotonic() - t0
        events = parse_sse(raw)
        # in-flight streams were not cut at the signal: ~20 more chunks came during the drain
        assert len(events) - before >= 10, events
        assert SHUTDOWN_TIMEOUT - 0.3 <= ended <= SHUTDOWN_TIMEOUT + SLACK, ended
        name, data = events[-1]
        err = orjson.loads(data)
        if surface == "openai":
            assert name is None and err["error"]["code"] == "service_unavailable", events[-3:]
        else:
            assert name == "error" and err["type"] == "error" and err["error"]["type"] == "overloaded_error", events[-3:]
        assert "shutting down" in (err["error"]["message"]), err
        assert await asyncio.wait_for(proc.wait(), SHUTDOWN_TIMEOUT + SLACK) == 0
        assert time.monotonic() - t0 <= SHUTDOWN_TIMEOUT + SLACK
    finally:
        await stop(proc)


async def test_sigterm_lets_a_short_inflight_request_complete(tmp_path: Path, endless: EndlessOpenAI) -> None:
    port, proc = await start_gateway_process(tmp_path, endless)
    try:
        async with aiohttp.ClientSession() as s:
            req = asyncio.ensure_future(s.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                               json={"model": "openai/slow-700", "messages": MSGS}))
            await asyncio.sleep(0.3)  # the request is with the upstream now
            proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            async with await asyncio.wait_for(req, SHUTDOWN_TIMEOUT + SLACK) as r:
                assert r.status == 200
                assert (await r.json())["choices"][0]["message"]["content"] == "Hello from slow-700!"
        assert await asyncio.wait_for(proc.wait(), SHUTDOWN_TIMEOUT + SLACK) == 0
        # nothing was left open: no reason to wait for the deadline
        assert time.monotonic() - t0 < SHUTDOWN_TIMEOUT
    finally:
        await stop(proc)


async def test_sigterm_answers_a_call_still_waiting_at_the_deadline_with_503(tmp_path: Path, endless: EndlessOpenAI) -> None:
    """A non-streamed call whose upstream takes longer than the drain gets a 503 the client can
    retry elsewhere, not a dropped connection, and does not hold the process past the deadline."""
    port, proc = await start_gateway_process(tmp_path, endless)
    try:
        async with aiohttp.ClientSession() as s:
            req = asyncio.ensure_future(s.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                               json={"model": "openai/slow-30000", "messages": MSGS}))
            await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            async with await asyncio.wait_for(req, SHUTDOWN_TIMEOUT + SLACK) as r:
                assert r.status == 503
                assert r.headers["Retry-After"] == "1"
                err = (await r.json())["error"]
                assert err["code"] == "service_unavailable" and "shutting down" in err["message"]
            assert time.monotonic() - t0 >= SHUTDOWN_TIMEOUT - 0.3
        assert await asyncio.wait_for(proc.wait(), SHUTDOWN_TIMEOUT + SLACK) == 0
        assert time.monotonic() - t0 <= SHUTDOWN_TIMEOUT + SLACK
    finally:
        await stop(proc)


async def test_drain_ends_streams_in_process(start_gateway: GatewayFactory, endless: EndlessOpenAI) -> None:
    """Drain.end_all() is what the server calls at the deadline: every open stream, on either
    surface, gets its error event and a clean end; a call entered afterwards is refused."""
    gw = await start_gateway(env={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": endless.url + "/v1"})
    drain = gw.gateway.drain
    async with aiohttp.ClientSession() as s:
        async def read(path: str, body: dict[str, object]) -> bytes:
            async with s.post(gw.url + path, json=body) as r:
                assert r.status == 200
                return b"".join([d async for d in r.content.iter_any()])

        chat = {"model": "openai/endless", "messages": MSGS, "stream": True}
        tasks = [asyncio.ensure_future(read("/v1/chat/completions", chat)),
                 asyncio.ensure_future(read("/v1/messages", {**chat, "max_tokens": 9}))]
        deadline = time.monotonic() + 5
        while drain.open < 2:
            assert time.monotonic() < deadline, "the streams did not start"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert drain.end_all() == 2
        openai_raw, anthropic_raw = await asyncio.wait_for(asyncio.gather(*tasks), 5)
        assert drain.open == 0
        assert orjson.loads(parse_sse(openai_raw)[-1][1])["error"]["code"] == "service_unavailable"
        name, data = parse_sse(anthropic_raw)[-1]
        assert name == "error" and "shutting down" in orjson.loads(data)["error"]["message"]
        async with s.post(gw.url + "/v1/chat/completions", json={"model": "openai/m", "messages": MSGS}) as r:
            assert r.status == 503


@pytest.mark.local_model
async def test_drain_ends_a_local_model_stream(start_gateway: GatewayFactory) -> None:
    """The same for a generation running inside the gateway (the embedded model): it is
    stopped, and the client gets the error event and a clean end."""
    require_local_model()
    gw = await start_gateway(env={"UNIGATE_LOCAL": "on"})
    # SmolLM2's end-of-generation tokens banned: the generation runs until it is stopped
    body = {"model": "local/smollm2", "messages": MSGS, "stream": True, "max_tokens": 1000, "temperature": 0,
            "logit_bias": {"0": -100, "2": -100, "4": -100}}
    async with aiohttp.ClientSession() as s, s.post(gw.url + "/v1/chat/completions", json=body) as r:
        assert r.status == 200
        raw = await r.content.readany()
        assert gw.gateway.drain.end_all() == 1
        raw += b"".join([d async for d in r.content.iter_any()])
    _name, data = parse_sse(raw)[-1]
    assert orjson.loads(data)["error"]["code"] == "service_unavailable"


async def test_drain_sections() -> None:
    """The mechanism alone: end_all() turns its own cancellation into ShuttingDown where the
    section waits; anyone else's cancellation passes through; a call whose stream section is
    over is left to finish; a section entered after the deadline ends at once."""
    from unigate.drain import Drain, ShuttingDown

    def me() -> asyncio.Task[object]:
        task = asyncio.current_task()
        assert task is not None
        return task

    drain = Drain()
    started = asyncio.Event()

    async def inline_stream() -> str:
        try:
            async with drain.streaming(me()):
                started.set()
                await asyncio.sleep(30)
        except ShuttingDown as e:
            assert not e.fallbackable and e.http_status == 503
            await asyncio.sleep(0)  # the task is usable afterwards: the cancellation was taken back
            return "ended"
        return "finished"

    t1 = asyncio.ensure_future(inline_stream())
    await started.wait()
    assert drain.open == 1
    assert drain.end_all() == 1
    assert await asyncio.wait_for(t1, 2) == "ended"
    assert drain.open == 0 and t1.cancelling() == 0

    drain = Drain()

    async def sleeper() -> None:
        await drain.call(me(), asyncio.sleep(30))

    t2 = asyncio.ensure_future(sleeper())
    await asyncio.sleep(0.01)
    t2.cancel()  # not end_all()'s: stays a cancellation
    with pytest.raises(asyncio.CancelledError):
        await t2
    assert drain.open == 0

    finishing = asyncio.Event()

    async def call_after_its_stream() -> str:
        await drain.stream(me(), asyncio.sleep(0))
        finishing.set()
        await asyncio.sleep(0.2)  # writing the end of the body: not to be interrupted
        return "complete"

    async def handler() -> str:
        return await drain.call(me(), call_after_its_stream())

    t3 = asyncio.ensure_future(handler())
    await finishing.wait()
    assert drain.open == 0 and drain.end_all() == 0
    assert await asyncio.wait_for(t3, 2) == "complete"

    with pytest.raises(ShuttingDown):  # after the deadline; the coroutine is closed, not leaked
        await drain.stream(me(), asyncio.sleep(30))
    with pytest.raises(ShuttingDown):
        async with drain.streaming(me()):
            raise AssertionError("not entered")


# ---------------------------------------------------------------------------------- --workers N


def children(pid: int) -> set[int]:
    """Live child processes of `pid`, from /proc (no psutil here; no /proc/*/children either)."""
    out: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != b"Z":
            out.add(int(entry))
    return out


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] != b"Z"


async def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def all_ok(port: int, n: int = 8, tries: int = 1) -> None:
    """n concurrent calls all answer 200. `tries` > 1 retries a connection the kernel reset:
    SIGKILL on one of the SO_REUSEPORT listeners resets the connections it had queued, and for
    a few ms after it some new ones too (seen on today's main as well)."""
    async with aiohttp.ClientSession() as s:
        async def one() -> int:
            for attempt in range(tries):
                try:
                    async with s.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                      json={"model": "openai/m", "messages": MSGS}) as r:
                        await r.read()
                        return r.status
                except aiohttp.ClientConnectionError:
                    if attempt == tries - 1:
                        raise
                    await asyncio.sleep(0.1)
            raise AssertionError("unreachable")

        assert await asyncio.gather(*[one() for _ in range(n)]) == [200] * n


@pytest_asyncio.fixture
async def two_workers(tmp_path: Path, endless: EndlessOpenAI) -> AsyncIterator[tuple[int, asyncio.subprocess.Process]]:
    port, proc = await start_gateway_process(tmp_path, endless, "--workers", "2")
    await until(lambda: len(children(proc.pid)) == 2, 10, "two workers")
    workers = children(proc.pid)
    yield port, proc
    for pid in workers | children(proc.pid):  # leave no worker behind, whatever happened
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    await stop(proc)


async def test_a_killed_worker_is_replaced(two_workers: tuple[int, asyncio.subprocess.Process]) -> None:
    port, proc = two_workers
    first = children(proc.pid)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    await until(lambda: victim not in children(proc.pid), 5, "the parent to reap the killed worker")
    await all_ok(port, tries=5)  # the other worker serves meanwhile
    await until(lambda: len(children(proc.pid)) == 2, 10, "a replacement worker")
    replacement = (children(proc.pid) - first).pop()
    # the replacement is up and serving, not crash-looping
    await asyncio.sleep(1.0)
    assert alive(replacement) and len(children(proc.pid)) == 2
    await all_ok(port, 16)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), SHUTDOWN_TIMEOUT + SLACK + 2) == 0
    assert not any(alive(p) for p in first | {replacement})


async def test_workers_exit_when_the_parent_is_killed(two_workers: tuple[int, asyncio.subprocess.Process]) -> None:
    port, proc = two_workers
    workers = children(proc.pid)
    proc.kill()
    await proc.wait()
    await until(lambda: not any(alive(p) for p in workers), 5, "the orphaned workers to exit")
    with socket.socket() as s:  # and nobody serves the port any more
        assert s.connect_ex(("127.0.0.1", port)) != 0


async def test_a_crash_looping_worker_makes_the_parent_give_up(tmp_path: Path, endless: EndlessOpenAI) -> None:
    """Workers that cannot start (the port is taken by a socket without SO_REUSEPORT) are
    restarted with back-off a few times, then the parent exits 1 and says why."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "unigate.yaml"
        cfg.write_text("providers:\n  openai:\n    api_key: sk-up\n    base_url: " + endless.url + "/v1\n")
        proc = await start_serve("--config", str(cfg), "--port", str(port), "--workers", "2", env={})
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            await stop(proc)
    assert proc.returncode == 1
    assert b"crash-looping; giving up" in err, err.decode()[-2000:]
