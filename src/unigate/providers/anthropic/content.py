"""OpenAI content parts -> Anthropic content blocks (§2.2, §8.5 of the wire reference)."""

from __future__ import annotations

from typing import Any

from unigate.canonical.types import JSON
from unigate.errors import InvalidRequest, UnsupportedFeature
from unigate.providers.media import split_data_url

#: the image media types the Messages API accepts (anthropic-sdk-python `base64_image_source_param.py`)
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def _text(text: str, part: JSON | None = None) -> JSON:
    blk: JSON = {"type": "text", "text": text}
    if part is not None and isinstance(part.get("cache_control"), dict):
        blk["cache_control"] = part["cache_control"]  # Anthropic prompt caching, passed through
    return blk


def text_blocks(content: Any, where: str) -> list[JSON]:
    """System/developer content: text only. Empty text is skipped: the API rejects empty text
    blocks ("text content blocks must be non-empty")."""
    if isinstance(content, str):
        return [_text(content)] if content else []
    out: list[JSON] = []
    for k, part in enumerate(content or ()):
        if not isinstance(part, dict) or part.get("type") != "text":
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise UnsupportedFeature(f"anthropic: {where}.content[{k}] is {kind!r}; system and developer messages "
                                     "can hold only text", param=f"{where}.content[{k}]")
        if part.get("text"):
            out.append(_text(str(part["text"]), part))
    return out


def message_blocks(content: Any, where: str) -> list[JSON]:
    """Assistant content: text and refusal parts, both sent back as text."""
    if isinstance(content, str):
        return [_text(content)] if content else []
    out: list[JSON] = []
    for k, part in enumerate(content or ()):
        if not isinstance(part, dict):
            raise InvalidRequest(f"Invalid '{where}.content[{k}]': expected an object.", param=f"{where}.content[{k}]")
        t = part.get("type")
        text = part.get("text") if t == "text" else part.get("refusal") if t == "refusal" else None
        if t not in ("text", "refusal"):
            raise UnsupportedFeature(f"anthropic: {where}.content[{k}] is {t!r}; assistant messages can hold only "
                                     "text", param=f"{where}.content[{k}]")
        if text:
            out.append(_text(str(text), part))
    return out


def user_blocks(content: Any, where: str) -> list[JSON]:
    """User (and tool result) content: text, images, PDF files."""
    if isinstance(content, str):
        return [_text(content)] if content else []
    out: list[JSON] = []
    for k, part in enumerate(content or ()):
        p = f"{where}.content[{k}]"
        if not isinstance(part, dict):
            raise InvalidRequest(f"Invalid '{p}': expected an object.", param=p)
        t = part.get("type")
        if t == "text":
            if part.get("text"):
                out.append(_text(str(part["text"]), part))
        elif t == "image_url":
            iu = part.get("image_url")
            url = iu.get("url") if isinstance(iu, dict) else iu
            if not isinstance(url, str):
                raise InvalidRequest(f"Missing required parameter: '{p}.image_url.url'.", param=f"{p}.image_url.url",
                                     code="missing_required_parameter")
            out.append(image_block(url, p))  # `detail` has no Anthropic equivalent and is dropped
        elif t == "file":
            out.append(_document(part.get("file") or {}, p))
        else:
            raise UnsupportedFeature(f"anthropic: {p} has type {t!r}, which Anthropic models do not accept "
                                     "(supported: text, image_url, file with PDF data)", param=p)
    return out


def image_block(url: str, where: str) -> JSON:
    """An http(s) URL becomes a `url` source; a data URL a `base64` source (§8.5)."""
    if url.startswith("data:"):
        mime, data = split_data_url(url, f"{where}.image_url.url")
        if mime == "image/jpg":
            mime = "image/jpeg"  # a common misspelling the API would refuse
        if mime not in IMAGE_TYPES:
            raise UnsupportedFeature(f"anthropic: {where} is an image of type {mime!r}; Anthropic accepts "
                                     f"{', '.join(sorted(IMAGE_TYPES))}", param=f"{where}.image_url.url")
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest(f"Invalid '{where}.image_url.url': expected an http(s) URL or a base64 data URL.",
                         param=f"{where}.image_url.url", code="invalid_value")


def _document(f: JSON, where: str) -> JSON:
    data = f.get("file_data")
    if not isinstance(data, str):
        raise UnsupportedFeature(f"anthropic: {where} must carry file_data (uploaded file ids belong to another "
                                 "provider)", param=f"{where}.file")
    if data.startswith("data:"):
        mime, payload = split_data_url(data, f"{where}.file.file_data")
    else:
        mime, payload = "application/pdf", data  # OpenAI also takes bare base64 for PDFs
    if mime != "application/pdf":
        raise UnsupportedFeature(f"anthropic: {where} is a file of type {mime!r}; only PDF documents are supported",
                                 param=f"{where}.file")
    return {"type": "document", "source": {"type": "base64", "media_type": mime, "data": payload}}
