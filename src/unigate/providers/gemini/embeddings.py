"""OpenAI `/v1/embeddings` <-> Gemini `:batchEmbedContents`.

Request: `{"requests": [{"model": "models/<id>", "content": {"parts": [{"text": ...}]},
"outputDimensionality": N}]}`; answer: `{"embeddings": [{"values": [...]}]}`. The Developer API
reports no token counts for embeddings, so usage is zero.
"""

from __future__ import annotations

from typing import Any

import orjson

from unigate.canonical.types import JSON
from unigate.errors import UnsupportedFeature


def build_body(body: JSON, model_path: str) -> tuple[JSON, tuple[str, ...]]:
    inp = body["input"]
    texts = [inp] if isinstance(inp, str) else inp
    if not all(isinstance(t, str) for t in texts):
        raise UnsupportedFeature("Gemini embeddings take text input, not token ids.", param="input")
    extra: JSON = {}
    if body.get("dimensions") is not None:
        extra["outputDimensionality"] = body["dimensions"]
    task = body.get("task_type")  # Gemini-only knob, passed when a client sends it in extra_body
    if isinstance(task, str):
        extra["taskType"] = task
    reqs = [{"model": model_path, "content": {"parts": [{"text": t}]}, **extra} for t in texts]
    return {"requests": reqs}, (("user",) if body.get("user") is not None else ())


def to_list(data: bytes, model: str) -> JSON:
    obj: Any = orjson.loads(data)
    embs = obj.get("embeddings") if isinstance(obj, dict) else None
    if not isinstance(embs, list):
        raise ValueError("batchEmbedContents answer has no 'embeddings' list")
    items = [{"object": "embedding", "index": i, "embedding": e.get("values") or []} for i, e in enumerate(embs)]
    return {"object": "list", "data": items, "model": model, "usage": {"prompt_tokens": 0, "total_tokens": 0}}
