"""The completions egress: chat answers and chunks re-encoded as text_completion objects."""

from __future__ import annotations

from typing import Any

import orjson

from unigate.errors import UpstreamUnavailable
from unigate.surfaces.completions import EGRESS, to_text_completion


def chunk(index: int, content: str | None, finish: str | None = None, role: bool = False) -> dict[str, object]:
    delta: dict[str, object] = {"role": "assistant"} if role else {}
    if content is not None:
        delta["content"] = content
    return {"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 1700000000, "model": "m",
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


def events(raw: bytes) -> list[Any]:
    out: list[Any] = []
    for e in raw.split(b"\n\n"):
        if e:
            assert e.startswith(b"data: ")
            out.append("[DONE]" if e == b"data: [DONE]" else orjson.loads(e[6:]))
    return out


def test_json_answer_with_several_choices() -> None:
    obj = {"id": "chatcmpl-abc", "object": "chat.completion", "created": 5, "model": "m", "system_fingerprint": "fp",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "one"}, "finish_reason": "stop"},
                       {"index": 1, "message": {"role": "assistant", "content": None}, "finish_reason": "length"}],
           "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    assert to_text_completion(obj) == {
        "id": "cmpl-abc", "object": "text_completion", "created": 5, "model": "m", "system_fingerprint": "fp",
        "choices": [{"text": "one", "index": 0, "logprobs": None, "finish_reason": "stop"},
                    {"text": "", "index": 1, "logprobs": None, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    assert orjson.loads(EGRESS.encode_json(obj))["object"] == "text_completion"
    assert EGRESS.relay_openai is False  # the upstream's bytes are a chat completion


def test_stream_chunks_usage_and_done() -> None:
    enc = EGRESS.stream_encoder({"stream_options": {"include_usage": True}})
    assert enc.chunk(chunk(0, "", role=True)) == b""  # the role-only opening chunk
    out = enc.chunk(chunk(0, "Hel")) + enc.chunk(chunk(1, "Wor")) + enc.chunk(chunk(0, None, "stop"))
    out += enc.finish({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3})
    got = events(out)
    assert got[-1] == "[DONE]"
    assert [(c["choices"][0]["index"], c["choices"][0]["text"], c["choices"][0]["finish_reason"])
            for c in got[:3]] == [(0, "Hel", None), (1, "Wor", None), (0, "", "stop")]
    assert all(c["id"] == "cmpl-abc" and c["object"] == "text_completion" for c in got[:4])
    assert got[3] == {"id": "cmpl-abc", "object": "text_completion", "created": 1700000000, "model": "m",
                      "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}


def test_stream_without_usage_and_errors() -> None:
    enc = EGRESS.stream_encoder({})
    assert enc.finish({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}) == b"data: [DONE]\n\n"
    err = events(enc.error(UpstreamUnavailable("anthropic: the upstream stream broke off")))
    assert err == [{"error": {"message": "anthropic: the upstream stream broke off", "type": "server_error",
                              "param": None, "code": "upstream_unavailable"}}]
