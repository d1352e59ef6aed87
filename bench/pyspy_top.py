"""Summarise a `py-spy record -f raw` profile (collapsed stacks, one `a;b;c N` line per stack)
into the functions that take the time: by self samples (the leaf frame) and inclusive
(anywhere on the stack). Line numbers are folded so a function counts once.

    python bench/pyspy_top.py profile.txt [--top 20]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")
#: a sample whose innermost Python frame is the loop's entry point was taken inside uvloop's C
#: code (polling, socket reads and writes, callback dispatch)
_LOOP_FRAMES = ("run_app (aiohttp/web.py)", "run_forever (asyncio/base_events.py)", "run_until_complete (asyncio/base_events.py)")
LOOP_LABEL = "[event loop C code: I/O syscalls, scheduling]"


def _frame(raw: str) -> str:
    # "handler (/work/main/src/unigate/surfaces/openai.py:70)" -> "handler (unigate/surfaces/openai.py)"
    raw = _LINE.sub(")", raw.strip())
    name, _, where = raw.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/src/", "lib/python3"):
        i = where.rfind(marker)
        if i >= 0:
            where = where[i + len(marker) :]
            break
    return f"{name} ({where})" if where else name


def summarise(path: Path, top: int = 20) -> dict[str, object]:
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    total = other = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = [_frame(f) for f in stack.split(";") if f and not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        if frames[0].startswith("Thread._bootstrap "):
            # a helper thread (e.g. an idle executor worker py-spy did not see as idle): the
            # request path runs on the event-loop thread, so only that one is ranked
            other += count
            continue
        total += count
        self_c[LOOP_LABEL if frames[-1] in _LOOP_FRAMES else frames[-1]] += count
        for f in set(frames):
            incl_c[f] += count
    # the trunk every sample shares (main -> serve -> run_app) says nothing: leave it out
    incl_c = Counter({f: n for f, n in incl_c.items() if n < 0.97 * total})

    def pct(c: Counter[str]) -> list[list[object]]:
        return [[f, round(100 * n / total, 1)] for f, n in c.most_common(top)] if total else []

    return {"samples": total, "other_thread_samples": other, "self": pct(self_c), "inclusive": pct(incl_c)}


def markdown(summary: dict[str, object], title: str) -> str:
    extra = f", {summary['other_thread_samples']} more in other threads left out" if summary.get("other_thread_samples") else ""
    rows = [f"**{title}** ({summary['samples']} event-loop-thread samples{extra})", "", "| self % | function | | incl. % | function |", "|---:|---|---|---:|---|"]
    s, i = list(summary["self"]), list(summary["inclusive"])  # type: ignore[call-overload]
    for k in range(max(len(s), len(i))):
        a = s[k] if k < len(s) else ["", ""]
        b = i[k] if k < len(i) else ["", ""]
        rows.append(f"| {a[1]} | `{a[0]}` | | {b[1]} | `{b[0]}` |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile", type=Path)
    ap.add_argument("--top", type=int, default=20)
    a = ap.parse_args()
    print(markdown(summarise(a.profile, a.top), str(a.profile)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
