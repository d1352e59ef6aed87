"""`unigate serve` as a user runs it: a real process, its config file, signals and bind rules."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest_asyncio

from tests.conftest import require_local_model
from tests.fakes.openai import FakeOpenAI

MSGS = [{"role": "user", "content": "hi"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(port: int, proc: asyncio.subprocess.Process, timeout: float = 20) -> None:
    import aiohttp

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as s:
        while loop.time() < deadline:
            if proc.returncode is not None:
                raise AssertionError(f"unigate exited with {proc.returncode}: {(await proc.stderr.read()).decode()}")  # type: ignore[union-attr]
            try:
                async with s.get(f"http://127.0.0.1:{port}/health/ready") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("unigate did not become ready")


async def start_serve(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("UNIGATE_")}
    full_env.update({"UNIGATE_LOCAL": "off", **env})
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "unigate", "serve", *args, env=full_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


@pytest_asyncio.fixture
async def served(tmp_path: Path, openai_fake: FakeOpenAI) -> AsyncIterator[tuple[int, asyncio.subprocess.Process]]:
    cfg = tmp_path / "unigate.yaml"
    cfg.write_text(
        "server:\n  master_key: ${TEST_MASTER}\n  shutdown_timeout: 10\n"
        "providers:\n  openai:\n    api_key: ${TEST_UPSTREAM_KEY}\n    base_url: " + openai_fake.url + "/v1\n"
        "deployments:\n  - name: fast\n    model: openai/gpt-4o-mini\n"
    )
    port = free_port()
    proc = await start_serve("--config", str(cfg), "--port", str(port), env={"TEST_MASTER": "sk-m", "TEST_UPSTREAM_KEY": "sk-up"})
    await wait_ready(port, proc)
    yield port, proc
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def test_served_process_answers_the_openai_sdk(served: tuple[int, asyncio.subprocess.Process], openai_fake: FakeOpenAI) -> None:
    port, _ = served
    c = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-m", max_retries=0)
    r = await c.chat.completions.create(model="fast", messages=MSGS)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "Hello from gpt-4o-mini!"
    assert openai_fake.last.headers["Authorization"] == "Bearer sk-up"
    s = await c.chat.completions.create(model="openai/gpt-4o-mini", messages=MSGS, stream=True)  # type: ignore[arg-type]
    assert "".join([ch.choices[0].delta.content or "" async for ch in s if ch.choices]) == "Hello from gpt-4o-mini!"
    e = await c.embeddings.create(model="openai/text-embedding-3-small", input="hello")
    assert len(e.data[0].embedding) == 3


async def test_sigterm_lets_inflight_stream_finish(served: tuple[int, asyncio.subprocess.Process]) -> None:
    port, proc = served
    c = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-m", max_retries=0)
    stream = await c.chat.completions.create(model="openai/trickle", messages=MSGS, stream=True)  # type: ignore[arg-type]
    it = stream.__aiter__()
    first = await it.__anext__()
    proc.send_signal(signal.SIGTERM)
    rest = [ch async for ch in it]
    text = (first.choices[0].delta.content or "") + "".join(ch.choices[0].delta.content or "" for ch in rest if ch.choices)
    assert text == "Hello from trickle!"
    assert await asyncio.wait_for(proc.wait(), 15) == 0


async def test_refuses_public_bind_without_master_key() -> None:
    proc = await start_serve("--host", "0.0.0.0", "--port", str(free_port()), env={})
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"master key" in err


async def test_invalid_config_names_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("server:\n  port: eighty\n")
    proc = await start_serve("--config", str(cfg), env={})
    _, err = await proc.communicate()
    assert proc.returncode == 2
    msg = err.decode()
    assert str(cfg) in msg and "$.server.port" in msg and "Expected `int`" in msg


async def test_two_workers_share_the_port(openai_fake: FakeOpenAI) -> None:
    port = free_port()
    proc = await start_serve("--port", str(port), "--workers", "2",
                             env={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": openai_fake.url + "/v1"})
    try:
        await wait_ready(port, proc)
        c = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        rs = await asyncio.gather(*[c.chat.completions.create(model="openai/m", messages=MSGS) for _ in range(8)])  # type: ignore[arg-type]
        assert all(r.choices[0].message.content == "Hello from m!" for r in rs)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0


async def test_zero_config_serve_answers_from_the_local_model() -> None:
    """The README's run command with no environment at all: the embedded model answers."""
    require_local_model()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("UNIGATE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "unigate", "serve", "--port", str(port), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_ready(port, proc)
        c = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
        ids = [m.id async for m in c.models.list()]
        assert "local/smollm2" in ids
        msgs = [{"role": "user", "content": "What is the capital of France?"}]
        r = await c.chat.completions.create(model="local/smollm2", messages=msgs, max_tokens=12, temperature=0)  # type: ignore[arg-type]
        assert r.choices[0].message.content and r.usage is not None and r.usage.completion_tokens > 0
        s = await c.chat.completions.create(model="local/smollm2", messages=msgs, max_tokens=12, temperature=0, stream=True)  # type: ignore[arg-type]
        streamed = "".join([ch.choices[0].delta.content or "" async for ch in s if ch.choices])
        assert streamed == r.choices[0].message.content
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
