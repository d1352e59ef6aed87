"""Cost per request: equal to genai-prices' own calculation, fail-closed, overrides win."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from unigate.accounting import pricing
from unigate.accounting.pricing import cost_usd
from unigate.providers.base import usage_dict


@pytest.fixture(autouse=True)
def _clean_unpriced() -> Iterator[None]:
    pricing.reset_unpriced()
    yield
    pricing.reset_unpriced()


def _gp_cost(gp_provider: str, model_ref: str, u: dict[str, Any]) -> float:
    """genai-prices' own price for an OpenAI usage object (prompt includes cache, completion
    includes reasoning: the same token accounting genai-prices uses)."""
    ptd, ctd = u.get("prompt_tokens_details") or {}, u.get("completion_tokens_details") or {}
    kw = {"input_tokens": u["prompt_tokens"], "output_tokens": u["completion_tokens"]}
    if ptd.get("cached_tokens"):
        kw["cache_read_tokens"] = ptd["cached_tokens"]
    if ptd.get("cache_write_tokens"):
        kw["cache_write_tokens"] = ptd["cache_write_tokens"]
    if ctd.get("reasoning_tokens"):
        kw["output_reasoning_tokens"] = ctd["reasoning_tokens"]
    return float(calc_price(Usage(**kw), model_ref, provider_id=gp_provider).total_price)


# recorded usage objects, in the shape the adapters emit (providers/base.py usage_dict)
RECORDED = usage_dict(12_480, 1_730, cached=8_192, reasoning=640)
RECORDED_WITH_WRITE = usage_dict(20_000, 900, cached=6_000, cache_write=4_000, reasoning=300)
BIG_PROMPT = usage_dict(250_000, 4_000, cached=100_000, reasoning=1_000)  # past Gemini 2.5 Pro's 200K tier


@pytest.mark.parametrize(
    ("provider", "model", "gp_provider", "gp_ref", "usage"),
    [
        ("openai", "gpt-4o-mini", "openai", "gpt-4o-mini", RECORDED),
        ("openai", "o4-mini", "openai", "o4-mini", RECORDED),
        ("anthropic", "claude-3-5-haiku-20241022", "anthropic", "claude-3-5-haiku-20241022", RECORDED_WITH_WRITE),
        ("anthropic", "claude-3-5-haiku-latest", "anthropic", "claude-3-5-haiku-latest", RECORDED_WITH_WRITE),
        ("gemini", "gemini-2.5-flash", "google", "gemini-2.5-flash", RECORDED),
        ("gemini", "gemini-2.5-pro", "google", "gemini-2.5-pro", BIG_PROMPT),
        ("gemini_openai", "gemini-2.5-flash", "google", "gemini-2.5-flash", RECORDED),
        ("groq", "llama-3.3-70b-versatile", "groq", "llama-3.3-70b-versatile", RECORDED),
        ("groq", "openai/gpt-oss-120b", "groq", "openai/gpt-oss-120b", RECORDED),
        ("deepseek", "deepseek-chat", "deepseek", "deepseek-chat", RECORDED),
        ("deepseek", "deepseek-reasoner", "deepseek", "deepseek-reasoner", RECORDED),
        ("xai", "grok-3-mini", "x-ai", "grok-3-mini", RECORDED),
        ("bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0", "aws", "us.anthropic.claude-3-5-haiku-20241022-v1:0",
         RECORDED_WITH_WRITE),
        ("perplexity", "sonar", "perplexity", "sonar", RECORDED),  # has a per-request fee too
        ("mistral", "mistral-small-latest", "mistral", "mistral-small-latest", RECORDED),
        ("moonshot", "kimi-k2.6", "moonshotai", "kimi-k2.6", RECORDED),
        ("huggingface", "openai/gpt-oss-120b:sambanova", "huggingface_sambanova", "openai/gpt-oss-120b", RECORDED),
    ],
)
def test_cost_matches_genai_prices(provider: str, model: str, gp_provider: str, gp_ref: str, usage: dict[str, Any]) -> None:
    expected = _gp_cost(gp_provider, gp_ref, usage)
    got = cost_usd(provider, model, usage)
    assert got is not None and expected > 0
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert not pricing.unpriced_models


def test_cost_by_hand_for_gpt_4o_mini() -> None:
    # 1000 prompt incl. 200 cached, 500 completion incl. 100 reasoning; $0.15 / $0.075 / $0.60 per M
    u = usage_dict(1000, 500, cached=200, reasoning=100)
    assert cost_usd("openai", "gpt-4o-mini", u) == pytest.approx((800 * 0.15 + 200 * 0.075 + 500 * 0.6) / 1e6)
    # reasoning is billed as output: the same total with or without the breakdown
    assert cost_usd("openai", "gpt-4o-mini", u) == pytest.approx(
        cost_usd("openai", "gpt-4o-mini", usage_dict(1000, 500, cached=200)))


def test_cache_writes_bill_at_the_cache_write_price() -> None:
    # claude-3-5-haiku: $0.80 input, $0.08 cache read, $1.00 cache write, $4 output per M
    u = usage_dict(10_000, 1_000, cached=3_000, cache_write=2_000)
    expected = (5_000 * 0.8 + 3_000 * 0.08 + 2_000 * 1.0 + 1_000 * 4.0) / 1e6
    assert cost_usd("anthropic", "claude-3-5-haiku-latest", u) == pytest.approx(expected)
    # a provider without a cache-write price bills written tokens as ordinary input
    plain = (8_000 * 0.15 + 2_000 * 0.15 + 1_000 * 0.6) / 1e6
    assert cost_usd("openai", "gpt-4o-mini", usage_dict(10_000, 1_000, cache_write=2_000)) == pytest.approx(plain)


def test_unknown_model_costs_none_and_is_counted() -> None:
    seen: list[str] = []
    pricing.on_unpriced(seen.append)
    try:
        u = usage_dict(100, 10)
        assert cost_usd("openai", "no-such-model-xyz", u) is None
        assert cost_usd("openai", "no-such-model-xyz", u) is None
        assert cost_usd("ollama", "llama3.2", u) is None  # self-hosted, no price configured
    finally:
        pricing._hooks.remove(seen.append)
    assert pricing.unpriced_models == {"openai/no-such-model-xyz", "ollama/llama3.2"}
    assert pricing.unpriced_requests["openai/no-such-model-xyz"] == 2
    assert pricing.unpriced_total() == 3
    assert seen == ["openai/no-such-model-xyz", "openai/no-such-model-xyz", "ollama/llama3.2"]


def test_no_usage_is_unknown_cost_but_not_an_unpriced_model() -> None:
    assert cost_usd("openai", "gpt-4o-mini", None) is None
    assert cost_usd("openai", "gpt-4o-mini", {}) is None
    assert not pricing.unpriced_models


def test_config_override_wins() -> None:
    u = usage_dict(2_000, 1_000, cached=1_000, reasoning=200)
    # known model: the override replaces the catalog price entirely
    assert cost_usd("openai", "gpt-4o-mini", u, override=(1.0, 2.0)) == pytest.approx((2_000 * 1.0 + 1_000 * 2.0) / 1e6)
    # unknown / self-hosted model: the override prices it and it is not flagged
    assert cost_usd("vllm", "my-finetune", u, override=(0.5, 0.5)) == pytest.approx(3_000 * 0.5 / 1e6)
    assert cost_usd("vllm", "my-finetune", u, override=(0.0, 0.0)) == 0.0
    assert not pricing.unpriced_models
    # a half override falls back to the catalog's base price for the other side
    assert cost_usd("openai", "gpt-4o-mini", u, override=(1.0, None)) == pytest.approx((2_000 * 1.0 + 1_000 * 0.6) / 1e6)
    # ... and fails closed when the catalog does not know that side either
    assert cost_usd("vllm", "my-finetune", u, override=(1.0, None)) is None
    assert pricing.unpriced_models == {"vllm/my-finetune"}
    # (None, None) is no override at all
    assert cost_usd("openai", "gpt-4o-mini", u, override=(None, None)) == cost_usd("openai", "gpt-4o-mini", u)


def test_data_file_prices_and_explicit_zero() -> None:
    u = usage_dict(1_000_000, 1_000_000)
    assert cost_usd("sambanova", "Meta-Llama-3.3-70B-Instruct", u) == pytest.approx(0.6 + 1.2)
    # nebius gpt-oss-120b has data-file cache prices: $0.15 in, $0.015 cache read, $0.18 cache write, $0.60 out
    nb = usage_dict(1_000_000, 0, cached=400_000, cache_write=100_000)
    assert cost_usd("nebius", "openai/gpt-oss-120b", nb) == pytest.approx(0.5 * 0.15 + 0.4 * 0.015 + 0.1 * 0.18)
    # the embedded model is free on purpose (an explicit $0), not unpriced
    assert cost_usd("local", "smollm2", u) == 0.0
    assert not pricing.unpriced_models


def test_other_usage_convention_is_never_underbilled() -> None:
    # Anthropic-native counts leaking through (prompt excludes cache): billed on top, not negative
    leaked = {"prompt_tokens": 100, "completion_tokens": 50,
              "prompt_tokens_details": {"cached_tokens": 1_000, "cache_write_tokens": 500}}
    expected = (100 * 0.8 + 1_000 * 0.08 + 500 * 1.0 + 50 * 4.0) / 1e6
    assert cost_usd("anthropic", "claude-3-5-haiku-latest", leaked) == pytest.approx(expected)
    # reasoning reported on top of completion
    extra = {"prompt_tokens": 10, "completion_tokens": 5, "completion_tokens_details": {"reasoning_tokens": 20}}
    assert cost_usd("openai", "gpt-4o-mini", extra) == pytest.approx((10 * 0.15 + 25 * 0.6) / 1e6)


def test_rates_are_cached_per_model() -> None:
    u = usage_dict(10, 10)
    cost_usd("groq", "llama-3.1-8b-instant", u)
    first = pricing._pricers[("groq", "llama-3.1-8b-instant")]
    cost_usd("groq", "llama-3.1-8b-instant", u)
    assert pricing._pricers[("groq", "llama-3.1-8b-instant")] is first
    assert pricing.rate_for("groq", "llama-3.1-8b-instant") is pricing.rate_for("groq", "llama-3.1-8b-instant")


@pytest.mark.parametrize(
    "usage, counts",
    [
        ({"prompt_tokens": 10, "completion_tokens": 5}, (10, 5, 0, 0, 0, 0, 0)),
        ({"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
          "completion_tokens_details": {"reasoning_tokens": 0}}, (10, 5, 0, 0, 0, 0, 0)),
        ({"prompt_tokens": 100, "completion_tokens": 50, "prompt_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 7,
          "audio_tokens": 3}, "completion_tokens_details": {"reasoning_tokens": 20, "audio_tokens": 2}},
         (100, 50, 40, 7, 20, 3, 2)),
        # what upstreams really send wrong: strings, floats, negatives, nulls, a details list
        ({"prompt_tokens": "12", "completion_tokens": 3.0, "prompt_tokens_details": None}, (12, 3, 0, 0, 0, 0, 0)),
        ({"prompt_tokens": -4, "completion_tokens": "many", "completion_tokens_details": [1, 2]}, (0, 0, 0, 0, 0, 0, 0)),
        ({"prompt_tokens": True, "completion_tokens": None, "prompt_tokens_details": {"cached_tokens": "x"}},
         (1, 0, 0, 0, 0, 0, 0)),
    ],
)
def test_usage_counts_take_what_is_there_and_never_go_negative(usage: dict[str, Any], counts: tuple[int, ...]) -> None:
    assert pricing.usage_counts(usage) == counts
    assert cost_usd("openai", "gpt-4o-mini", usage) == pricing.cost_of("openai", "gpt-4o-mini", pricing.usage_counts(usage))


def test_a_malformed_usage_value_is_unknown_usage_not_an_error() -> None:
    from unigate.accounting.ledger import UsageRecord

    for bad in ("n/a", [1, 2], 7, None, {}):
        rec = UsageRecord(request_id="r", endpoint="chat", model="m")
        rec.set_usage(bad)
        assert not rec.usage_known and rec.counts is None
        assert cost_usd("openai", "gpt-4o-mini", bad) is None  # type: ignore[arg-type]
    rec = UsageRecord(request_id="r", endpoint="chat", model="m")
    rec.set_usage({"prompt_tokens": 9, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 2}})
    assert (rec.prompt_tokens, rec.completion_tokens, rec.cached_tokens) == (9, 4, 2) and rec.usage_known
