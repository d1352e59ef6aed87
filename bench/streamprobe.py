"""A bounded streaming client that times what wrk cannot: the first chunk of each stream.

wrk's latency is the whole response; its Lua `response()` callback fires only at the end. This
client (aiohttp + uvloop) runs `--concurrency` workers, each opening streams back to back on a
keep-alive connection until `--duration` s have passed (no stream starts after that), and for
every stream records
  * ttfb   from sending the request to the first body bytes (the first SSE event),
  * total  from sending the request to the end of the body,
  * gap    the longest wait between two reads of the body (a stall shows up here),
  * whether it was complete: HTTP 200, `--expect-events` `data:` events, ending in [DONE].
It prints one JSON object with the percentiles (ms) on stdout.

    python bench/streamprobe.py --url http://127.0.0.1:9100/v1/chat/completions \
        --body req.json --key sk-x --concurrency 10 --duration 15 --expect-events 34
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stats import percentile


async def one_stream(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str],
                     expect_events: int) -> dict[str, float | bool | str]:
    t0 = time.perf_counter()
    first: float | None = None
    last = t0
    gap = 0.0
    parts: list[bytes] = []
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            async for data in resp.content.iter_any():
                now = time.perf_counter()
                if first is None:
                    first = now
                else:
                    gap = max(gap, now - last)
                last = now
                parts.append(data)
            status = resp.status
    except (TimeoutError, aiohttp.ClientError) as e:
        return {"ok": False, "error": type(e).__name__, "total": (time.perf_counter() - t0) * 1000}
    end = time.perf_counter()
    raw = b"".join(parts)
    events = raw.count(b"data: ")
    ok = status == 200 and raw.endswith(b"data: [DONE]\n\n") and (expect_events <= 0 or events == expect_events)
    return {
        "ok": ok,
        "error": "" if ok else f"status {status}, {events} events",
        "ttfb": ((first or end) - t0) * 1000,
        "total": (end - t0) * 1000,
        "gap": gap * 1000,
    }


async def run(a: argparse.Namespace) -> dict[str, object]:
    with open(a.body, "rb") as f:  # noqa: ASYNC230 - read once, before any request
        body = f.read()
    headers = {"Authorization": f"Bearer {a.key}", "Content-Type": "application/json", "Accept": "text/event-stream"}
    timeout = aiohttp.ClientTimeout(total=a.request_timeout)
    records: list[dict[str, float | bool | str]] = []
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",)) as session:
        # one untimed stream per worker opens the connections, so no connect time is measured
        await asyncio.gather(*(one_stream(session, a.url, body, headers, a.expect_events) for _ in range(a.concurrency)))
        deadline = time.monotonic() + a.duration

        async def worker() -> None:
            while time.monotonic() < deadline:
                records.append(await one_stream(session, a.url, body, headers, a.expect_events))

        t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(a.concurrency)))
        elapsed = time.monotonic() - t0
    good = [r for r in records if r["ok"]]
    ttfb = [float(r["ttfb"]) for r in good]
    total = [float(r["total"]) for r in good]
    gaps = [float(r["gap"]) for r in good]
    errors = [str(r["error"]) for r in records if not r["ok"]]
    out: dict[str, object] = {
        "concurrency": a.concurrency,
        "streams": len(records),
        "complete": len(good),
        "incomplete": len(errors),
        "errors_sample": sorted(set(errors))[:5],
        "elapsed_s": round(elapsed, 3),
        "streams_per_s": round(len(good) / elapsed, 2) if elapsed else 0.0,
        "stalled": sum(1 for g in gaps if g > a.stall_ms) + len(errors),
        "stall_ms": a.stall_ms,
    }
    for name, xs in (("ttfb", ttfb), ("total", total), ("gap", gaps)):
        for q in (50, 90, 99):
            out[f"{name}_p{q}_ms"] = round(percentile(xs, q), 3) if xs else None
        out[f"{name}_max_ms"] = round(max(xs), 3) if xs else None
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--body", required=True, help="file with the request body")
    ap.add_argument("--key", default="sk-none")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--expect-events", type=int, default=0, help="data: events a complete stream has (0: any)")
    ap.add_argument("--stall-ms", type=float, default=500.0, help="a gap longer than this counts as a stall")
    ap.add_argument("--request-timeout", type=float, default=30.0)
    a = ap.parse_args()
    import uvloop

    result = uvloop.run(run(a))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
