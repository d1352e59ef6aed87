"""Gemini `GenerateContentResponse` -> canonical `chat.completion` (and the pieces the stream
decoder shares: parts, finish reasons, usage, tool-call ids, logprobs)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson

from unigate.canonical.types import JSON
from unigate.providers.base import usage_dict

#: finishReason -> OpenAI finish_reason (reference §8.1). Anything else (OTHER, LANGUAGE,
#: MALFORMED_FUNCTION_CALL, FINISH_REASON_UNSPECIFIED, ...) becomes "stop".
_FINISH = {
    "STOP": "stop", "MAX_TOKENS": "length",
    "SAFETY": "content_filter", "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter", "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter", "IMAGE_RECITATION": "content_filter",
}


def finish_reason(native: Any, saw_tool_call: bool) -> str:
    """Gemini has no tool-call finish reason: a function call ends with STOP, so the caller
    says whether this candidate produced one (in a stream, possibly in an earlier chunk)."""
    out = _FINISH.get(native, "stop") if isinstance(native, str) else "stop"
    return "tool_calls" if saw_tool_call and out == "stop" else out


def usage_from(meta: Any) -> JSON | None:
    """usageMetadata -> OpenAI usage. Thoughts are billed as output but counted apart from
    `candidatesTokenCount`; tool-use prompt tokens (e.g. search results) are input."""
    if not isinstance(meta, dict):
        return None
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    return usage_dict(
        int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0),
        int(meta.get("candidatesTokenCount") or 0) + thoughts,
        cached=int(meta.get("cachedContentTokenCount") or 0),
        reasoning=thoughts,
    )


def call_id(seed: str, index: int, name: str, args_json: str) -> str:
    """A stable OpenAI-style id for a function call that came without one: the same response
    always yields the same ids, so a retried parse or a replayed stream agrees with itself."""
    digest = hashlib.sha256(f"{seed}\x00{index}\x00{name}\x00{args_json}".encode()).hexdigest()
    return "call_" + digest[:24]


class PartReader:
    """Splits one candidate's parts into visible text, thought text and tool calls; keeps the
    per-candidate call counter so ids and stream indexes continue across chunks."""

    __slots__ = ("calls", "seed")

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self.calls = 0

    def read(self, parts: Any) -> tuple[str, str, list[JSON]]:
        text: list[str] = []
        thoughts: list[str] = []
        tool_calls: list[JSON] = []
        for p in parts if isinstance(parts, list) else ():
            if not isinstance(p, dict):
                continue
            if isinstance(p.get("text"), str):
                (thoughts if p.get("thought") else text).append(p["text"])
            elif isinstance(p.get("functionCall"), dict):
                tool_calls.append(self._call(p["functionCall"], p.get("thoughtSignature")))
        return "".join(text), "".join(thoughts), tool_calls

    def _call(self, fc: JSON, signature: Any) -> JSON:
        name = str(fc.get("name") or "")
        args = orjson.dumps(fc.get("args") or {}).decode()
        native_id = fc.get("id")
        tc: JSON = {
            "index": self.calls,
            "id": native_id if isinstance(native_id, str) and native_id else call_id(self.seed, self.calls, name, args),
            "type": "function",
            "function": {"name": name, "arguments": args},
        }
        if isinstance(signature, str) and signature:
            # Gemini 3 needs this back on the call in the next turn; Google's own OpenAI layer
            # carries it the same way, and request.py reads it from there.
            tc["extra_content"] = {"google": {"thought_signature": signature}}
        self.calls += 1
        return tc


def logprobs_from(result: Any) -> JSON | None:
    """logprobsResult -> OpenAI `choice.logprobs`."""
    if not isinstance(result, dict) or not isinstance(result.get("chosenCandidates"), list):
        return None
    top_candidates = result.get("topCandidates")
    tops: list[Any] = top_candidates if isinstance(top_candidates, list) else []
    content = []
    for k, c in enumerate(result["chosenCandidates"]):
        tok = str(c.get("token", ""))
        alts = tops[k].get("candidates", []) if k < len(tops) and isinstance(tops[k], dict) else []
        content.append({
            "token": tok, "logprob": c.get("logProbability", 0.0), "bytes": list(tok.encode()),
            "top_logprobs": [{"token": str(a.get("token", "")), "logprob": a.get("logProbability", 0.0),
                              "bytes": list(str(a.get("token", "")).encode())} for a in alts],
        })
    return {"content": content, "refusal": None}


def blocked_message(feedback: Any) -> str | None:
    """The refusal text for a prompt Gemini blocked before generating (no candidates)."""
    if not isinstance(feedback, dict) or not feedback.get("blockReason"):
        return None
    reason = feedback["blockReason"]
    detail = feedback.get("blockReasonMessage")
    return f"The prompt was blocked by Gemini ({reason})" + (f": {detail}" if detail else ".")


def completion_id(obj: JSON) -> str:
    rid = obj.get("responseId")
    return f"chatcmpl-{rid}" if isinstance(rid, str) and rid else "chatcmpl-" + hashlib.sha256(
        orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]


def to_completion(obj: JSON, model: str) -> JSON:
    cid = completion_id(obj)
    choices: list[JSON] = []
    for pos, cand in enumerate(obj.get("candidates") or ()):
        index = cand.get("index", pos) if isinstance(cand.get("index"), int) else pos
        text, thoughts, calls = PartReader(cid).read((cand.get("content") or {}).get("parts"))
        for tc in calls:
            del tc["index"]  # stream-only field
        msg: JSON = {"role": "assistant", "content": text if (text or not calls) else None, "refusal": None}
        if thoughts:
            msg["reasoning_content"] = thoughts
        if calls:
            msg["tool_calls"] = calls
        choices.append({"index": index, "message": msg, "logprobs": logprobs_from(cand.get("logprobsResult")),
                        "finish_reason": finish_reason(cand.get("finishReason"), bool(calls))})
    if not choices:
        refusal = blocked_message(obj.get("promptFeedback"))
        if refusal is None:
            raise ValueError("the response has neither candidates nor a promptFeedback block reason")
        choices.append({"index": 0, "message": {"role": "assistant", "content": None, "refusal": refusal},
                        "logprobs": None, "finish_reason": "content_filter"})
    out: JSON = {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": obj.get("modelVersion") or model,
        "choices": choices,
    }
    usage = usage_from(obj.get("usageMetadata"))
    if usage is not None:
        out["usage"] = usage
    return out
