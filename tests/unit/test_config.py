from __future__ import annotations

from pathlib import Path

import pytest

from unigate.config import ConfigError, load_config, parse_config
from unigate.providers.registry import build_providers


def test_env_interpolation_and_defaults(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("server:\n  master_key: ${MK}\n  port: ${PORT:-4100}\nproviders:\n  openai:\n    api_key: ${K}\n")
    cfg = load_config(p, env={"MK": "m", "K": "sk-1"})
    assert cfg.server.master_key == "m" and cfg.server.port == 4100
    assert build_providers(cfg, env={})["openai"].headers["Authorization"] == "Bearer sk-1"


def test_missing_env_var_names_file_and_path(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("providers:\n  openai:\n    api_key: ${NOPE}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    assert str(p) in str(e.value) and "$.providers.openai.api_key" in str(e.value) and "NOPE" in str(e.value)


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"server": {"port": "x"}}, "$.server.port"),
        ({"server": {"port": 70000}}, "$.server.port"),
        ({"server": {"bogus": 1}}, "bogus"),
        ({"providers": {"mycorp": {"base_url": "http://x"}}}, "$.providers.mycorp"),
        ({"deployments": [{"name": "a", "model": "no-slash"}]}, "$.deployments[0].model"),
        ({"deployments": [{"name": "a"}]}, "model"),
        ({"aliases": {"a": []}}, "$.aliases.a"),
        ({"state": {"responses_ttl_days": 0}}, "responses_ttl_days"),
        ([1, 2], "top level"),
    ],
)
def test_invalid_config_is_explained(data: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(data, where="f.yaml", env={})
    assert str(e.value).startswith("f.yaml: ") and fragment in str(e.value)


def test_invalid_yaml(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(p, env={})


def test_zero_config_from_environment() -> None:
    cfg = load_config(None, env={})
    provs = build_providers(cfg, env={"GROQ_API_KEY": "g", "TOGETHER_API_KEY": "t", "TOGETHER_BASE_URL": "http://t/v1/",
                                      "OLLAMA_HOST": "http://127.0.0.1:11434", "UNRELATED": "x"})
    assert set(provs) == {"groq", "together", "ollama"}
    assert provs["together"].base_url == "http://t/v1"
    assert provs["ollama"].base_url == "http://127.0.0.1:11434/v1" and "Authorization" not in provs["ollama"].headers
    assert provs["groq"].base_url == "https://api.groq.com/openai/v1"


def test_custom_openai_compatible_provider() -> None:
    cfg = parse_config({"providers": {"mycorp": {"preset": "openai", "base_url": "http://10.0.0.5/v1", "api_key": "x",
                                                 "headers": {"X-Team": "a"}}}}, where="t", env={})
    p = build_providers(cfg, env={})["mycorp"]
    assert p.base_url == "http://10.0.0.5/v1" and p.headers["X-Team"] == "a" and p.preset.id == "openai"


def test_master_key_and_local_from_env() -> None:
    cfg = load_config(None, env={"UNIGATE_MASTER_KEY": "mk", "UNIGATE_LOCAL": "off"})
    assert cfg.server.master_key == "mk" and cfg.local.enabled is False
