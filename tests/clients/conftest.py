"""The client matrix's gateway: one scripted OpenAI-compatible upstream (upstream.py) behind the
provider id `mock`, reached by `mock/<anything>` and by the bare vendor names coding agents send
(`claude-*`, `gpt-*`), with a master key as the clients' API key. The provider is the `vllm`
preset, an OpenAI-compatible server without the Responses API: Responses requests are translated
to Chat Completions (the path every non-OpenAI model takes; the pass-through to OpenAI's own
/v1/responses is tested with the responses surface)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from tests.clients.upstream import ScriptedOpenAI
from tests.conftest import GatewayFactory, RunningGateway

MASTER = "sk-master-test"
MODEL = "mock/scripted-model"


def gateway_config(upstream_url: str) -> dict[str, Any]:
    return {"providers": {"mock": {"preset": "vllm", "base_url": upstream_url + "/v1", "api_key": "sk-upstream-test"}},
            "routing": {"bare_names": {"claude-*": ["mock"], "gpt-*": ["mock"]}}}


@pytest_asyncio.fixture
async def scripted() -> AsyncIterator[ScriptedOpenAI]:
    fake = ScriptedOpenAI()
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def gw(start_gateway: GatewayFactory, scripted: ScriptedOpenAI) -> RunningGateway:
    return await start_gateway(gateway_config(scripted.url), env={"UNIGATE_MASTER_KEY": MASTER})
