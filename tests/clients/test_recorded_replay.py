"""The coding agents' real requests (recorded/<agent>.json, made by test_coding_agents.py with
UNIGATE_RECORD_CLIENTS=1: headers with secrets replaced, and the body) replayed against the
gateway and the scripted upstream. Needs no agent installed: it keeps each agent's wire format
tested wherever the suite runs."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from tests.clients.conftest import MASTER
from tests.clients.recorder import REDACTED, load
from tests.clients.upstream import ANSWER, ScriptedOpenAI
from tests.conftest import RunningGateway

AGENTS = ["claude-code", "codex", "opencode"]
MODEL_PATHS = ("/v1/messages", "/v1/responses", "/v1/chat/completions")


def model_requests(agent: str) -> list[dict[str, Any]]:
    reqs = [r for r in load(agent) if r["path"].split("?")[0] in MODEL_PATHS]
    assert reqs, f"recorded/{agent}.json holds no model request"
    return reqs


def with_key(headers: dict[str, str]) -> dict[str, str]:
    """The recorded headers with our key where the secret was."""
    out = dict(headers)
    for name, value in headers.items():
        if value == REDACTED:
            out[name] = f"Bearer {MASTER}" if name == "authorization" else MASTER
    return out


def answer_text(path: str, raw: bytes, content_type: str) -> str:
    """The assistant's text in an answer of that endpoint, JSON or SSE."""
    if not content_type.startswith("text/event-stream"):
        obj = orjson.loads(raw)
        if path.startswith("/v1/messages"):
            return "".join(b.get("text", "") for b in obj["content"])
        if path.startswith("/v1/responses"):
            return "".join(p.get("text", "") for item in obj["output"] if item["type"] == "message"
                           for p in item["content"])
        return str(obj["choices"][0]["message"]["content"])
    text = []
    for line in raw.decode().splitlines():
        if not line.startswith("data:") or line.strip() == "data: [DONE]":
            continue
        ev = orjson.loads(line[5:])
        if path.startswith("/v1/messages") and ev.get("type") == "content_block_delta":
            text.append(ev["delta"].get("text", ""))
        elif path.startswith("/v1/responses") and ev.get("type") == "response.output_text.delta":
            text.append(ev["delta"])
        elif path.startswith("/v1/chat") and ev.get("choices"):
            text.append(ev["choices"][0]["delta"].get("content") or "")
    return "".join(text)


@pytest.mark.parametrize("agent", AGENTS)
async def test_recorded_requests_replay(agent: str, gw: RunningGateway, scripted: ScriptedOpenAI) -> None:
    scripted.call_tools = False  # the agents offer tools; the recorded turn was answered with text
    async with aiohttp.ClientSession() as http:
        for req in model_requests(agent):
            body = req["body"]
            async with http.request(req["method"], gw.url + req["path"], headers=with_key(req["headers"]),
                                    data=orjson.dumps(body)) as resp:
                raw = await resp.read()
                assert resp.status == 200, (req["path"], raw[:2000])
                text = answer_text(req["path"], raw, resp.headers.get("Content-Type", ""))
            assert ANSWER in text, (req["path"], raw[-2000:])
            sent = scripted.chats[-1]
            # the model the agent named reached the upstream (the provider prefix stripped)
            assert sent["model"] == body["model"].removeprefix("mock/")
            assert sent["stream"] is bool(body.get("stream"))
