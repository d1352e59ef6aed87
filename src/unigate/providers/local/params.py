"""Canonical (OpenAI Chat Completions) request -> keyword arguments for llama-cpp-python's
`Llama.create_chat_completion`, checked on the event loop before anything is queued, so a bad
request gets its 400 at once instead of after waiting for the model.

Nothing here imports llama_cpp: the JSON-schema grammar is compiled in the worker thread
(see `generate.py`), where the library is loaded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from unigate.canonical.types import JSON
from unigate.errors import InvalidRequest, UnsupportedFeature
from unigate.providers.local.tools import (
    ToolTurn,
    assistant_calls_text,
    call_names,
    tool_result_text,
    tool_turn,
    with_tools_prompt,
)

#: OpenAI's defaults, so the same request means the same thing here as on a cloud model.
#: (llama-cpp-python's own chat defaults are temperature 0.2, top_p 0.95.)
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0

_ROLES_TEXT = "system, developer, user, assistant and tool"


@dataclass(slots=True)
class ChatParams:
    """What one chat request asks the engine for."""

    messages: list[JSON]
    kwargs: JSON
    #: the JSON schema to constrain the output with (json_schema), `{}` for any JSON object
    #: (json_object), None for free text.
    json_schema: JSON | None = None
    #: logit_bias with integer token ids, checked against the vocabulary in the worker.
    logit_bias: dict[int, float] = field(default_factory=dict)
    #: this turn must call one of these tools (tools.py has the policy), None for text.
    tools: ToolTurn | None = None


def chat_params(body: JSON, public_id: str) -> ChatParams:
    """Translate and check one request; raise InvalidRequest/UnsupportedFeature (400) for what the
    local engine cannot do, rather than quietly answering something else."""
    _reject_unsupported(body, public_id)
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None and max_tokens < 1:
        param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        raise InvalidRequest(f"local: Invalid '{param}': must be at least 1, got {max_tokens}.",
                             param=param, code="invalid_value")
    seed = body.get("seed")
    if seed is None:
        # llama-cpp-python re-seeds an unseeded call from the previous call's seed
        # (llama.py `_create_completion`: `random.Random(self._seed)`), so without this an
        # unseeded request after a seeded one would repeat the same "random" answer.
        seed = random.getrandbits(31)
    temperature = body.get("temperature")
    top_p = body.get("top_p")
    kwargs: JSON = {
        "max_tokens": max_tokens,
        "temperature": DEFAULT_TEMPERATURE if temperature is None else float(temperature),
        "top_p": DEFAULT_TOP_P if top_p is None else float(top_p),
        # llama.cpp takes a uint32 seed and reads 0xFFFFFFFF (LLAMA_DEFAULT_SEED) as "pick one at
        # random", so any OpenAI seed (negative ones too) is folded into 0..0xFFFFFFFE.
        "seed": int(seed) % 0xFFFFFFFF,
        "presence_penalty": float(body.get("presence_penalty") or 0.0),
        "frequency_penalty": float(body.get("frequency_penalty") or 0.0),
    }
    raw = body["messages"]
    names = call_names(raw)  # one pass over the messages: nothing next to a generation's cost
    messages = [_message(m, i, public_id, names) for i, m in enumerate(raw)]
    turn = tool_turn(body, raw, public_id)
    json_schema = _json_schema(body.get("response_format"))
    stop = body.get("stop")
    if turn is not None:
        # the call's JSON is the output: response_format shapes text answers, and a stop
        # sequence could cut the call mid-way, so neither applies to a tool-call turn
        messages = with_tools_prompt(messages, turn)
        json_schema = stop = None
    if stop:
        kwargs["stop"] = [stop] if isinstance(stop, str) else [s for s in stop if s]
    return ChatParams(
        messages=messages,
        kwargs=kwargs,
        json_schema=json_schema,
        logit_bias=_logit_bias(body.get("logit_bias")),
        tools=turn,
    )


def _reject_unsupported(body: JSON, public_id: str) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise UnsupportedFeature(f"local: {public_id} generates one choice per request; 'n' must be 1.", param="n")
    if body.get("functions") and body.get("function_call") != "none":
        raise UnsupportedFeature(f"local: {public_id} takes function tools in 'tools', not the deprecated "
                                 "'functions'.", param="functions")
    if body.get("logprobs") or body.get("top_logprobs"):
        # logprobs need the model loaded with logits_all=True, which costs memory on every call.
        raise UnsupportedFeature(f"local: {public_id} does not return logprobs.", param="logprobs")
    modalities = body.get("modalities")
    if body.get("audio") is not None or (isinstance(modalities, list) and "audio" in modalities):
        raise UnsupportedFeature(f"local: {public_id} is a text-only model; audio output is not supported.",
                                 param="modalities")
    if body.get("prediction") is not None:
        raise UnsupportedFeature(f"local: {public_id} does not support predicted outputs.", param="prediction")


def _message(m: JSON, i: int, public_id: str, names: dict[str, str]) -> JSON:
    role = m["role"]
    if role == "developer":
        role = "system"  # chat templates in GGUF files know system, not OpenAI's newer name for it
    elif role == "tool":
        # the template has no tool turn: the result is shown as a user turn (tools.py)
        return {"role": "user", "content": tool_result_text(m, _text(m.get("content"), i, public_id), names)}
    elif role not in ("system", "user", "assistant"):
        raise UnsupportedFeature(
            f"local: {public_id} cannot take messages with role {role!r} (messages[{i}]); it takes {_ROLES_TEXT} "
            "messages (the deprecated 'function' role is sent as 'tool').",
            param=f"messages[{i}].role",
        )
    if m.get("function_call"):
        raise UnsupportedFeature(
            f"local: {public_id} takes earlier calls as 'tool_calls', not the deprecated 'function_call' "
            f"(messages[{i}]).",
            param=f"messages[{i}].function_call",
        )
    content = _text(m.get("content"), i, public_id)
    if m.get("tool_calls"):
        return {"role": role, "content": assistant_calls_text(m, content)}
    return {"role": role, "content": content}


def _text(content: Any, i: int, public_id: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append(part["refusal"])
        else:
            raise UnsupportedFeature(
                f"local: {public_id} is a text-only model: content part type {kind!r} "
                f"(messages[{i}].content[{k}]) is not supported.",
                param=f"messages[{i}].content[{k}].type",
            )
    return "".join(parts)


def _json_schema(rf: Any) -> JSON | None:
    if not rf or rf.get("type") == "text":
        return None
    if rf["type"] == "json_object":
        return {}
    spec = rf["json_schema"]
    schema = spec.get("schema")
    if schema is None:
        return {}
    if not isinstance(schema, dict):
        raise InvalidRequest(
            "local: Invalid 'response_format.json_schema.schema': expected an object.",
            param="response_format.json_schema.schema",
            code="invalid_type",
        )
    return schema


def _logit_bias(lb: Any) -> dict[int, float]:
    """OpenAI's logit_bias maps token ids (as strings) to -100..100. The ids are this model's own
    vocabulary ids; they are passed to llama.cpp unchanged."""
    if not lb:
        return {}
    out: dict[int, float] = {}
    for k, v in lb.items():
        try:
            tok = int(k)
        except (TypeError, ValueError):
            raise InvalidRequest(f"local: Invalid 'logit_bias': key {k!r} is not a token id.",
                                 param="logit_bias", code="invalid_value") from None
        if type(v) not in (int, float) or not -100 <= v <= 100:
            raise InvalidRequest(f"local: Invalid 'logit_bias[{k}]': expected a number in [-100, 100].",
                                 param="logit_bias", code="invalid_value")
        out[tok] = float(v)
    return out


def embedding_inputs(body: JSON, public_id: str) -> list[str]:
    """The texts of an embeddings request. Token-id inputs are OpenAI-tokenizer ids, meaningless
    to a local model, so only strings are taken."""
    inp = body.get("input")
    texts = [inp] if isinstance(inp, str) else inp
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise UnsupportedFeature(
            f"local: {public_id} embeds text: 'input' must be a string or a non-empty array of strings "
            "(token-id arrays are not supported).",
            param="input",
        )
    if any(not t for t in texts):
        raise InvalidRequest("local: Invalid 'input': strings must not be empty.", param="input",
                             code="invalid_value")
    fmt = body.get("encoding_format")
    if fmt not in (None, "float", "base64"):
        raise InvalidRequest("local: Invalid 'encoding_format': expected 'float' or 'base64'.",
                             param="encoding_format", code="invalid_value")
    return texts
