"""The model catalog: coverage, sources, tolerant lookup, capability checks, `unigate models`."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from unigate import catalog, cli
from unigate.catalog.models import Catalog, GenaiPrices, ModelInfo, get_catalog, load_rows
from unigate.endpoints import Endpoint
from unigate.errors import InvalidRequest, UnsupportedFeature
from unigate.providers.presets import PRESETS


def _priced_with_context() -> list[ModelInfo]:
    return [m for m in catalog.all_models() if m.context_window and m.input_price is not None and m.output_price is not None]


def test_catalog_covers_60_models_from_20_providers_with_context_and_prices() -> None:
    full = _priced_with_context()
    assert len(full) >= 60
    assert len({m.provider for m in full}) >= 20


def test_every_entry_is_a_known_provider_with_a_source_and_context() -> None:
    for m in catalog.all_models():
        assert m.provider in PRESETS or m.provider == "local", m.id
        assert m.source, f"{m.id} has no source note"
        assert m.capabilities, m.id
        if m.provider != "local":  # the embedded model's context is whatever its config says
            assert m.context_window, f"{m.id} has no context window"
        assert m.priced, f"{m.id} has no price"
        assert m.price_source, m.id


def test_prices_come_from_genai_prices_when_it_knows_the_model() -> None:
    cat = get_catalog()
    from_gp = 0
    for e in cat.entries:
        known = cat.gp.resolve(e.info.provider, e.info.model, e.gp_override) is not None
        if known:
            from_gp += 1
            # one source of truth: a data-file price would silently shadow genai-prices
            assert e.price is None, f"{e.info.id}: genai-prices knows it; drop the data-file price"
            assert e.info.price_source.startswith("genai-prices ")
        else:
            assert e.price is not None and e.price.get("source"), f"{e.info.id}: unpriced and no source"
    assert from_gp >= 60


def test_model_info_matches_genai_prices() -> None:
    from genai_prices.data_snapshot import get_snapshot

    info = catalog.lookup("openai", "gpt-4o-mini")
    assert info is not None
    assert (info.context_window, info.max_output) == (128000, 16384)
    _, gm = get_snapshot().find_provider_model("gpt-4o-mini", None, "openai", None)
    mp = gm.prices
    assert info.input_price == float(mp.input_mtok)
    assert info.output_price == float(mp.output_mtok)
    assert info.cache_read_price == float(mp.cache_read_mtok)
    assert {"tools", "vision", "json_schema", "streaming"} <= info.capabilities
    claude = catalog.lookup("anthropic", "claude-3-5-haiku-latest")
    assert claude is not None and claude.cache_write_price == 1.0 and claude.cache_read_price == 0.08


def test_data_file_priced_model() -> None:
    info = catalog.lookup("sambanova", "Meta-Llama-3.3-70B-Instruct")
    assert info is not None
    assert (info.input_price, info.output_price) == (0.6, 1.2)
    assert "sambanova" in info.price_source
    local = catalog.lookup("local", "smollm2")
    assert local is not None and (local.input_price, local.output_price) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("anthropic", "claude-3-5-haiku-20241022", "anthropic/claude-3-5-haiku-latest"),
        ("anthropic", "claude-3-5-haiku", "anthropic/claude-3-5-haiku-latest"),
        ("openai", "gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),
        ("openai", "GPT-4o-mini", "openai/gpt-4o-mini"),
        ("bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0", "bedrock/anthropic.claude-3-5-haiku-20241022-v1:0"),
        ("groq", "llama-3.3-70b-versatile", "groq/llama-3.3-70b-versatile"),
        ("huggingface", "meta-llama/Llama-3.3-70B-Instruct:nebius", "huggingface/meta-llama/Llama-3.3-70B-Instruct:nebius"),
    ],
)
def test_lookup_is_tolerant_of_dates_and_aliases(provider: str, model: str, expected: str) -> None:
    info = catalog.lookup(provider, model)
    assert info is not None and info.id == expected


def test_lookup_unknown_models_and_providers() -> None:
    assert catalog.lookup("openai", "no-such-model") is None
    assert catalog.lookup("ollama", "llama3.2") is None
    assert catalog.lookup("nosuchprovider", "gpt-4o-mini") is None
    # a different genai-prices model is not an alias: gpt-4o-2024-05-13 is priced separately
    assert catalog.lookup("openai", "gpt-4o-2024-05-13") is None


def test_models_for() -> None:
    ms = catalog.models_for(["openai", "groq"])
    assert {m.provider for m in ms} == {"openai", "groq"}
    assert len(ms) == len([m for m in catalog.all_models() if m.provider in ("openai", "groq")])
    assert catalog.models_for([]) == []
    d = ms[0].to_dict()
    assert d["id"] == ms[0].id and d["context_window"] and d["pricing"]["input_per_million"] is not None


def test_only_the_shipped_snapshot_is_used() -> None:
    import genai_prices
    from genai_prices import data_snapshot
    from genai_prices.data_snapshot import DataSnapshot

    cat = get_catalog()
    assert cat.gp.snapshot.from_auto_update is False
    assert not any(t.name.startswith("genai_prices") for t in threading.enumerate())
    # even if someone installed another snapshot (what UpdatePrices does), ours does not move
    data_snapshot.set_custom_snapshot(DataSnapshot(providers=[], from_auto_update=True))
    try:
        fresh = GenaiPrices()
        assert fresh.resolve("openai", "gpt-4o-mini") is not None
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert genai_prices.data_snapshot.get_snapshot().from_auto_update is False


def test_data_file_validation() -> None:
    rows = load_rows()
    assert len(rows) == len({r["id"] for r in rows})
    gp = get_catalog().gp
    with pytest.raises(ValueError, match="capabilities"):
        Catalog([{"id": "openai/x", "caps": ["telepathy"], "source": "s"}], gp)
    with pytest.raises(ValueError, match="source"):
        Catalog([{"id": "deepinfra/x", "caps": ["tools"], "price": {"input": 1, "output": 2}}], gp)
    with pytest.raises(ValueError, match="provider/model"):
        Catalog([{"id": "nomodel", "caps": ["tools"]}], gp)


# -- capability checks -----------------------------------------------------------------------------

def _info(pid: str, model: str) -> ModelInfo:
    info = catalog.lookup(pid, model)
    assert info is not None
    return info


TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
IMAGE_MSG = [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                          {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}]}]


def test_tools_on_a_model_without_tools_is_a_400() -> None:
    sonar = _info("perplexity", "sonar")
    body: dict[str, Any] = {"model": "perplexity/sonar", "messages": [{"role": "user", "content": "hi"}], "tools": TOOLS}
    with pytest.raises(UnsupportedFeature) as ei:
        catalog.check_capabilities(body, sonar, Endpoint.CHAT)
    err = ei.value
    assert isinstance(err, InvalidRequest) and err.http_status == 400
    assert "perplexity/sonar" in err.message and "tools" in err.message
    assert err.body()["error"]["code"] == "unsupported_feature" and err.param == "tools"
    # legacy `functions` counts too
    with pytest.raises(UnsupportedFeature):
        catalog.check_capabilities({"messages": [], "functions": [{"name": "f"}]}, sonar, Endpoint.CHAT)
    # and the same body passes for a model with tools
    catalog.check_capabilities(body, _info("openai", "gpt-4o-mini"), Endpoint.CHAT)


def test_image_input_on_a_text_only_model_is_a_400() -> None:
    body = {"messages": IMAGE_MSG}
    with pytest.raises(UnsupportedFeature) as ei:
        catalog.check_capabilities(body, _info("openai", "o3-mini"), Endpoint.CHAT)
    assert "openai/o3-mini" in ei.value.message and "image" in ei.value.message
    catalog.check_capabilities(body, _info("openai", "gpt-4o"), Endpoint.CHAT)
    # text-only content arrays are fine on a text-only model
    catalog.check_capabilities({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
                               _info("openai", "o3-mini"), Endpoint.CHAT)


def test_json_schema_and_streaming_checks() -> None:
    plain = ModelInfo(id="x/plain", provider="x", model="plain", context_window=1000, max_output=None,
                      capabilities=frozenset({"tools"}))
    rf = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}
    with pytest.raises(UnsupportedFeature) as ei:
        catalog.check_capabilities({"messages": [], "response_format": rf}, plain, Endpoint.CHAT)
    assert ei.value.param == "response_format" and "x/plain" in ei.value.message
    catalog.check_capabilities({"messages": [], "response_format": {"type": "json_object"}}, plain, Endpoint.CHAT)
    catalog.check_capabilities({"messages": [], "response_format": rf}, _info("openai", "gpt-4o-mini"), Endpoint.CHAT)
    with pytest.raises(UnsupportedFeature):
        catalog.check_capabilities({"messages": [], "stream": True}, plain, Endpoint.CHAT)


def test_embeddings_checks() -> None:
    emb = _info("openai", "text-embedding-3-small")
    catalog.check_capabilities({"input": "hi"}, emb, Endpoint.EMBEDDINGS)
    with pytest.raises(UnsupportedFeature, match="embeddings"):
        catalog.check_capabilities({"input": "hi"}, _info("openai", "gpt-4o"), Endpoint.EMBEDDINGS)
    with pytest.raises(UnsupportedFeature, match="embeddings model"):
        catalog.check_capabilities({"messages": [{"role": "user", "content": "hi"}]}, emb, Endpoint.CHAT)


def test_unknown_models_and_unconfirmed_capabilities_pass() -> None:
    body = {"messages": IMAGE_MSG, "tools": TOOLS, "stream": True,
            "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {}}}}
    catalog.check_capabilities(body, None, Endpoint.CHAT)
    hyper = _info("hyperbolic", "meta-llama/Llama-3.3-70B-Instruct")
    assert hyper.supports("tools") is None
    catalog.check_capabilities({"messages": [], "tools": TOOLS}, hyper, Endpoint.CHAT)


# -- `unigate models` ------------------------------------------------------------------------------

def test_unigate_models_prints_the_catalog(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for p in PRESETS.values():
        monkeypatch.delenv(f"{p.env_prefix}_API_KEY", raising=False)
        monkeypatch.delenv(f"{p.env_prefix}_BASE_URL", raising=False)
        for name in p.key_envs + p.base_url_envs:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("UNIGATE_CONFIG", raising=False)
    monkeypatch.setenv("GROQ_API_KEY", "gsk-test")
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    header = out[0].split()
    assert header[:2] == ["MODEL", "CONTEXT"] and "CAPABILITIES" in header and "CONFIGURED" in header
    rows = [line for line in out[1:] if "/" in line.split(" ")[0]]
    assert len(rows) >= 60
    assert len({r.split("/")[0] for r in rows}) >= 20
    mini = next(r.split() for r in rows if r.startswith("openai/gpt-4o-mini "))
    assert mini[1:5] == ["128000", "16384", "0.15", "0.6"] and mini[-1] == "-"
    groq = [r.split() for r in rows if r.startswith("groq/")]
    assert groq and all(r[-1] == "yes" for r in groq)


def test_unigate_models_also_lists_configured_names(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Any) -> None:
    cfg = tmp_path / "unigate.yaml"
    cfg.write_text("deployments:\n  - name: fast\n    model: groq/llama-3.3-70b-versatile\n")
    monkeypatch.setenv("GROQ_API_KEY", "gsk-test")
    monkeypatch.delenv("UNIGATE_CONFIG", raising=False)
    monkeypatch.setenv("UNIGATE_LOCAL", "off")
    assert cli.main(["models", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.split()[:1] == ["fast"] and line.split()[-1] == "yes" for line in out)
