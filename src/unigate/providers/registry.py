"""Builds the runtime providers from the config and the environment, and maps dialect names to
adapter classes. Dialect modules are imported only when a provider needs them."""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Mapping

import msgspec
from multidict import CIMultiDict

from unigate.config import Config, ProviderConfig
from unigate.providers.base import Adapter, Provider
from unigate.providers.options import AzureOptions, BedrockOptions, parse_options
from unigate.providers.presets import PRESETS, Preset

#: dialect name -> "module:Class"; a native provider adds one line here.
DIALECTS: dict[str, str] = {
    "openai": "unigate.providers.openai_compat:OpenAICompatAdapter",
    "anthropic": "unigate.providers.anthropic:AnthropicAdapter",
    "gemini": "unigate.providers.gemini:GeminiAdapter",
    "bedrock": "unigate.providers.bedrock:BedrockAdapter",
    "cohere": "unigate.providers.cohere:CohereAdapter",
    "azure": "unigate.providers.azure:AzureOpenAIAdapter",
    "local": "unigate.providers.local:LocalAdapter",
}

_adapters: dict[str, Adapter] = {}


def adapter_for(dialect: str) -> Adapter:
    if dialect not in _adapters:
        mod_name, _, cls_name = DIALECTS[dialect].partition(":")
        cls = getattr(importlib.import_module(mod_name), cls_name)
        _adapters[dialect] = cls()
    return _adapters[dialect]


def _env_first(env: Mapping[str, str], names: list[str]) -> str | None:
    for n in names:
        v = env.get(n)
        if v:
            return v
    return None


def key_env_names(preset: Preset) -> list[str]:
    return [f"{preset.env_prefix}_API_KEY", *preset.key_envs]


def base_url_env_names(preset: Preset) -> list[str]:
    return [f"{preset.env_prefix}_BASE_URL", *preset.base_url_envs]


def auth_headers(preset: Preset, api_key: str | None) -> dict[str, str]:
    if not api_key or preset.auth == "none":
        return {}
    if preset.auth == "bearer":
        return {"Authorization": f"Bearer {api_key}"}
    if preset.auth.startswith("header:"):
        return {preset.auth[7:]: api_key}
    return {}  # sigv4: the dialect signs every request itself


def _normalise_base_url(preset: Preset, url: str) -> str:
    url = url.rstrip("/")
    if preset.id == "ollama" and not url.endswith("/v1") and "://" in url:
        url += "/v1"  # OLLAMA_HOST is the server root; its OpenAI layer lives under /v1
    elif preset.id == "ollama" and "://" not in url:
        url = f"http://{url}/v1"
    return url


def with_credentials(p: Provider, api_key: str | None, base_url: str | None) -> Provider:
    """`p` with a deployment's own key and/or base URL (several keys of one provider form a pool)."""
    headers = CIMultiDict(p.headers)
    if api_key:
        for name in auth_headers(p.preset, p.api_key):
            headers.popall(name, None)
        headers.update(auth_headers(p.preset, api_key))
    return dataclasses.replace(p, api_key=api_key or p.api_key, headers=headers,
                               base_url=_normalise_base_url(p.preset, base_url) if base_url else p.base_url)


def build_providers(cfg: Config, env: Mapping[str, str] | None = None) -> dict[str, Provider]:
    """Providers from the config file, plus every preset whose key (or, for self-hosted servers,
    base URL) is in the environment, read the way the vendor's own SDK reads it."""
    env = os.environ if env is None else env
    out: dict[str, Provider] = {}
    for pid, preset in PRESETS.items():
        if pid in cfg.providers or preset.dialect == "local":
            continue  # the embedded model's deployments come from `local:` (providers/local/models.py)
        key = _env_first(env, key_env_names(preset))
        base = _env_first(env, base_url_env_names(preset))
        if key or (preset.keyless and base):
            out[pid] = _make(pid, preset, ProviderConfig(), key, base, cfg, env)
    for pid, pc in cfg.providers.items():
        if not pc.enabled:
            continue
        preset = PRESETS[pc.preset or pid]
        key = pc.api_key or _env_first(env, key_env_names(preset))
        base = pc.base_url or _env_first(env, base_url_env_names(preset))
        out[pid] = _make(pid, preset, pc, key, base, cfg, env)
    return out


def _make(pid: str, preset: Preset, pc: ProviderConfig, key: str | None, base: str | None, cfg: Config,
          env: Mapping[str, str]) -> Provider:
    # a CIMultiDict, aiohttp's own header type: it takes it as is instead of converting a dict per call
    headers = CIMultiDict({"Content-Type": "application/json", **dict(preset.extra_headers), **auth_headers(preset, key),
                           **pc.headers})
    options = parse_options(preset.dialect, pc.options)  # checked by config._check already
    if isinstance(options, BedrockOptions):
        options, base = _bedrock_env(options, base, env)
    elif isinstance(options, AzureOptions) and not options.api_version and env.get("OPENAI_API_VERSION"):
        # what the AzureOpenAI SDK reads
        options = msgspec.structs.replace(options, api_version=env["OPENAI_API_VERSION"])
    return Provider(
        id=pid,
        preset=preset,
        base_url=_normalise_base_url(preset, base or preset.base_url),
        api_key=key,
        headers=headers,
        timeouts=pc.timeouts or cfg.timeouts,
        options=options,
    )


def _bedrock_env(options: BedrockOptions, base: str | None, env: Mapping[str, str]) -> tuple[BedrockOptions, str]:
    """Bedrock signs with SigV4, so besides the access key id (the provider's api_key) it needs
    the secret, an optional session token and the region, read here the way the AWS SDKs read
    them (adapters never read the environment). Config `options` win over the environment. The
    default endpoint follows the region unless a base URL was given. Returns the options with
    those filled in (a new struct) and the base URL."""
    secret, token = options.aws_secret_access_key, options.aws_session_token
    if not secret:
        secret = env.get("AWS_SECRET_ACCESS_KEY") or None
        if not token:
            token = env.get("AWS_SESSION_TOKEN") or None  # belongs to the env credentials only
    region = options.region or _env_first(env, ["AWS_REGION", "AWS_DEFAULT_REGION"]) or "us-east-1"
    options = msgspec.structs.replace(options, aws_secret_access_key=secret, aws_session_token=token, region=region)
    return options, base or f"https://bedrock-runtime.{region}.amazonaws.com"
