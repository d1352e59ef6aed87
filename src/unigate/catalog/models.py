"""The model catalog: context window, max output, capabilities and prices per `provider/model`.

Two sources, merged once at load:

- `data/models.yaml` (in this package): the models we list, with context window, max output and
  capabilities, each entry with its `source`, plus prices for models genai-prices does not know.
- the `genai-prices` package: prices (and context windows where the data file has none). Only the
  snapshot shipped inside the installed package is used: we build our own `DataSnapshot` from
  `genai_prices.data.providers`, so even if something in the process started genai-prices'
  `UpdatePrices` background fetcher (we never do), our numbers would not change under us.

Lookups are tolerant where genai-prices' matching is: `anthropic/claude-3-5-haiku-20241022` finds
the `anthropic/claude-3-5-haiku-latest` entry because genai-prices maps both to one model.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from importlib import resources
from typing import Any

import yaml

from unigate.endpoints import Endpoint
from unigate.errors import UnsupportedFeature

CAPABILITIES = ("tools", "vision", "json_schema", "streaming", "embeddings", "reasoning")

#: our provider id -> genai-prices provider id. Explicit on purpose: genai-prices' own fuzzy
#: provider matching would, e.g., price a DeepInfra model at another host's rate. Providers not
#: listed here are priced only from the data file or the deployment's config.
GP_PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "gemini_openai": "google",
    "bedrock": "aws",
    "azure": "azure",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "together": "together",
    "xai": "x-ai",
    "cohere": "cohere",
    "fireworks": "fireworks",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
    "novita": "novita",
    "moonshot": "moonshotai",
    "zhipu": "zhipuai",
}

_MAX_CACHE = 4096  # lookups come from configured model names; the bound only guards against misuse


_CHAT_FEATURES = ("tools", "json_schema", "vision", "streaming")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str  # "provider/model"
    provider: str
    model: str
    context_window: int | None
    max_output: int | None
    capabilities: frozenset[str]
    #: capabilities the sources could not confirm either way: never used to refuse a request.
    unknown: frozenset[str] = frozenset()
    #: USD per million tokens (the base tier when `tiered`).
    input_price: float | None = None
    output_price: float | None = None
    cache_read_price: float | None = None
    cache_write_price: float | None = None
    #: genai-prices has prompt-size tiers or dated/time-of-day variants; cost_usd applies them.
    tiered: bool = False
    price_source: str = ""
    source: str = ""
    deprecated: bool = False
    #: the chat features the catalog knows this model lacks: check_capabilities looks no further
    #: when it is empty (most models), so a chat request pays one attribute test
    chat_denied: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        denied = frozenset(c for c in _CHAT_FEATURES if self.supports(c) is False)
        object.__setattr__(self, "chat_denied", denied)

    def supports(self, cap: str) -> bool | None:
        """True / False, or None when the catalog does not know."""
        if cap in self.capabilities:
            return True
        return None if cap in self.unknown else False

    @property
    def priced(self) -> bool:
        return self.input_price is not None or self.output_price is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "context_window": self.context_window,
            "max_output_tokens": self.max_output,
            "capabilities": sorted(self.capabilities),
            "pricing": None
            if not self.priced
            else {
                "input_per_million": self.input_price,
                "output_per_million": self.output_price,
                "cache_read_per_million": self.cache_read_price,
                "cache_write_per_million": self.cache_write_price,
                "tiered": self.tiered,
                "source": self.price_source,
            },
        }


@dataclass(slots=True)
class _Entry:
    """A data-file row as loaded, before genai-prices is merged in."""

    info: ModelInfo
    gp_override: tuple[str, str] | None = None
    #: the genai-prices model id this row resolves to (None: priced from the data file, or not at all)
    gp_model_id: str | None = None
    #: the data-file price block {input, output, cache_read?, cache_write?, source}
    price: dict[str, Any] | None = None


class GenaiPrices:
    """The genai-prices snapshot shipped with the package, and our provider mapping onto it."""

    def __init__(self) -> None:
        from genai_prices.data import providers
        from genai_prices.data_snapshot import DataSnapshot

        self.snapshot = DataSnapshot(providers=providers, from_auto_update=False)
        self._ids = {p.id for p in providers}

    def resolve(self, provider_id: str, model: str, override: tuple[str, str] | None = None) -> tuple[Any, Any] | None:
        """(genai Provider, genai ModelInfo) for our provider/model, or None if it has no price there."""
        if override is not None:
            gp_provider, ref = override
        elif provider_id == "huggingface":
            # The HF router picks the serving provider with a `:provider` suffix; genai-prices
            # keeps one price list per HF-routed provider (`huggingface_<name>`).
            base, _, sub = model.rpartition(":")
            if not base or f"huggingface_{sub.lower()}" not in self._ids:
                return None
            gp_provider, ref = f"huggingface_{sub.lower()}", base
        else:
            gp = GP_PROVIDERS.get(provider_id)
            if gp is None:
                return None
            gp_provider, ref = gp, model
        try:
            return self.snapshot.find_provider_model(ref, None, gp_provider, None)
        except LookupError:
            return None


def _price_float(value: Any) -> float | None:
    if value is None:
        return None
    return float(getattr(value, "base", value))  # TieredPrices -> its base tier


def _parse_gp(spec: str | None) -> tuple[str, str] | None:
    if not spec:
        return None
    prov, _, ref = spec.partition(":")
    return (prov, ref) if ref else None


class Catalog:
    def __init__(self, rows: list[Mapping[str, Any]], gp: GenaiPrices) -> None:
        self.gp = gp
        self._by_key: dict[tuple[str, str], ModelInfo] = {}
        self._by_gp: dict[tuple[str, str], ModelInfo] = {}
        self._cache: dict[tuple[str, str], ModelInfo | None] = {}
        self._lock = threading.Lock()
        self.entries: list[_Entry] = []
        now = datetime.now(UTC)
        for row in rows:
            entry = self._build(row, now)
            self.entries.append(entry)
            info = entry.info
            self._by_key[(info.provider, info.model.lower())] = info
            if entry.gp_model_id is not None:
                self._by_gp.setdefault((info.provider, entry.gp_model_id), info)

    def _build(self, row: Mapping[str, Any], now: datetime) -> _Entry:
        mid = str(row["id"])
        provider, sep, model = mid.partition("/")
        if not sep or not model:
            raise ValueError(f"catalog: id {mid!r} is not provider/model")
        caps = frozenset(row.get("caps") or ())
        unknown = frozenset(row.get("unknown") or ())
        bad = (caps | unknown) - set(CAPABILITIES)
        if bad:
            raise ValueError(f"catalog: {mid}: unknown capabilities {sorted(bad)}")
        override = _parse_gp(row.get("gp"))
        price = row.get("price")
        ctx = row.get("context")
        fields: dict[str, Any] = {}
        gp_model_id = None
        res = self.gp.resolve(provider, model, override)
        if res is not None:
            gprov, gmodel = res
            gp_model_id = gmodel.id
            mp = gmodel.get_prices(now)
            fields = {
                "input_price": _price_float(getattr(mp, "input_mtok", None)),
                "output_price": _price_float(getattr(mp, "output_mtok", None)),
                "cache_read_price": _price_float(getattr(mp, "cache_read_mtok", None)),
                "cache_write_price": _price_float(getattr(mp, "cache_write_mtok", None)),
                "tiered": isinstance(gmodel.prices, list)
                or any(hasattr(v, "tiers") for v in mp.__dict__.values()),
                "price_source": f"genai-prices {gprov.id}:{gmodel.id}",
                "deprecated": bool(gmodel.deprecated),
            }
            if ctx is None:
                ctx = gmodel.context_window
        elif price is not None:
            fields = {
                "input_price": _opt_float(price.get("input")),
                "output_price": _opt_float(price.get("output")),
                "cache_read_price": _opt_float(price.get("cache_read")),
                "cache_write_price": _opt_float(price.get("cache_write")),
                "price_source": str(price.get("source") or ""),
            }
            if not fields["price_source"]:
                raise ValueError(f"catalog: {mid}: a data-file price needs a source")
        info = ModelInfo(
            id=mid,
            provider=provider,
            model=model,
            context_window=int(ctx) if ctx is not None else None,
            max_output=_opt_int(row.get("max_output")),
            capabilities=caps,
            unknown=unknown,
            source=str(row.get("source") or ""),
            **fields,
        )
        return _Entry(info=info, gp_override=override, gp_model_id=gp_model_id, price=dict(price) if price else None)

    # -- queries ----------------------------------------------------------------------------

    def lookup(self, provider_id: str, model: str) -> ModelInfo | None:
        key = (provider_id, model)
        try:
            return self._cache[key]
        except KeyError:
            pass
        info = self._by_key.get((provider_id, model.lower()))
        if info is None:
            res = self.gp.resolve(provider_id, model)
            if res is not None:
                info = self._by_gp.get((provider_id, res[1].id))
        with self._lock:
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            self._cache[key] = info
        return info

    def entry(self, provider_id: str, model: str) -> _Entry | None:
        """The data-file row `lookup` finds for this model (pricing reads its data-file price)."""
        info = self.lookup(provider_id, model)
        if info is None:
            return None
        return self._entries_by_id.get(info.id)

    @cached_property
    def _entries_by_id(self) -> dict[str, _Entry]:
        return {e.info.id: e for e in self.entries}

    def all(self) -> list[ModelInfo]:
        return [e.info for e in self.entries]

    def models_for(self, provider_ids: Iterable[str]) -> list[ModelInfo]:
        wanted = set(provider_ids)
        return [e.info for e in self.entries if e.info.provider in wanted]


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


# -- the process-wide catalog, loaded on first use ------------------------------------------------

_catalog: Catalog | None = None
_load_lock = threading.Lock()


def load_rows() -> list[Mapping[str, Any]]:
    text = resources.files("unigate.catalog").joinpath("data/models.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    rows = data.get("models") or []
    seen: set[str] = set()
    for row in rows:
        if row["id"] in seen:
            raise ValueError(f"catalog: duplicate id {row['id']!r}")
        seen.add(row["id"])
    return list(rows)


def get_catalog() -> Catalog:
    """The catalog, loaded once (reading genai-prices' data takes ~0.4 s: call at start-up to warm)."""
    global _catalog
    if _catalog is None:
        with _load_lock:
            if _catalog is None:
                _catalog = Catalog(load_rows(), GenaiPrices())
    return _catalog


def lookup(provider_id: str, model: str) -> ModelInfo | None:
    return get_catalog().lookup(provider_id, model)


def models_for(provider_ids: Iterable[str]) -> list[ModelInfo]:
    return get_catalog().models_for(provider_ids)


def all_models() -> list[ModelInfo]:
    return get_catalog().all()


# -- capability checks ------------------------------------------------------------------------

_IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})


