"""Anthropic content blocks -> OpenAI message parts and tool messages (the block shapes of
/work/shared/reference/providers.md §2.2; OpenAI parts §1.2; image mapping §8.5 in reverse), and
the 400s that name a bad field the way Anthropic does (`messages.1.content.0.source.data`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from unigate.canonical.types import JSON
from unigate.errors import InvalidRequest, UnsupportedFeature


@dataclass(frozen=True, slots=True)
class Target:
    """What the deployments behind the requested model can take beyond OpenAI's fields (see
    request.py): Anthropic-only fields are carried only where an adapter reads them."""

    native: bool = False  # every deployment speaks Anthropic Messages
    top_k: bool = False  # every deployment's adapter maps top_k
    reasoning: bool = True  # no deployment is known not to reason


def missing(path: str) -> InvalidRequest:
    return InvalidRequest(f"{path}: Field required", param=path, code="missing_required_parameter")


def invalid(path: str, expected: str, got: Any = ...) -> InvalidRequest:
    tail = "" if got is ... else f", got {tname(got)}"
    return InvalidRequest(f"{path}: Input should be {expected}{tail}", param=path, code="invalid_value")


def tname(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(v), type(v).__name__)


def text_part(text: str, block: JSON, target: Target) -> JSON:
    part: JSON = {"type": "text", "text": text}
    if target.native and isinstance(block.get("cache_control"), dict):
        part["cache_control"] = block["cache_control"]  # Anthropic prompt caching, kept for Anthropic
    return part


def blocks(content: str | list[Any], path: str) -> list[tuple[str, JSON]]:
    """(path, block) pairs; a string is one text block."""
    if isinstance(content, str):
        return [(f"{path}.content", {"type": "text", "text": content})]
    out: list[tuple[str, JSON]] = []
    for j, b in enumerate(content):
        p = f"{path}.content.{j}"
        if not isinstance(b, dict):
            raise invalid(p, "a valid dictionary", b)
        if not isinstance(b.get("type"), str):
            raise missing(f"{p}.type")
        out.append((p, b))
    return out


def user_part(b: JSON, p: str, target: Target) -> list[JSON]:
    t = b["type"]
    if t == "text":
        text = b.get("text")
        if not isinstance(text, str):
            raise invalid(f"{p}.text", "a valid string", text)
        return [text_part(text, b, target)] if text else []
    if t == "image":
        return [image(b, p)]
    if t == "document":
        return document(b, p, target)
    raise UnsupportedFeature(f"{p}.type: content block type {t!r} is not supported in user messages by this "
                             "gateway (supported: text, image, document, tool_result)", param=f"{p}.type")


def image(b: JSON, p: str) -> JSON:
    src = b.get("source")
    if not isinstance(src, dict):
        raise missing(f"{p}.source")
    kind = src.get("type")
    if kind == "base64":
        mt, data = src.get("media_type"), src.get("data")
        if not isinstance(mt, str) or not mt:
            raise missing(f"{p}.source.media_type")
        if not isinstance(data, str) or not data:
            raise missing(f"{p}.source.data")
        return {"type": "image_url", "image_url": {"url": f"data:{mt};base64,{data}"}}
    if kind == "url":
        url = src.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise invalid(f"{p}.source.url", "an http(s) URL", url)
        return {"type": "image_url", "image_url": {"url": url}}
    raise UnsupportedFeature(f"{p}.source.type: image source {kind!r} is not supported (use base64 or url)",
                             param=f"{p}.source.type")


def document(b: JSON, p: str, target: Target) -> list[JSON]:
    src = b.get("source")
    if not isinstance(src, dict):
        raise missing(f"{p}.source")
    kind = src.get("type")
    if kind == "base64" and src.get("media_type") == "application/pdf" and isinstance(src.get("data"), str):
        name = b.get("title") if isinstance(b.get("title"), str) and b.get("title") else "document.pdf"
        data_url = f"data:application/pdf;base64,{src['data']}"
        return [{"type": "file", "file": {"filename": name, "file_data": data_url}}]
    if kind == "text" and isinstance(src.get("data"), str):
        return [{"type": "text", "text": src["data"]}] if src["data"] else []
    if kind == "content" and isinstance(src.get("content"), (str, list)):
        parts: list[JSON] = []
        for q, inner in blocks(src["content"], f"{p}.source"):
            if inner["type"] not in ("text", "image"):
                raise UnsupportedFeature(f"{q}.type: only text and image blocks are supported in a content document",
                                         param=f"{q}.type")
            parts.extend(user_part(inner, q, target))
        return parts
    raise UnsupportedFeature(f"{p}.source: only base64 PDF, plain-text and content documents are supported "
                             "(OpenAI-format file parts carry data, not URLs or file ids)", param=f"{p}.source")


def tool_result(b: JSON, p: str, target: Target) -> tuple[JSON, list[JSON]]:
    """A `tool` message, and the images of the result: OpenAI tool messages hold text only, so
    images travel in the user message that follows the tool messages."""
    tid = b.get("tool_use_id")
    if not isinstance(tid, str) or not tid:
        raise missing(f"{p}.tool_use_id")
    content = b.get("content")
    texts: list[JSON] = []  # text parts
    images: list[JSON] = []
    if isinstance(content, str):
        if content:
            texts.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for q, inner in blocks(content, p):
            t = inner["type"]
            if t == "text":
                text = inner.get("text")
                if not isinstance(text, str):
                    raise invalid(f"{q}.text", "a valid string", text)
                if text:
                    texts.append(text_part(text, inner, target))
            elif t in ("image", "document"):
                images.extend(user_part(inner, q, target))
            else:
                raise UnsupportedFeature(f"{q}.type: {t!r} blocks are not supported in a tool_result (supported: "
                                         "text, image, document)", param=f"{q}.type")
    elif content is not None:
        raise invalid(f"{p}.content", "a string or a list of content blocks", content)
    if b.get("is_error") is True:
        # OpenAI tool messages have no error flag: say it in the content the model reads
        if texts:
            texts[0] = {**texts[0], "text": f"Error: {texts[0]['text']}"}
        else:
            texts.append({"type": "text", "text": "Error"})
    if target.native and texts and isinstance(b.get("cache_control"), dict):
        # Claude Code marks its cache breakpoint on the last tool_result; the canonical tool
        # message has no block of its own, so the mark moves to the result's last text, which
        # ends at the same place in the prompt
        texts[-1] = {**texts[-1], "cache_control": b["cache_control"]}
    if any("cache_control" in t for t in texts):
        out: str | list[JSON] = texts  # text parts: providers/anthropic keeps their cache_control
    else:
        out = "\n".join(t["text"] for t in texts)
    return {"role": "tool", "tool_call_id": tid, "content": out}, images


def tool_call(b: JSON, p: str) -> JSON:
    tid, name, inp = b.get("id"), b.get("name"), b.get("input")
    if not isinstance(tid, str) or not tid:
        raise missing(f"{p}.id")
    if not isinstance(name, str) or not name:
        raise missing(f"{p}.name")
    if inp is None:
        inp = {}
    if not isinstance(inp, dict):
        raise invalid(f"{p}.input", "a valid dictionary", inp)
    return {"id": tid, "type": "function", "function": {"name": name, "arguments": orjson.dumps(inp).decode()}}
