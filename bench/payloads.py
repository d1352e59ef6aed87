"""The fixed bodies of the benchmark, defined once here and used by every other piece.

Responses (what the mock upstreams answer):
  * `completion_json()`  an OpenAI `chat.completion` object with usage;
  * `sse_stream()`       the same answer as an OpenAI SSE stream: a role delta, CONTENT_DELTAS
                         content deltas, a finish chunk, a usage-only chunk (`choices: []`)
                         and `data: [DONE]`.
Requests (what the load generators send): `request_body(model, stream)`.

    python bench/payloads.py json | sse | request [--model M] [--stream]

prints one of them, byte for byte as the mocks serve it.
"""

from __future__ import annotations

import argparse
import json
import sys

#: the assistant's answer; split into CONTENT_DELTAS pieces for the stream
ANSWER_WORDS = (  # noqa: SIM905 - reads as the sentence it is
    "Bench mock reply: a fixed answer about forty tokens long, so that the body has the size of a "
    "short real chat completion. The streamed form sends it as thirty deltas of a word or two, "
    "the way a hosted model emits tokens, followed by the finish chunk and the usage chunk."
).split(" ")
CONTENT_DELTAS = 30
EVENTS = 1 + CONTENT_DELTAS + 1 + 1 + 1  # role, content..., finish, usage, [DONE]

ID = "chatcmpl-unigatebench000000000000001"
CREATED = 1764300000
UPSTREAM_MODEL = "gpt-4o-mini-2024-07-18"
FINGERPRINT = "fp_ubench01"
USAGE = {
    "prompt_tokens": 41,
    "completion_tokens": 45,
    "total_tokens": 86,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def _dumps(obj: object) -> bytes:
    # compact separators: the same bytes as the orjson a real server would emit
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def answer_pieces() -> list[str]:
    """ANSWER_WORDS regrouped into exactly CONTENT_DELTAS pieces that join back to the answer."""
    words = ANSWER_WORDS
    per, extra = divmod(len(words), CONTENT_DELTAS)
    pieces: list[str] = []
    i = 0
    for n in range(CONTENT_DELTAS):
        take = per + (1 if n < extra else 0)
        chunk = " ".join(words[i : i + take])
        i += take
        pieces.append(chunk if n == 0 else " " + chunk)
    assert "".join(pieces) == answer_text()
    return pieces


def answer_text() -> str:
    return " ".join(ANSWER_WORDS)


def completion_json() -> bytes:
    return _dumps(
        {
            "id": ID,
            "object": "chat.completion",
            "created": CREATED,
            "model": UPSTREAM_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer_text(), "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
    )


def _chunk(choices: list[dict[str, object]], usage: object = None) -> bytes:
    obj: dict[str, object] = {
        "id": ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": UPSTREAM_MODEL,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
        "choices": choices,
        "usage": usage,
    }
    return b"data: " + _dumps(obj) + b"\n\n"


def sse_events() -> list[bytes]:
    """Each SSE event of the stream as its own byte string (the slow mock sends them apart)."""
    events = [_chunk([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None}, "logprobs": None, "finish_reason": None}])]
    for piece in answer_pieces():
        events.append(_chunk([{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}]))
    events.append(_chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
    events.append(_chunk([], USAGE))
    events.append(b"data: [DONE]\n\n")
    assert len(events) == EVENTS
    return events


def sse_stream() -> bytes:
    return b"".join(sse_events())


def request_body(model: str = "gpt-4o-mini", stream: bool = False) -> bytes:
    """A realistic short chat request (~330 bytes; ~390 with the stream flags)."""
    body: dict[str, object] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a terse assistant. Reply in at most two sentences."},
            {
                "role": "user",
                "content": "What does a gateway in front of several LLM providers have to do on every "
                "request, and what can it leave for later?",
            },
        ],
        "temperature": 0.3,
        "max_tokens": 120,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return _dumps(body)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["json", "sse", "request"])
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("--stream", action="store_true")
    a = ap.parse_args(argv)
    data = {"json": completion_json, "sse": sse_stream}.get(a.what, lambda: request_body(a.model, a.stream))()
    sys.stdout.buffer.write(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
