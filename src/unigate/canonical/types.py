"""Types shared by the canonical request and every adapter."""

from __future__ import annotations

from typing import Any

#: a JSON object as orjson gives it: bodies stay plain dicts (decision 3)
JSON = dict[str, Any]
