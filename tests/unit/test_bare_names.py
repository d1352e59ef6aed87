"""The pieces of bare-name resolution that need no upstream (routing/bare.py)."""

from __future__ import annotations

import pytest

from unigate.routing.bare import VENDOR_RULES, bedrock_vendor_names, strip_client_suffix


@pytest.mark.parametrize(("name", "bare"), [
    ("claude-opus-4-6[1m]", "claude-opus-4-6"),
    ("claude-opus-4-6[1M]", "claude-opus-4-6"),
    ("claude-opus-4-6[1m][1M]", "claude-opus-4-6"),  # repeated, as some client versions sent it
    ("claude-opus-4-6", "claude-opus-4-6"),
    ("claude-[1m]-x", "claude-[1m]-x"),  # only at the end
    ("claude-3-5-haiku-latest", "claude-3-5-haiku-latest"),  # the vendor's own alias stays
])
def test_client_suffix(name: str, bare: str) -> None:
    assert strip_client_suffix(name) == bare


@pytest.mark.parametrize(("model", "names"), [
    ("anthropic.claude-sonnet-4-5-20250929-v1:0", ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5")),
    ("us.anthropic.claude-3-5-haiku-20241022-v1:0", ("claude-3-5-haiku-20241022", "claude-3-5-haiku")),
    ("global.anthropic.claude-opus-4-5-20251101-v1:0", ("claude-opus-4-5-20251101", "claude-opus-4-5")),
    ("meta.llama3-3-70b-instruct-v1:0", ("llama3-3-70b-instruct",)),
    ("amazon.nova-pro-v1:0", ("nova-pro",)),
    ("not-a-bedrock-id", ()),
])
def test_bedrock_vendor_names(model: str, names: tuple[str, ...]) -> None:
    assert bedrock_vendor_names(model) == names


def test_vendor_rules_name_real_presets_in_a_sane_order() -> None:
    from fnmatch import fnmatchcase

    from unigate.providers.presets import PRESETS

    assert all(p in PRESETS for _, pids in VENDOR_RULES for p in pids)

    def first(name: str) -> tuple[str, ...]:
        return next(pids for glob, pids in VENDOR_RULES if fnmatchcase(name, glob))

    assert first("claude-haiku-4-5") == ("anthropic", "bedrock")
    assert first("gpt-4.1-mini") == first("o4-mini") == first("o3") == first("text-embedding-3-small") == (
        "openai", "azure")
    assert first("gpt-oss-120b") == ()  # open weights: OpenAI's API does not serve it, its hosts do
    assert first("gemini-2.0-flash")[0] == "gemini"
    assert not any(fnmatchcase("omni", g) or fnmatchcase("o1x", g) for g, _ in VENDOR_RULES)
