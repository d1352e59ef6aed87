"""The coding agents from npm, each answering one prompt through the gateway: Claude Code on the
Anthropic surface, Codex CLI on the Responses API, opencode on Chat Completions. The upstream is
the scripted mock with tools off (the agents offer a dozen tools every turn; here the model just
answers), so the fixed answer must reach the agent's stdout and the mock must have seen the call.

Each agent runs behind a recording proxy (recorder.py); with UNIGATE_RECORD_CLIENTS=1 its
requests are saved to recorded/<agent>.json, which test_recorded_replay.py replays."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.clients.agents import (
    RECORD,
    Finished,
    agent_binary,
    base_env,
    run_agent,
)
from tests.clients.conftest import MASTER, MODEL
from tests.clients.recorder import Recorder
from tests.clients.upstream import ANSWER, ScriptedOpenAI
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.anthropic import FakeAnthropic

PROMPT = "What colour is the sky? Answer in one sentence."
CLAUDE_MAIN = "claude-sonnet-4-5-20250929"
CLAUDE_SMALL = "claude-haiku-4-5-20251001"


@pytest_asyncio.fixture
async def recorder(gw: RunningGateway) -> AsyncIterator[Recorder]:
    rec = await Recorder(gw.url).start()
    yield rec
    await rec.stop()


@pytest.fixture
def text_only(scripted: ScriptedOpenAI) -> ScriptedOpenAI:
    scripted.call_tools = False
    return scripted


def finish(agent: str | None, rec: Recorder, scripted: ScriptedOpenAI, done: Finished, model_paths: tuple[str, ...]) -> None:
    if RECORD and agent:  # saved before the checks: a failing agent's request is what one needs to see
        rec.save(agent)
    assert done.code == 0, done.stderr[-4000:]
    assert ANSWER in done.stdout, done.stdout
    assert scripted.chats, "the upstream mock saw no request"
    assert any(r["path"].split("?")[0] in model_paths for r in rec.requests), [r["path"] for r in rec.requests]


@pytest.mark.parametrize("key_var", ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"])
async def test_claude_code(key_var: str, tmp_path: Path, recorder: Recorder, text_only: ScriptedOpenAI) -> None:
    """ANTHROPIC_API_KEY is sent as x-api-key, ANTHROPIC_AUTH_TOKEN as a Bearer token: both are keys here."""
    claude = agent_binary("claude")
    env = base_env(tmp_path) | {
        "ANTHROPIC_BASE_URL": recorder.url, key_var: MASTER,
        "ANTHROPIC_MODEL": CLAUDE_MAIN, "ANTHROPIC_DEFAULT_SONNET_MODEL": CLAUDE_MAIN,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": CLAUDE_SMALL, "ANTHROPIC_SMALL_FAST_MODEL": CLAUDE_SMALL,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1", "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1"}
    done = await run_agent([str(claude), "-p", PROMPT, "--output-format", "text"], env, tmp_path)
    finish("claude-code" if key_var == "ANTHROPIC_API_KEY" else None, recorder, text_only, done,
           ("/v1/messages",))
    sent = {k.lower(): v for k, v in recorder.requests[-1]["headers"].items()}
    if key_var == "ANTHROPIC_API_KEY":
        assert sent["x-api-key"] == MASTER
    else:
        assert sent["authorization"] == f"Bearer {MASTER}" and "x-api-key" not in sent
    assert {c["model"] for c in text_only.chats} <= {CLAUDE_MAIN, CLAUDE_SMALL}


async def test_codex_exec(tmp_path: Path, recorder: Recorder, text_only: ScriptedOpenAI) -> None:
    codex = agent_binary("codex")
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(codex_config(recorder.url + "/v1"))
    env = base_env(tmp_path) | {"CODEX_HOME": str(home), "UNIGATE_API_KEY": MASTER}
    done = await run_agent([str(codex), "exec", "--skip-git-repo-check", "--sandbox", "read-only", PROMPT],
                           env, tmp_path)
    if done.code != 0 and RECORD:
        recorder.save("codex")
    finish("codex", recorder, text_only, done, ("/v1/responses",))


def codex_config(base_url: str) -> str:
    return f"""model = "{MODEL}"
model_provider = "unigate"
check_for_update_on_startup = false
# built-in tools the gateway cannot run (OpenAI runs web search server-side): off
web_search = "disabled"

[agents]
enabled = false  # no sub-agent tools (a tool namespace): one agent, one answer

[model_providers.unigate]
name = "unigate"
base_url = "{base_url}"
env_key = "UNIGATE_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"""


async def test_opencode_run(tmp_path: Path, recorder: Recorder, text_only: ScriptedOpenAI) -> None:
    opencode = agent_binary("opencode")
    models = tmp_path / "models.json"
    models.write_text("{}")  # models.dev's catalogue, empty: opencode must not fetch it
    env = base_env(tmp_path) | {
        "OPENCODE_CONFIG_CONTENT": json.dumps(opencode_config(recorder.url + "/v1")),
        "OPENCODE_MODELS_PATH": str(models), "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_AUTOUPDATE": "1", "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1", "OPENCODE_DISABLE_SHARE": "1", "UNIGATE_API_KEY": MASTER}
    done = await run_agent([str(opencode), "run", "-m", f"unigate/{MODEL}", PROMPT], env, tmp_path)
    finish("opencode", recorder, text_only, done, ("/v1/chat/completions",))


def opencode_config(base_url: str) -> dict[str, object]:
    return {"$schema": "https://opencode.ai/config.json", "autoupdate": False, "share": "disabled",
            "provider": {"unigate": {"npm": "@ai-sdk/openai-compatible", "name": "unigate",
                                     "options": {"baseURL": base_url, "apiKey": "{env:UNIGATE_API_KEY}"},
                                     "models": {MODEL: {"name": "scripted model"}}}}}


async def test_claude_code_on_an_anthropic_upstream(tmp_path: Path, start_gateway: GatewayFactory) -> None:
    """The common set-up: Claude Code's bare `claude-*` names go to Anthropic (the default rule), and
    the request is passed through as sent, betas and thinking included, to a real-format fake."""
    claude = agent_binary("claude")
    fake = FakeAnthropic()
    await fake.start()
    try:
        gw = await start_gateway(env={"ANTHROPIC_API_KEY": fake.api_key, "ANTHROPIC_BASE_URL": fake.url,
                                      "UNIGATE_MASTER_KEY": MASTER})
        env = base_env(tmp_path) | {
            "ANTHROPIC_BASE_URL": gw.url, "ANTHROPIC_API_KEY": MASTER, "ANTHROPIC_MODEL": CLAUDE_MAIN,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": CLAUDE_SMALL, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1"}
        done = await run_agent([str(claude), "-p", PROMPT, "--output-format", "text"], env, tmp_path)
        assert done.code == 0, done.stderr[-4000:]
        assert f"Hello from {CLAUDE_MAIN}!" in done.stdout, done.stdout
        main = [r for r in fake.requests if r.json.get("model") == CLAUDE_MAIN]
        assert main, [r.path for r in fake.requests]
        assert "claude-code-20250219" in main[-1].headers.get("anthropic-beta", "")  # forwarded as sent
        assert main[-1].headers["x-api-key"] == fake.api_key  # the gateway's key upstream, not the client's
        assert not fake.violations, fake.violations
    finally:
        await fake.stop()
