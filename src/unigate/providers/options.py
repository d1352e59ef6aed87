"""Provider options (`providers.<id>.options` in the config file), typed per dialect.

Each dialect that has settings of its own declares them here as one frozen struct; a dialect
without any takes `NoOptions`, so every key under its `options:` is an error. The config check
(`config._check`) converts each provider's raw mapping with `parse_options` and stops start-up
on an unknown or mistyped key; the registry converts it again into the `Provider.options` the
adapter reads (filling values from the environment first, see `registry._bedrock_env`).

Empty strings mean "not set" throughout (so `${AWS_REGION:-}` falls back like an absent key).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal, TypeVar

import msgspec


class ProviderOptions(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of every dialect's options. Subclasses restate `frozen=True` for type checkers
    (see `config._Strict`)."""

    def items(self) -> Iterator[tuple[str, Any]]:
        """(name, value) pairs, as a mapping's `items()` would give them (`register_secrets`
        walks them to find credentials)."""
        for name in self.__struct_fields__:
            yield name, getattr(self, name)


class NoOptions(ProviderOptions, frozen=True):
    """The dialect takes no options (OpenAI-compatible presets, Anthropic, Cohere)."""


class AzureOptions(ProviderOptions, frozen=True):
    #: the `api-version` query of the classic URL style; unset: `OPENAI_API_VERSION`, else
    #: `azure.DEFAULT_API_VERSION`.
    api_version: str | None = None
    #: "classic": `{base}/openai/deployments/{deployment}/{op}?api-version=...`;
    #: "v1": the version-free `{base}/openai/v1/{op}` (a base URL ending in `/openai/v1` picks it too).
    api_style: Literal["classic", "v1"] = "classic"


class GeminiOptions(ProviderOptions, frozen=True):
    #: the URL's API version segment: "v1beta" (default) or "v1" (or "v1alpha").
    api_version: str = "v1beta"
    #: "openapi": tool and response schemas rewritten onto Gemini's OpenAPI subset (every model);
    #: "json": sent as JSON Schema (`parametersJsonSchema` / `responseJsonSchema`, newer models).
    schema_mode: Literal["openapi", "json"] = "openapi"


class BedrockOptions(ProviderOptions, frozen=True):
    #: the AWS region that signs and, unless `base_url` is set, picks the endpoint; unset:
    #: `AWS_REGION`, `AWS_DEFAULT_REGION`, else us-east-1.
    region: str | None = None
    #: the SigV4 secret (the access key id is the provider's api_key); unset:
    #: `AWS_SECRET_ACCESS_KEY`. Without one, the key is sent as a Bedrock API key (bearer).
    aws_secret_access_key: str | None = None
    #: temporary credentials' session token; unset: `AWS_SESSION_TOKEN`, unless
    #: `aws_secret_access_key` is set here (the env token belongs to the env secret).
    aws_session_token: str | None = None
    #: how a json_schema response_format is obtained: "auto", "tool" (a forced tool) or
    #: "output_config" (Converse's outputConfig.textFormat).
    structured_output: Literal["auto", "tool", "output_config"] = "auto"


#: dialect -> its options type; a dialect not listed takes `NoOptions`.
OPTIONS: dict[str, type[ProviderOptions]] = {
    "azure": AzureOptions,
    "gemini": GeminiOptions,
    "bedrock": BedrockOptions,
}


def options_type(dialect: str) -> type[ProviderOptions]:
    return OPTIONS.get(dialect, NoOptions)


def parse_options(dialect: str, raw: Mapping[str, Any]) -> ProviderOptions:
    """`raw` (a config file's `options:` mapping) as `dialect`'s options struct. Raises
    `msgspec.ValidationError` on an unknown or mistyped key (see `config._check`)."""
    return msgspec.convert(dict(raw), options_type(dialect), strict=False)


OptionsT = TypeVar("OptionsT", bound=ProviderOptions)


def options_as(options: object, cls: type[OptionsT]) -> OptionsT:
    """`Provider.options` as the adapter's own options type (a provider built by the registry
    always holds its dialect's struct)."""
    if isinstance(options, cls):
        return options
    raise TypeError(f"provider options are {type(options).__name__}, expected {cls.__name__}")