def _has_image(messages: Any) -> bool:
    if not isinstance(messages, list):
        return False
    for msg in messages:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") in _IMAGE_PARTS:
                    return True
    return False


def _refuse(info: ModelInfo, what: str, param: str | None, hint: str) -> UnsupportedFeature:
    return UnsupportedFeature(f"model '{info.id}' does not support {what}; {hint}", param=param)


def check_capabilities(body: Mapping[str, Any], info: ModelInfo | None, endpoint: Endpoint) -> None:
    """Refuse (400 UnsupportedFeature) a request the catalog says the model cannot serve.

    Unknown models (info None) and capabilities the catalog marks unknown pass: the upstream
    decides. Only a known "no" refuses, so a wrong guess never blocks a request.
    """
    if info is None:
        return
    is_embed_model = "embeddings" in info.capabilities
    if endpoint is Endpoint.EMBEDDINGS:
        if info.supports("embeddings") is False:
            raise _refuse(info, "embeddings", "model", "pick an embeddings model for /v1/embeddings")
        return
    if is_embed_model:
        raise _refuse(info, "chat or text completions (it is an embeddings model)", "model", "use /v1/embeddings")
    denied = info.chat_denied
    if not denied:
        return
    tools = body.get("tools") or body.get("functions")
    if tools and "tools" in denied:
        raise _refuse(info, "tools (function calling)", "tools", "remove `tools` or pick a model that supports them")
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type") == "json_schema" and "json_schema" in denied:
        raise _refuse(
            info, "structured output (response_format json_schema)", "response_format",
            "use response_format {\"type\": \"json_object\"} or a model that supports json_schema",
        )
    if "vision" in denied and _has_image(body.get("messages")):
        raise _refuse(info, "image input", "messages", "send text only or pick a vision model")
    if body.get("stream") and "streaming" in denied:
        raise _refuse(info, "streaming", "stream", "set stream to false")


__all__ = [
    "CAPABILITIES",
    "GP_PROVIDERS",
    "Catalog",
    "GenaiPrices",
    "ModelInfo",
    "all_models",
    "check_capabilities",
    "get_catalog",
    "lookup",
    "models_for",
]
