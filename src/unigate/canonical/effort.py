"""`reasoning_effort`: the values a request may carry and what each means per model family.

One table per family, shared by every dialect that serves it: a Claude model thinks with the
same budget on Anthropic Messages and on Bedrock Converse, a Gemini model with the same budget
or level on every Gemini endpoint. A value outside `EFFORTS` is the same 400 on every dialect
(and the same one the OpenAI surface gives before any dialect sees the request).

    effort   Claude budget_tokens   Gemini 2.x thinkingBudget   Gemini 3+ thinkingLevel
    none     (thinking off)         0 (off)                     MINIMAL (cannot be off)
    minimal  1024                   512                         MINIMAL
    low      2048                   1024                        LOW
    medium   8192                   8192                        MEDIUM
    high     16384                  24576                       HIGH
    xhigh    32768                  24576                       HIGH
"""

from __future__ import annotations

from typing import Any

from unigate.canonical.types import JSON
from unigate.errors import InvalidRequest, UnsupportedFeature

#: the values OpenAI defines (surfaces/validate.py REASONING_EFFORTS is the same set)
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_ACCEPTED = frozenset(EFFORTS)

#: reasoning_effort -> Claude `thinking.budget_tokens`; 0 = no thinking block. Anthropic's
#: minimum budget is 1024, and the budget counts toward max_tokens.
CLAUDE_BUDGETS = {"none": 0, "minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
CLAUDE_MIN_BUDGET = 1024
#: tokens left for the answer on top of the budget when the client set no limit
ANSWER_TOKENS = 4096

#: reasoning_effort -> Gemini 2.x `thinkingBudget` (the model's own scale; 0 = off)
GEMINI_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}
#: reasoning_effort -> Gemini 3+ `thinkingLevel`, which cannot switch thinking off entirely
GEMINI_LEVELS = {"none": "MINIMAL", "minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH",
                 "xhigh": "HIGH"}

BUDGETS: dict[str, dict[str, int]] = {"claude": CLAUDE_BUDGETS, "gemini": GEMINI_BUDGETS}


def reasoning_effort(body: JSON) -> str | None:
    """The request's reasoning_effort, checked: None when it has none, else one of EFFORTS.
    Any other value is the one 400 every dialect gives."""
    effort: Any = body.get("reasoning_effort")
    if effort is None:
        return None
    if type(effort) is not str or effort not in _ACCEPTED:
        raise InvalidRequest(f"Invalid value for 'reasoning_effort': {effort!r}. Supported values are: "
                             f"{', '.join(sorted(EFFORTS))}.", param="reasoning_effort", code="invalid_value")
    return effort


def thinking_budget(family: str, body: JSON) -> int | None:
    """The thinking budget `family` ("claude" | "gemini") gets for the request's
    reasoning_effort: None when the request sets none, 0 when it turns thinking off; a value
    outside EFFORTS raises (see reasoning_effort)."""
    effort = reasoning_effort(body)
    return None if effort is None else BUDGETS[family][effort]


def claude_fit(budget: int, max_tokens: int | None, *, who: str, param: str) -> tuple[int, int]:
    """(budget_tokens, max_tokens) for a Claude call that thinks. Claude needs the budget below
    max_tokens; OpenAI counts reasoning inside the client's limit, so the budget shrinks to fit
    under it; with no limit the answer gets ANSWER_TOKENS on top of the budget. A limit of 1024
    or less leaves no room for Claude's minimum budget: a 400 naming `param`."""
    if max_tokens is None:
        return budget, budget + ANSWER_TOKENS
    if max_tokens > budget:
        return budget, max_tokens
    if max_tokens <= CLAUDE_MIN_BUDGET:
        raise UnsupportedFeature(f"{who}: reasoning needs {param} above {CLAUDE_MIN_BUDGET} (Claude's minimum "
                                 "thinking budget)", param=param)
    return max_tokens - 1, max_tokens


def claude_forced_tool(who: str, param: str) -> UnsupportedFeature:
    """The 400 for thinking combined with a forced tool call, which Claude refuses on every
    dialect: `param` is "response_format" when the forced call is the JSON answer's,
    "tool_choice" when the client forced it."""
    if param == "response_format":
        what = "response_format (the JSON answer is a forced tool call)"
    else:
        what = "a tool_choice that forces a tool call"
    return UnsupportedFeature(f"{who}: reasoning_effort cannot be combined with {what}: Claude does not think "
                              "while a tool call is forced", param=param)


def gemini_uses_levels(model: str) -> bool:
    """Gemini 3 and later take `thinkingLevel`; 2.x takes `thinkingBudget` (docs: thinking)."""
    name = model.rsplit("/", 1)[-1]
    if not name.startswith("gemini-"):
        return False
    major = name[7:].split("-", 1)[0].split(".", 1)[0]
    return major.isdigit() and int(major) >= 3


def gemini_thinking(body: JSON, model: str) -> JSON | None:
    """Gemini's `thinkingConfig` for the request's reasoning_effort, or None when it sets none."""
    effort = reasoning_effort(body)
    if effort is None:
        return None
    if gemini_uses_levels(model):
        return {"thinkingLevel": GEMINI_LEVELS[effort], "includeThoughts": effort != "none"}
    return {"thinkingBudget": GEMINI_BUDGETS[effort], "includeThoughts": effort != "none"}
