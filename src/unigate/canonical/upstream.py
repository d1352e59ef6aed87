"""What an upstream's error answer says: the message and code of its body, and the wait its
headers ask for. Used by every dialect's error mapping and by the pipeline."""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import orjson


def error_message(data: bytes) -> tuple[str, str | None]:
    """The message and code from the error bodies OpenAI-compatible servers really send:
    OpenAI's envelope, Ollama's {"error": "text"}, Mistral's {"object": "error", ...},
    FastAPI's {"detail": ...}, or plain text."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        text = data.decode("utf-8", "replace").strip()
        return text[:500], None
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        obj = obj[0]  # Gemini's OpenAI endpoint wraps errors in a list
    if not isinstance(obj, dict):
        return str(obj)[:500], None
    err = obj.get("error", obj)
    if isinstance(err, str):
        return err, None
    if isinstance(err, dict):
        msg = err.get("message") or err.get("detail") or err.get("msg") or ""
        code = err.get("code") or err.get("type") or err.get("status")
        if not isinstance(msg, str):
            msg = orjson.dumps(msg).decode()
        return msg, (str(code) if code is not None else None)
    return str(err)[:500], None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait an upstream asks for (`retry-after-ms`, then `Retry-After` in seconds or as an
    HTTP date), or None when it asks for none or says something unusable (`nan`, `-5`);
    GatewayError caps what is too long."""
    v = headers.get("retry-after-ms")
    if v:
        try:
            ms = float(v)
            if ms >= 0:  # False for NaN too
                return ms / 1000
        except ValueError:
            pass
    v = headers.get("retry-after")
    if v:
        try:
            s = float(v)
            return s if s >= 0 else None
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(v).timestamp() - time.time())
            except (TypeError, ValueError, OverflowError, IndexError):
                return None
    return None
