"""Bare model names: `claude-sonnet-4-5`, `gpt-4.1-mini`, `gemini-2.0-flash`, as coding agents
and SDK samples send them, without the gateway's `provider/` prefix.

A bare name goes to the configured providers that serve it, tried in this order of rules (the
first rule that names a configured provider decides, and its order is the fallback order):

  1. `routing.bare_names` in the config: the first glob that matches names the providers;
  2. the vendors' own prefixes (`VENDOR_RULES`: `claude-*` -> anthropic, then bedrock; ...);
  3. the catalog: the configured providers that list the name. Several is ambiguous (a 404
     that lists them), as nothing says which one the operator would want.

A provider whose model ids differ from the vendor's takes the bare name through the catalog
(Bedrock's `anthropic.claude-sonnet-4-5-20250929-v1:0` is `claude-sonnet-4-5-20250929` and
`claude-sonnet-4-5`); with no such entry it cannot serve the name and is passed over.

Suffixes clients add: `[1m]` is Claude Code's 1M-context selector (the CLI sends the matching
`anthropic-beta` header itself), so it is removed; `-latest` is part of the vendors' own names
(`claude-3-5-haiku-latest`) and goes to them as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from unigate.providers.base import Provider

#: glob -> provider ids, in the order tried. Only providers configured on this gateway count. An
#: empty tuple: a vendor's open-weight model its own API does not serve (the catalog's hosts do).
VENDOR_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("claude-*", ("anthropic", "bedrock")),
    ("gpt-oss-*", ()),
    ("gpt-*", ("openai", "azure")),
    ("chatgpt-*", ("openai", "azure")),
    ("o[1-9]", ("openai", "azure")),
    ("o[1-9]-*", ("openai", "azure")),
    ("text-embedding-*", ("openai", "azure")),
    ("omni-moderation-*", ("openai", "azure")),
    ("gemini-*", ("gemini", "gemini_openai")),
    ("mistral-*", ("mistral",)),
    ("codestral-*", ("mistral",)),
    ("ministral-*", ("mistral",)),
    ("magistral-*", ("mistral",)),
    ("devstral-*", ("mistral",)),
    ("pixtral-*", ("mistral",)),
    ("open-mistral-*", ("mistral",)),
    ("deepseek-*", ("deepseek",)),
    ("grok-*", ("xai",)),
    ("command-*", ("cohere",)),
    ("embed-*", ("cohere",)),
    ("kimi-*", ("moonshot",)),
    ("glm-*", ("zhipu",)),
    ("qwen-*", ("dashscope",)),
    ("sonar", ("perplexity",)),
    ("sonar-*", ("perplexity",)),
)

_CLIENT_SUFFIX = re.compile(r"(?:\[1m\])+$", re.IGNORECASE)
#: Bedrock ids: an optional cross-region inference prefix, the vendor, the name, a version
_BEDROCK_ID = re.compile(r"^(?:(?:us|eu|apac|jp|au|ca|us-gov|global)\.)?[a-z0-9-]+\.(.+?)(?:-v\d+(?::\d+)?)?$")
_DATED = re.compile(r"-\d{8}$")


def strip_client_suffix(name: str) -> str:
    return _CLIENT_SUFFIX.sub("", name)


def bedrock_vendor_names(model: str) -> tuple[str, ...]:
    """The names a vendor gives a Bedrock model id: with its date and without."""
    m = _BEDROCK_ID.match(model)
    if m is None:
        return ()
    full = m.group(1)
    undated = _DATED.sub("", full)
    return (full,) if undated == full else (full, undated)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a bare name resolved to: `(provider id, upstream model)` pairs, first choice first.
    Empty `targets` carries why, for the 404 message."""

    targets: tuple[tuple[str, str], ...]
    #: the rule that decided ("routing.bare_names 'claude-*'", "the claude-* prefix", "the catalog")
    rule: str = ""
    #: more than one configured provider lists it and no rule orders them
    ambiguous: bool = False
    #: providers the matching rules name that are not configured (for "set X_API_KEY")
    unconfigured: tuple[str, ...] = ()
    #: configured providers a rule names that have no model of that name (Bedrock without a mapping)
    unmapped: tuple[str, ...] = ()


class BareNames:
    """Resolves bare names against the configured providers (and the catalog, read on first use)."""

    def __init__(self, rules: Mapping[str, list[str]], providers: Mapping[str, Provider],
                 local_models: Iterable[str] = ()) -> None:
        self._user = tuple((glob, tuple(pids)) for glob, pids in rules.items())
        self._providers = providers
        self._local = frozenset(local_models)
        self._index: dict[str, list[tuple[str, str]]] | None = None

    def resolve(self, name: str) -> Resolution:
        unconfigured: list[str] = []
        unmapped: list[str] = []
        for source, rules in (("routing.bare_names", self._user), ("the vendor prefix", VENDOR_RULES)):
            for glob, pids in rules:
                if not fnmatchcase(name, glob):
                    continue
                targets = []
                for pid in pids:
                    if pid not in self._providers:
                        unconfigured.append(pid)
                        continue
                    model = self._model_on(pid, name)
                    if model is None:
                        unmapped.append(pid)
                    else:
                        targets.append((pid, model))
                if targets:
                    return Resolution(tuple(targets), f"{source} {glob!r}")
                if source == "routing.bare_names":
                    # the operator's rule is the whole answer for the names it matches
                    return Resolution((), f"{source} {glob!r}", unconfigured=tuple(unconfigured),
                                      unmapped=tuple(unmapped))
                break  # one vendor rule per name; the catalog may still know another host
        listed = self._catalog_index().get(name, [])
        if len(listed) == 1:
            return Resolution(tuple(listed), "the catalog")
        return Resolution(tuple(listed), "the catalog", ambiguous=len(listed) > 1,
                          unconfigured=tuple(unconfigured), unmapped=tuple(unmapped))

    def _model_on(self, pid: str, name: str) -> str | None:
        """The upstream model name `pid` knows `name` by, or None when it cannot tell."""
        prov = self._providers[pid]
        if prov.preset.dialect != "bedrock":
            return name
        from unigate import catalog

        for info in catalog.models_for([prov.preset.id]):
            if name in bedrock_vendor_names(info.model):
                return info.model
        return None

    def _catalog_index(self) -> dict[str, list[tuple[str, str]]]:
        """model name -> the configured providers whose catalog lists it (under their own id;
        a provider renamed from a preset is another server, so it claims none of its models)."""
        if self._index is None:
            from unigate import catalog

            index: dict[str, list[tuple[str, str]]] = {m: [("local", m)] for m in sorted(self._local)}
            native = [pid for pid, p in self._providers.items() if p.preset.id == pid]
            for info in catalog.models_for(native):
                index.setdefault(info.model, []).append((info.provider, info.model))
            self._index = index
        return self._index
