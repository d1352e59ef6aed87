from __future__ import annotations

from unigate.config import parse_config
from unigate.providers.registry import build_providers


def test_azure_api_version_from_the_sdk_env_name() -> None:
    cfg = parse_config({}, where="t", env={})
    p = build_providers(cfg, env={"AZURE_OPENAI_API_KEY": "k", "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com",
                                  "OPENAI_API_VERSION": "2025-01-01-preview"})["azure"]
    assert p.options.api_version == "2025-01-01-preview" and p.headers["api-key"] == "k"
    cfg = parse_config({"providers": {"azure": {"options": {"api_version": "2024-10-21"}}}}, where="t", env={})
    p = build_providers(cfg, env={"AZURE_API_KEY": "k", "OPENAI_API_VERSION": "x"})["azure"]
    assert p.options.api_version == "2024-10-21"
