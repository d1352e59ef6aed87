"""What of an upstream's words may reach a client or a log line.

Upstreams echo credentials ("request had credentials Bearer sk-..."), answer with 50 MB error
messages or HTML pages, and the transport's own errors name internal addresses ("Connect call
failed ('10.0.3.7', 8000)"). Every message of an `UpstreamError` passes through
`client_text()` once, when the error is made, so nothing later (the surface's envelope, an
in-stream error event, the log) can show more than this lets out.

The secrets the gateway holds (provider keys, the master key, AWS secrets) and the hosts of
its configured upstreams are registered at start-up (`register_secret`, `register_host`).
Patterns that look like a credential or an IP address are removed whether registered or not.
"""

from __future__ import annotations

import re

#: longest message a client sees from an upstream (characters)
MAX_MESSAGE_CHARS = 1000
REDACTED = "[redacted]"
ADDRESS = "[upstream address]"

_secrets: set[str] = set()
_hosts: set[str] = set()
_known: re.Pattern[str] | None = None

_CREDENTIAL = re.compile(
    r"(?i)\b(?:bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{6,}"  # an Authorization value
    r"|\bsk-[A-Za-z0-9_-]{6,}"  # OpenAI-style keys, Anthropic's sk-ant-...
    r"|\bAIza[0-9A-Za-z_-]{20,}"  # Google API keys
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\b(?:x-api-key|api[-_]?key|x-goog-api-key|authorization)\b[\"']?\s*[:=]\s*[\"']?[^\s\"',;]{6,}"
)
#: IPv4 with an optional port, a Python (host, port) tuple, bracketed IPv6, localhost
_ADDRESS = re.compile(
    r"\(\s*'[^']*'\s*,\s*\d+\s*\)"
    r"|\[[0-9A-Fa-f:.]+\](?::\d+)?"
    r"|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"
    r"|\blocalhost(?::\d+)?\b"
)
_HTML = re.compile(r"(?i)<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]")
_TITLE = re.compile(r"(?is)<title[^>]*>(.*?)</title>")
_TAG = re.compile(r"(?s)<[^>]{0,2000}>")
_SPACE = re.compile(r"\s+")


def register_secret(value: str | None) -> None:
    """A value that must never be shown: too short a value is not registered (it would match
    ordinary words), and the pattern rules still catch most keys."""
    global _known
    if value and len(value) >= 8 and value not in _secrets:
        _secrets.add(value)
        _known = None


def register_host(host: str | None) -> None:
    """The host (and host:port) of a configured upstream: kept out of client-visible text."""
    global _known
    if host and host not in _hosts:
        _hosts.add(host)
        _known = None


def _known_pattern() -> re.Pattern[str] | None:
    global _known
    if _known is None and (_secrets or _hosts):
        # longest first, so a host:port is taken whole before its host
        words = sorted(_secrets | _hosts, key=len, reverse=True)
        _known = re.compile("|".join(re.escape(w) for w in words))
    return _known


def scrub_secrets(text: str) -> str:
    """Registered secrets and credential-like strings removed (for log lines too)."""
    known = _known_pattern()
    if known is not None and _secrets:
        text = known.sub(lambda m: REDACTED if m.group(0) in _secrets else m.group(0), text)
    return _CREDENTIAL.sub(REDACTED, text)


def client_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` as a client may see it: an HTML page reduced to its title, no secret, no internal
    address, one line, at most `limit` characters."""
    # bound the work first: a 50 MB message is cut before any pattern runs over it
    text = text[: limit * 8]
    page = _HTML.search(text, 0, 2048)
    if page:
        title = _TITLE.search(text)
        inner = _TAG.sub(" ", title.group(1)).strip() if title else ""
        text = text[: page.start()] + f"an HTML page{f' ({inner})' if inner else ''}"
    text = scrub_secrets(text)
    known = _known_pattern()
    if known is not None and _hosts:
        text = known.sub(lambda m: ADDRESS if m.group(0) in _hosts else m.group(0), text)
    text = _ADDRESS.sub(ADDRESS, text)
    text = _SPACE.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text
