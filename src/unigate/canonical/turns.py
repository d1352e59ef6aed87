"""Merging consecutive same-role turns, for dialects whose conversations must alternate.

Anthropic and Bedrock refuse (or silently merge) two turns of one role in a row, and Gemini
wants consecutive tool results in one user turn. OpenAI allows any sequence, and several tool
messages answering one assistant turn are the normal case, so these dialects fold a turn into
the previous one of the same role. Where a dialect wants some blocks at the head of a turn
(Claude: tool results before any text), `first` picks them; they keep their order, as do the
others.
"""

from __future__ import annotations

from collections.abc import Callable

from unigate.canonical.types import JSON


def append_turn(turns: list[JSON], role: str, blocks: list[JSON], *, key: str = "content",
                first: Callable[[JSON], bool] | None = None) -> None:
    """Add `blocks` as a `role` turn (`{"role": role, key: blocks}`), or to the last turn when
    it has that role. No blocks, no turn: the dialects that need this reject empty turns."""
    if not blocks:
        return
    if not turns or turns[-1]["role"] != role:
        if first is None:
            turns.append({"role": role, key: blocks})
            return
        turns.append({"role": role, key: []})
    content: list[JSON] = turns[-1][key]
    if first is None:
        content.extend(blocks)
        return
    for b in blocks:
        if first(b):
            pos = 0
            while pos < len(content) and first(content[pos]):
                pos += 1
            content.insert(pos, b)
        else:
            content.append(b)
