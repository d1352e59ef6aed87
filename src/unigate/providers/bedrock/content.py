"""OpenAI content parts -> Converse ContentBlocks, and the id/name rules Converse enforces.

service-2.json: `ToolUseId` is `[a-zA-Z0-9_.:-]+`, 1-64 chars; `ImageFormat` png|jpeg|gif|webp;
`ImageSource` is `bytes` (base64 in the JSON body) or `s3Location` — Converse cannot fetch an
http(s) URL; `DocumentBlock.name` is 1-200 chars of alphanumerics, single spaces, hyphens,
parentheses and square brackets.
"""

from __future__ import annotations

import re
from typing import Any

from unigate.canonical.tools import ToolIdRule
from unigate.canonical.types import JSON
from unigate.errors import UnsupportedFeature
from unigate.providers.media import split_data_url

_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/pjpeg": "jpeg",
                  "image/gif": "gif", "image/webp": "webp"}
_IMAGE_EXT = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "gif": "gif", "webp": "webp"}
_DOC_FORMATS = {
    "application/pdf": "pdf", "text/csv": "csv", "text/plain": "txt", "text/html": "html", "text/markdown": "md",
    "application/msword": "doc", "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}
_DOC_NAME_BAD = re.compile(r"[^A-Za-z0-9 \-()\[\]]")


#: A Converse-valid toolUseId: unchanged when already valid (Bedrock's own `tooluse_…` ids
#: round-trip untouched), else a deterministic rewrite — the same for the assistant's call and
#: the tool message answering it — with a hash suffix so distinct ids stay distinct.
tool_use_id = ToolIdRule("a-zA-Z0-9_.:-", 64)


def user_blocks(content: Any, pid: str, where: str) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[JSON] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"text": str(part["text"])})
        elif kind == "image_url":
            iu = part.get("image_url")
            url = iu.get("url") if isinstance(iu, dict) else iu
            blocks.append(image_block(str(url or ""), pid, at))
        elif kind == "file":
            blocks.append(_document_block(part.get("file") or {}, pid, at, len(blocks)))
        else:
            raise UnsupportedFeature(f"{pid}: Bedrock Converse does not take {kind!r} content parts", param=at)
    return blocks


def image_block(url: str, pid: str, at: str) -> JSON:
    if url.startswith("data:"):
        fmt, payload = _data_url(url, pid, at, _IMAGE_FORMATS, "png, jpeg, gif or webp images")
        return {"image": {"format": fmt, "source": {"bytes": payload}}}
    if url.startswith("s3://"):
        ext = url.rpartition(".")[2].lower()
        ext_fmt = _IMAGE_EXT.get(ext)
        if ext_fmt is None:
            raise UnsupportedFeature(f"{pid}: cannot tell the image format of {url!r}; name it .png, .jpeg, .gif "
                                     "or .webp", param=at)
        return {"image": {"format": ext_fmt, "source": {"s3Location": {"uri": url}}}}
    shown = url if len(url) <= 80 else url[:77] + "..."
    raise UnsupportedFeature(
        f"{pid}: Bedrock Converse cannot fetch image URLs ({shown}); send the image inline as a base64 "
        "data URL (data:image/png;base64,...) or as an s3:// URI",
        param=at,
    )


def _document_block(file: JSON, pid: str, at: str, n: int) -> JSON:
    data = file.get("file_data")
    if not isinstance(data, str) or not data.startswith("data:"):
        raise UnsupportedFeature(f"{pid}: files must be sent inline as file_data (a base64 data URL); "
                                 "uploaded file ids are not available on Bedrock", param=at)
    fmt, payload = _data_url(data, pid, at, _DOC_FORMATS, "pdf, csv, doc, docx, xls, xlsx, html, txt or md files")
    stem = str(file.get("filename") or "").rpartition(".")[0] or str(file.get("filename") or "")
    name = " ".join(_DOC_NAME_BAD.sub(" ", stem).split())[:200] or f"document {n + 1}"
    return {"document": {"format": fmt, "name": name, "source": {"bytes": payload}}}


def _data_url(url: str, pid: str, at: str, formats: dict[str, str], wanted: str) -> tuple[str, str]:
    mime, payload = split_data_url(url, at)
    fmt = formats.get(mime)
    if fmt is None:
        raise UnsupportedFeature(f"{pid}: Bedrock Converse takes {wanted}, not {mime or 'unknown type'}", param=at)
    # the blob goes into the JSON body as base64 (rest-json blobs), so the payload is reused as is
    return fmt, payload
