"""Media carried inside OpenAI content parts, shared by the native adapters."""

from __future__ import annotations

from unigate.errors import InvalidRequest


def split_data_url(url: str, param: str) -> tuple[str, str]:
    """`data:<mime>[;params];base64,<payload>` -> (lower-cased mime, payload without whitespace).
    Anything else is a 400 naming `param`."""
    header, sep, payload = url[5:].partition(",") if url.startswith("data:") else ("", "", "")
    fields = header.split(";")
    if not sep or "base64" not in fields[1:] or not payload:
        raise InvalidRequest(f"Invalid '{param}': expected a base64 data URL (data:<type>;base64,<data>).",
                             param=param, code="invalid_value")
    if any(c in payload for c in " \r\n\t"):
        payload = "".join(payload.split())
    return fields[0].strip().lower(), payload
