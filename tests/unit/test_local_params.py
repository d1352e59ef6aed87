"""Canonical request -> llama-cpp-python arguments for the local model (pure translation)."""

from __future__ import annotations

from typing import Any

import pytest

from unigate.errors import InvalidRequest, UnsupportedFeature
from unigate.providers.local.params import chat_params, embedding_inputs

ID = "local/smollm2"


def body(**kw: Any) -> dict[str, Any]:
    return {"model": ID, "messages": [{"role": "user", "content": "hi"}], **kw}


def test_openai_defaults_and_random_seed() -> None:
    p = chat_params(body(), ID)
    assert p.kwargs["temperature"] == 1.0 and p.kwargs["top_p"] == 1.0
    assert p.kwargs["max_tokens"] is None  # up to the context, like OpenAI
    assert 0 <= p.kwargs["seed"] < 2**31
    # unseeded requests must not inherit one another's seed (llama-cpp-python chains them)
    assert len({chat_params(body(), ID).kwargs["seed"] for _ in range(8)}) > 1
    assert p.json_schema is None and p.logit_bias == {} and "stop" not in p.kwargs


def test_sampling_knobs() -> None:
    p = chat_params(body(temperature=0, top_p=0.5, seed=-1, presence_penalty=0.5, frequency_penalty=-1,
                         max_tokens=9, max_completion_tokens=7, stop="END"), ID)
    k = p.kwargs
    assert (k["temperature"], k["top_p"], k["presence_penalty"], k["frequency_penalty"]) == (0.0, 0.5, 0.5, -1.0)
    assert k["seed"] == 0xFFFFFFFE  # folded into llama.cpp's uint32, avoiding its "random" value
    assert k["max_tokens"] == 7  # max_completion_tokens wins
    assert k["stop"] == ["END"]
    assert chat_params(body(stop=["a", "", "b"]), ID).kwargs["stop"] == ["a", "b"]


def test_messages() -> None:
    msgs = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "name": "x"},
        {"role": "assistant", "content": None},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
    ]
    p = chat_params(body(messages=msgs), ID)
    assert p.messages == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "ab"},
                          {"role": "assistant", "content": ""}, {"role": "assistant", "content": "no"}]


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"n": 2}, "n"),
        ({"functions": [{"name": "f"}]}, "functions"),  # tools are taken (tests/unit/test_local_tools.py)
        ({"messages": [{"role": "function", "content": "r", "name": "f"}]}, "messages[0].role"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "logprobs"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "messages[0].content[0].type"),
    ],
)
def test_unsupported(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedFeature) as ei:
        chat_params(body(**extra), ID)
    assert ei.value.param == param and ei.value.http_status == 400
    assert ei.value.message.startswith("local: ")


def test_tools_with_tool_choice_none_are_ignored() -> None:
    p = chat_params(body(tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="none", n=1), ID)
    assert p.messages == [{"role": "user", "content": "hi"}]


def test_max_tokens_must_be_positive() -> None:
    with pytest.raises(InvalidRequest) as ei:
        chat_params(body(max_completion_tokens=0), ID)
    assert ei.value.param == "max_completion_tokens"


def test_response_format() -> None:
    assert chat_params(body(response_format={"type": "text"}), ID).json_schema is None
    assert chat_params(body(response_format={"type": "json_object"}), ID).json_schema == {}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    rf = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    assert chat_params(body(response_format=rf), ID).json_schema == schema
    assert chat_params(body(response_format={"type": "json_schema", "json_schema": {"name": "x"}}), ID).json_schema == {}
    with pytest.raises(InvalidRequest):
        chat_params(body(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": []}}), ID)


def test_logit_bias() -> None:
    assert chat_params(body(logit_bias={"2": -100, "15": 5.5}), ID).logit_bias == {2: -100.0, 15: 5.5}
    for bad in ({"x": 1}, {"2": 101}, {"2": "1"}):
        with pytest.raises(InvalidRequest) as ei:
            chat_params(body(logit_bias=bad), ID)
        assert ei.value.param == "logit_bias"


def test_embedding_inputs() -> None:
    assert embedding_inputs({"input": "a"}, ID) == ["a"]
    assert embedding_inputs({"input": ["a", "b"], "encoding_format": "base64"}, ID) == ["a", "b"]
    with pytest.raises(UnsupportedFeature, match="token-id"):
        embedding_inputs({"input": [1, 2, 3]}, ID)
    with pytest.raises(InvalidRequest, match="empty"):
        embedding_inputs({"input": ["a", ""]}, ID)
