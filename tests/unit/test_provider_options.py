"""Provider options are typed per dialect (providers/options.py): an unknown or mistyped key in
`providers.<id>.options` stops start-up naming the file and key path, like every other key;
valid ones reach the adapter as its typed struct."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from unigate import redact
from unigate.cli import main
from unigate.config import ConfigError, load_config
from unigate.providers.base import Deployment, Provider, UpstreamRequest
from unigate.providers.options import (
    OPTIONS,
    AzureOptions,
    BedrockOptions,
    GeminiOptions,
    NoOptions,
    ProviderOptions,
    options_as,
    options_type,
)
from unigate.providers.registry import DIALECTS, adapter_for, build_providers

USER = [{"role": "user", "content": "hi"}]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "unigate.yaml"
    p.write_text(text)
    return p


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(path, env={})
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    return msg


def request_for(provider: Provider, model: str, body: dict[str, object]) -> UpstreamRequest:
    d = Deployment(id="d", provider=provider, model=model, adapter=adapter_for(provider.preset.dialect),
                   timeouts=provider.timeouts)
    return d.adapter.chat_request({"model": f"{provider.id}/{model}", **body}, d, stream=False)


# ---------------------------------------------------------------------------- refused at start-up


@pytest.mark.parametrize("yaml_text, key_path, hint", [
    ("providers:\n  gemini:\n    options: {api_verison: v1}\n", "$.providers.gemini.options.api_verison",
     "did you mean `api_version`?"),
    ("providers:\n  bedrock:\n    options:\n      regoin: eu-west-1\n", "$.providers.bedrock.options.regoin",
     "did you mean `region`?"),
    ("providers:\n  azure:\n    options: {api_stlye: v1}\n", "$.providers.azure.options.api_stlye",
     "did you mean `api_style`?"),
    # the dialect comes from the preset, not the id
    ("providers:\n  aws2:\n    preset: bedrock\n    options: {structured_ouptut: tool}\n",
     "$.providers.aws2.options.structured_ouptut", "bedrock options are region, aws_secret_access_key"),
    # dialects without options take none at all
    ("providers:\n  openai:\n    options: {api_version: v1}\n", "$.providers.openai.options.api_version",
     "the openai dialect takes no options"),
    ("providers:\n  mycorp:\n    preset: openai\n    base_url: http://10.0.0.5/v1\n    options: {x: 1}\n",
     "$.providers.mycorp.options.x", "takes no options"),
    ("providers:\n  anthropic:\n    options: {anthropic-version: '2023-06-01'}\n",
     "$.providers.anthropic.options.anthropic-version", "the anthropic dialect takes no options"),
    ("providers:\n  cohere:\n    options: {region: x}\n", "$.providers.cohere.options.region", "takes no options"),
    # a disabled provider's typo is still a typo
    ("providers:\n  gemini:\n    enabled: false\n    options: {schema_mod: json}\n",
     "$.providers.gemini.options.schema_mod", "did you mean `schema_mode`?"),
])
def test_a_misspelt_option_stops_start_up(tmp_path: Path, yaml_text: str, key_path: str, hint: str) -> None:
    msg = refused(write(tmp_path, yaml_text))
    assert f": {key_path}: unknown option" in msg and hint in msg


@pytest.mark.parametrize("yaml_text, key_path, problem", [
    ("providers:\n  bedrock:\n    options: {region: 5}\n", "$.providers.bedrock.options.region",
     "Expected `str | null`, got `int`"),
    ("providers:\n  gemini:\n    options: {schema_mode: yaml}\n", "$.providers.gemini.options.schema_mode",
     "Invalid enum value 'yaml'"),
    ("providers:\n  gemini:\n    options: {api_version: [v1]}\n", "$.providers.gemini.options.api_version",
     "Expected `str`, got `array`"),
    ("providers:\n  azure:\n    options: {api_style: classic2}\n", "$.providers.azure.options.api_style",
     "Invalid enum value 'classic2'"),
    ("providers:\n  bedrock:\n    options: {structured_output: json}\n",
     "$.providers.bedrock.options.structured_output", "Invalid enum value 'json'"),
    # YAML turns an unquoted date into a date; the message says to quote it
    ("providers:\n  azure:\n    options: {api_version: 2024-10-21}\n", "$.providers.azure.options.api_version",
     "Expected `str | null`, got `date` (YAML reads an unquoted date or time as one: quote the value)"),
])
def test_a_mistyped_option_stops_start_up(tmp_path: Path, yaml_text: str, key_path: str, problem: str) -> None:
    msg = refused(write(tmp_path, yaml_text))
    assert f": {key_path}: {problem}" in msg


def test_serve_exits_with_the_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, "providers:\n  gemini:\n    options: {api_verison: v1}\n")
    assert main(["serve", "--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"unigate: invalid configuration: {p}: $.providers.gemini.options.api_verison: unknown option")


def test_every_dialect_has_an_options_type() -> None:
    assert set(OPTIONS) <= set(DIALECTS)
    for dialect in DIALECTS:
        t = options_type(dialect)
        assert issubclass(t, ProviderOptions) and t.__struct_config__.forbid_unknown_fields
        assert t.__struct_config__.frozen
    assert options_type("openai") is NoOptions and NoOptions.__struct_fields__ == ()


# ---------------------------------------------------------------------------- valid options reach the adapter


def test_gemini_options_shape_url_and_body(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "providers:\n  gemini:\n    api_key: k\n"
                                      "    options: {api_version: v1, schema_mode: json}\n"), env={})
    p = build_providers(cfg, env={})["gemini"]
    assert p.options == GeminiOptions(api_version="v1", schema_mode="json")
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}
    req = request_for(p, "gemini-2.5-flash", {"messages": USER, "tools": [tool]})
    assert str(req.url) == "https://generativelanguage.googleapis.com/v1/models/gemini-2.5-flash:generateContent"
    assert "parametersJsonSchema" in orjson.loads(req.body or b"")["tools"][0]["functionDeclarations"][0]
    # defaults: v1beta and the OpenAPI subset
    p = build_providers(load_config(write(tmp_path, "providers:\n  gemini: {api_key: k}\n"), env={}), env={})["gemini"]
    req = request_for(p, "gemini-2.5-flash", {"messages": USER, "tools": [tool]})
    assert "/v1beta/models/gemini-2.5-flash:generateContent" in str(req.url)
    assert "parameters" in orjson.loads(req.body or b"")["tools"][0]["functionDeclarations"][0]


def test_azure_options_shape_url(tmp_path: Path) -> None:
    text = ("providers:\n"
            "  azure:\n    api_key: k\n    base_url: https://r.openai.azure.com\n    options: {api_version: '2025-04-01-preview'}\n"
            "  azv1:\n    preset: azure\n    api_key: k\n    base_url: https://r.openai.azure.com\n    options: {api_style: v1}\n")
    provs = build_providers(load_config(write(tmp_path, text), env={}), env={"OPENAI_API_VERSION": "ignored"})
    req = request_for(provs["azure"], "my-dep", {"messages": USER})
    assert req.url == "https://r.openai.azure.com/openai/deployments/my-dep/chat/completions?api-version=2025-04-01-preview"
    req = request_for(provs["azv1"], "my-dep", {"messages": USER})
    assert req.url == "https://r.openai.azure.com/openai/v1/chat/completions"
    assert provs["azv1"].options == AzureOptions(api_version="ignored", api_style="v1")


def test_bedrock_options_and_environment(tmp_path: Path) -> None:
    text = ("providers:\n  bedrock:\n    api_key: AKIDTEST\n"
            "    options: {region: eu-west-3, aws_secret_access_key: cfg-secret, structured_output: output_config}\n")
    cfg = load_config(write(tmp_path, text), env={})
    p = build_providers(cfg, env={"AWS_REGION": "us-west-2", "AWS_SECRET_ACCESS_KEY": "env", "AWS_SESSION_TOKEN": "T"})
    prov = p["bedrock"]
    # config wins over the environment; the env session token belongs to the env secret only
    assert prov.options == BedrockOptions(region="eu-west-3", aws_secret_access_key="cfg-secret",
                                          structured_output="output_config")
    assert cfg.providers["bedrock"].options["region"] == "eu-west-3"  # the config itself is left as it was
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {}}}}
    req = request_for(prov, "anthropic.claude-3-5-haiku-20241022-v1:0", {"messages": USER, "response_format": schema})
    assert str(req.url).startswith("https://bedrock-runtime.eu-west-3.amazonaws.com/model/")
    assert re.search(r"Credential=AKIDTEST/\d{8}/eu-west-3/bedrock/aws4_request", req.headers["Authorization"])
    assert "outputConfig" in orjson.loads(req.body or b"")  # structured_output: output_config, not the tool route
    # from the environment alone: a new struct with the env values filled in
    prov = build_providers(load_config(None, env={}), env={"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "S",
                                                           "AWS_SESSION_TOKEN": "T", "AWS_DEFAULT_REGION": "ap-south-1"})["bedrock"]
    assert prov.options == BedrockOptions(region="ap-south-1", aws_secret_access_key="S", aws_session_token="T")


def test_option_credentials_are_still_redacted(tmp_path: Path) -> None:
    from unigate.app import register_secrets

    secret = "bedrock-secret-from-options-0123"
    cfg = load_config(write(tmp_path, f"providers:\n  bedrock:\n    api_key: AK\n    options: {{aws_secret_access_key: {secret}}}\n"),
                      env={})
    register_secrets(cfg, build_providers(cfg, env={}).values())
    assert secret not in redact.scrub_secrets(f"upstream said: {secret}")


def test_options_as_refuses_another_dialects_options() -> None:
    assert options_as(GeminiOptions(), GeminiOptions) == GeminiOptions()
    with pytest.raises(TypeError, match="expected BedrockOptions"):
        options_as(GeminiOptions(), BedrockOptions)
    assert dict(BedrockOptions(region="r").items())["region"] == "r"




def test_the_embedded_model_is_a_preset_configured_under_local() -> None:
    from unigate.config import ConfigError, parse_config
    from unigate.providers.presets import PRESETS

    assert PRESETS["local"].dialect == "local"
    with pytest.raises(ConfigError, match=r"\$\.providers\.mine: the embedded model is configured under `local:`"):
        parse_config({"providers": {"mine": {"preset": "local"}}}, where="<test>")
