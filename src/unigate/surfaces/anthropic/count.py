"""`/v1/messages/count_tokens` for models whose provider cannot count: an ESTIMATE.

Anthropic upstreams count a Messages request themselves, Gemini ones its translation
(`models.countTokens`): the exact count, through the pipeline. For every other model
the surface answers this estimate, marked as one with the
response header `x-unigate-token-count: estimate` (an exact count says `exact`), so a client
that sizes its context (Claude Code compacts when the count nears the window) still works.

The estimate: UTF-8 bytes / 4 of everything the model reads as text (system, message text,
tool calls' inputs and results, thinking, tool names, descriptions and schemas), rounded up,
plus a fixed cost per image (1600: Anthropic's figure for an image at the ~1.15 megapixel size
it scales larger ones down to) and per PDF page (2000, within the 1500-3000 Anthropic gives).
English prose runs close to 4 bytes a token; code, JSON and other languages run denser, so
the estimate is a guide, not a bill. The body is the Messages one, already validated by the
surface's translation.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from unigate.canonical.types import JSON

#: the header that says whether a count is the provider's (`exact`) or this estimate
TOKEN_COUNT_HEADER = "x-unigate-token-count"
BYTES_PER_TOKEN = 4
IMAGE_TOKENS = 1600
PDF_PAGE_TOKENS = 2000
#: a page object of a PDF (not the /Pages tree node)
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def estimate_tokens(body: JSON) -> int:
    """The estimated input tokens of a Messages request body."""
    size = 0  # text bytes
    extra = 0  # tokens of images and documents
    system = body.get("system")
    if isinstance(system, str):
        size += _utf8(system)
    elif isinstance(system, list):
        for b in system:
            s, e = _block(b)
            size, extra = size + s, extra + e
    for m in body.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            size += _utf8(content)
        elif isinstance(content, list):
            for b in content:
                s, e = _block(b)
                size, extra = size + s, extra + e
    tools = body.get("tools")
    if tools:
        size += len(orjson.dumps(tools))  # names, descriptions and schemas, as the model reads them
    return -(-size // BYTES_PER_TOKEN) + extra


def _utf8(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def _block(b: Any) -> tuple[int, int]:
    """(text bytes, other tokens) of one content block."""
    if not isinstance(b, dict):
        return 0, 0
    kind = b.get("type")
    if kind == "text":
        t = b.get("text")
        return (_utf8(t) if isinstance(t, str) else 0), 0
    if kind == "thinking":
        t = b.get("thinking")
        return (_utf8(t) if isinstance(t, str) else 0), 0
    if kind == "tool_use":
        return len(orjson.dumps(b.get("input") or {})) + _utf8(str(b.get("name") or "")), 0
    if kind == "tool_result":
        content = b.get("content")
        if isinstance(content, str):
            return _utf8(content), 0
        size = extra = 0
        for inner in content if isinstance(content, list) else ():
            s, e = _block(inner)
            size, extra = size + s, extra + e
        return size, extra
    if kind == "image":
        return 0, IMAGE_TOKENS
    if kind == "document":
        return _document(b.get("source"))
    return 0, 0  # redacted_thinking and others: nothing the estimate can read


def _document(src: Any) -> tuple[int, int]:
    if not isinstance(src, dict):
        return 0, 0
    kind = src.get("type")
    if kind == "text" and isinstance(src.get("data"), str):
        return _utf8(src["data"]), 0
    if kind == "content":
        content = src.get("content")
        if isinstance(content, str):
            return _utf8(content), 0
        size = extra = 0
        for inner in content if isinstance(content, list) else ():
            s, e = _block(inner)
            size, extra = size + s, extra + e
        return size, extra
    if kind == "base64" and isinstance(src.get("data"), str):
        try:
            pdf = base64.b64decode(src["data"], validate=False)
        except (binascii.Error, ValueError):
            return 0, PDF_PAGE_TOKENS
        return 0, PDF_PAGE_TOKENS * max(1, len(_PDF_PAGE.findall(pdf)))
    return 0, PDF_PAGE_TOKENS  # a URL or file id: one page's worth, as it cannot be read here
