"""The analytics API on a 1,000,000-row usage ledger: seeds a ledger (SQLite by default,
PostgreSQL with --postgres URL), starts a real gateway on it (`unigate serve`, master key, no
upstream needed) and times every analytics endpoint and the requests each dashboard page makes.

    .venv/bin/python bench/analytics.py                       # SQLite, 1,000,000 rows
    .venv/bin/python bench/analytics.py --rows 100000 --runs 3
    .venv/bin/python bench/analytics.py --postgres postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/analytics.py --insert-cost         # what an index costs the ledger's write

Seeding is done straight into the database (executemany into SQLite, COPY into PostgreSQL), not
through the gateway: 30 days ending now, a daily cycle, ~20 models on 5 providers, 200 keys in
10 teams (a few heavy keys and models, a long tail), 2 % failed requests and some requests with
two or three attempts (the first ones failing at another provider).

Phases: (1) right after start-up, while the background task fills the rollups, one overview
page (what a first dashboard load would see); (2) the rollups' cold fill, timed until the
watermark reaches its target; (3) each endpoint cold (its first call) and warm (median of
--runs), and each page (its requests issued together, as the dashboard does). Markdown on stdout.
Everything runs on 127.0.0.1; the gateway runs in its own process group and is stopped at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-analytics-bench-master-0123456789"
DAY = 86400.0
PROVIDERS = ("openai", "anthropic", "gemini", "groq", "mistral")
MODELS = [(p, f"{p}/model-{i}") for i, p in enumerate(PROVIDERS * 4)]  # 20 models, 4 per provider
ALIASES = {m: m.split("/", 1)[1] for _p, m in MODELS}
COLS = ("request_id, attempt, time, endpoint, key_id, team, requested_model, served_model, deployment, provider, "
        "attempts, input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_usd, "
        "latency_ms, ttft_ms, status, error_code, client_disconnected, stream")


def zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1 / (i + 1) ** s for i in range(n)]


def generate(rows: int, now: float, seed: int = 1) -> Iterator[tuple[Any, ...]]:
    """Ledger rows (as tuples of COLS), about `rows` of them, oldest first."""
    rnd = random.Random(seed)
    start = now - 30 * DAY
    keys = [f"key_{i:03d}" for i in range(200)]
    team_of = {k: f"team_{i % 10}" for i, k in enumerate(keys)}
    key_w, model_w = zipf_weights(200, 0.9), zipf_weights(20, 1.0)
    n_req = int(rows / 1.035)  # ~3 % of requests have 2 attempts, 0.25 % have 3
    # a daily cycle: more traffic in the (UTC) afternoon
    times = sorted(start + d * DAY + h * 3600 + rnd.random() * 3600
                   for d, h in ((rnd.randrange(30), rnd.choices(range(24), [1 + (h in range(9, 20)) * 3 for h in range(24)])[0])
                                for _ in range(n_req)))  # fmt: skip
    key_pick = rnd.choices(keys, key_w, k=n_req)
    model_pick = rnd.choices(range(20), model_w, k=n_req)
    made = 0
    for i in range(n_req):
        if made >= rows:
            return
        t, key, m = times[i], key_pick[i], model_pick[i]
        r = rnd.random()
        tries = 3 if r < 0.0025 else 2 if r < 0.0325 else 1
        rid = f"req_{i:08x}{rnd.getrandbits(32):08x}"
        stream = rnd.random() < 0.6
        for a in range(1, tries + 1):
            last = a == tries
            provider, served = MODELS[m] if last else MODELS[(m + 5 * a) % 20]
            failed = not last or rnd.random() < 0.02
            inp = 0 if failed else int(rnd.expovariate(1 / 900)) + 20
            out = 0 if failed else int(rnd.expovariate(1 / 250)) + 1
            lat = rnd.lognormvariate(6.6, 0.8) if not failed else rnd.lognormvariate(5, 1)
            ttft = rnd.lognormvariate(5.5, 0.6) if stream and not failed else None
            yield (rid, a, t + (a - 1) * 0.3, "chat", key, team_of[key], ALIASES[MODELS[m][1]], served, served,
                   provider, a, inp, out, 0, 0, 0, None if failed else (inp * 2.5 + out * 10) / 1e6, lat, ttft,
                   (529 if a < tries else 502) if failed else 200, "upstream_error" if failed else None, 0,
                   int(stream))  # fmt: skip
            made += 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def create_schema(path: str | None, url: str | None) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from unigate.state import open_state

    st = await open_state(path, url, None)
    await st.close()


def seed_sqlite(path: str, rows: int, now: float) -> float:
    asyncio.run(create_schema(path, None))
    t0 = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    sql = f"INSERT INTO usage ({COLS}) VALUES ({','.join('?' * 23)})"
    batch: list[tuple[Any, ...]] = []
    for r in generate(rows, now):
        batch.append(r)
        if len(batch) >= 50_000:
            conn.executemany(sql, batch)
            batch.clear()
    conn.executemany(sql, batch)
    fill_daily(conn, "(CAST(time / 86400 AS INTEGER) * 86400)")
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - t0


def fill_daily(conn: Any, day: str) -> None:
    """The ledger's own daily rollup (/admin/usage reads it), as its insert would have kept it."""
    conn.execute(f"INSERT INTO usage_daily SELECT {day}, coalesce(key_id, ''), coalesce(team, ''), served_model, "
                 "provider, count(*), sum(input_tokens), sum(output_tokens), sum(cached_tokens), sum(reasoning_tokens), "
                 "sum(coalesce(cost_usd, 0)), sum(CASE WHEN status >= 400 OR error_code IS NOT NULL THEN 1 ELSE 0 END) "
                 f"FROM usage GROUP BY {day}, coalesce(key_id, ''), coalesce(team, ''), served_model, provider")


async def seed_postgres(url: str, rows: int, now: float) -> float:
    import asyncpg  # type: ignore[import-untyped]

    await create_schema(None, url)
    t0 = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        batch: list[tuple[Any, ...]] = []
        names = [c.strip() for c in COLS.split(",")]
        for r in generate(rows, now):
            batch.append(r)
            if len(batch) >= 50_000:
                await conn.copy_records_to_table("usage", records=batch, columns=names)
                batch.clear()
        await conn.copy_records_to_table("usage", records=batch, columns=names)
        await conn.execute(f"INSERT INTO usage_daily SELECT {'floor(time / 86400) * 86400'}, coalesce(key_id, ''), "
                           "coalesce(team, ''), served_model, provider, count(*), sum(input_tokens), sum(output_tokens), "
                           "sum(cached_tokens), sum(reasoning_tokens), sum(coalesce(cost_usd, 0)), "
                           "sum(CASE WHEN status >= 400 OR error_code IS NOT NULL THEN 1 ELSE 0 END) FROM usage "
                           "GROUP BY 1, 2, 3, 4, 5")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - t0


class Gateway:
    def __init__(self, data_dir: str, database_url: str | None) -> None:
        self.port = free_port()
        self._log = open(os.path.join(data_dir, "gateway.log"), "wb")  # noqa: SIM115 - open while the gateway runs
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
        env.update({"UNIGATE_MASTER_KEY": KEY, "UNIGATE_DATA_DIR": data_dir, "UNIGATE_LOCAL": "off",
                    "PYTHONPATH": str(ROOT / "src")})
        if database_url:
            env["DATABASE_URL"] = database_url
        self.proc = subprocess.Popen([sys.executable, "-m", "unigate", "serve", "--port", str(self.port)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=self._log,
                                     start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the gateway did not become ready in 60 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


async def get(session: Any, url: str) -> tuple[float, Any]:
    t0 = time.perf_counter()
    async with session.get(url, headers={"Authorization": f"Bearer {KEY}"}) as r:
        body = await r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}: {r.status} {body[:300]!r}")
    return (time.perf_counter() - t0) * 1000, orjson.loads(body)


def q(path: str, **params: Any) -> str:
    return f"/admin/analytics/{path}?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})


async def run_bench(gw: Gateway, now: float, runs: int, wait_fill: float, filled: Any) -> dict[str, Any]:
    import aiohttp

    month = {"start": int(now - 30 * DAY), "end": int(now)}
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(gw.url, timeout=aiohttp.ClientTimeout(total=300)) as s:
        log_page = await get(s, q("requests"))
        some = log_page[1]["data"]
        rid = next((r["request_id"] for r in some if r["attempts"] > 1), some[0]["request_id"])
        key = some[0]["key_id"]

        def pages() -> dict[str, list[str]]:
            return {
                "overview": [q("summary", **month), q("timeseries", bucket="day", **month),
                             q("summary", group_by="model", limit=10, **month), q("summary", group_by="key", limit=10, **month)],
                "usage explorer (30 days by team, by key)": [q("summary", group_by="team", **month),
                                                             q("timeseries", bucket="day", group_by="team", **month),
                                                             q("summary", group_by="key", limit=200, **month)],
                "request log, first page": [q("requests")],
                "request log, filtered (key, errors, 30 days)": [q("requests", key=key, status="error", **month)],
                "request detail": [q(f"requests/{rid}")],
            }

        async def page(urls: list[str]) -> float:
            t0 = time.perf_counter()
            await asyncio.gather(*(get(s, u) for u in urls))
            return (time.perf_counter() - t0) * 1000

        # (1) a first overview while the rollups are being filled
        out["overview_during_fill_ms"] = await page(pages()["overview"])
        # (2) the cold fill
        t0 = time.monotonic()
        # (a thread: filled() reads the database with a loop of its own for PostgreSQL)
        while time.monotonic() - t0 < wait_fill and not await asyncio.to_thread(filled):
            await asyncio.sleep(0.5)
        out["fill_wait_s"] = time.monotonic() - t0
        out["filled"] = await asyncio.to_thread(filled)
        # (3) each endpoint, then each page
        endpoints = {
            "summary, 24 h": q("summary"),
            "summary, 30 d": q("summary", **month),
            "summary, 30 d by model": q("summary", group_by="model", **month),
            "summary, 30 d by key": q("summary", group_by="key", **month),
            "summary, 30 d by deployment, one key": q("summary", group_by="deployment", key=key, **month),
            "summary, 30 d by team, one model": q("summary", group_by="team", model="model-0", **month),
            "timeseries, 24 h by minute": q("timeseries", bucket="minute"),
            "timeseries, 24 h by hour by model": q("timeseries", group_by="model"),
            "timeseries, 30 d by hour": q("timeseries", bucket="hour", **month),
            "timeseries, 30 d by day by key": q("timeseries", bucket="day", group_by="key", **month),
            "timeseries, 7 d by hour by provider, one team": q("timeseries", bucket="hour", group_by="provider",
                                                                team="team_3", start=int(now - 7 * DAY), end=int(now)),
            "requests, first page": q("requests"),
            "requests, 30 d, one key": q("requests", key=key, **month),
            "requests, 30 d, errors of one model": q("requests", status="error", model="model-7", **month),
            "requests, 30 d, a rare key (tail)": q("requests", key="key_199", **month),
            "requests, 30 d, errors of a rare key": q("requests", key="key_199", status="error", **month),
            "requests, 30 d, one key and one model": q("requests", key="key_050", model="model-3", **month),
            "requests, page 5 via cursors": "",
            "request detail": q(f"requests/{rid}"),
        }
        figures: dict[str, tuple[float, float]] = {}
        for name, url in endpoints.items():
            times = []
            for _ in range(runs + 1):
                if not url:  # walk five pages: the time of the fifth
                    cursor = None
                    for _p in range(5):
                        ms, body = await get(s, q("requests", cursor=cursor))
                        cursor = body["next_cursor"]
                else:
                    ms, _b = await get(s, url)
                times.append(ms)
            figures[name] = (times[0], statistics.median(times[1:]))
        out["endpoints"] = figures
        page_figs: dict[str, tuple[float, float]] = {}
        for name, urls in pages().items():
            times = [await page(urls) for _ in range(runs + 1)]
            page_figs[name] = (times[0], statistics.median(times[1:]))
        out["pages"] = page_figs
    return out


def insert_cost(rows: int) -> None:
    """Rows/s of the ledger's own write path (SqlLedger.write, batches of 512) into a SQLite ledger
    that already holds `rows` rows, without and with each candidate index."""
    sys.path.insert(0, str(ROOT / "src"))
    from unigate.state import UsageRow, open_state

    candidates = {"none (as shipped)": None, "usage (key_id, time)": "CREATE INDEX bench_ix ON usage (key_id, time)",
                  "usage (served_model, time)": "CREATE INDEX bench_ix ON usage (served_model, time)"}
    now = time.time()
    print(f"\n### Ledger insert cost per index (SqlLedger.write, {rows:,} rows present, 20,000 written in batches of 512)\n")
    print("| index | rows/s (median of 5) | each round |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        base = os.path.join(d, "base.db")
        seed_sqlite(base, rows, now)
        rates: dict[str, list[float]] = {name: [] for name in candidates}
        # trials interleaved (every candidate once per round): the machine's load drifts
        for trial in range(5):
            for name, ddl in candidates.items():
                path = os.path.join(d, "trial.db")
                conn = sqlite3.connect(base)
                dst = sqlite3.connect(path)
                conn.backup(dst)
                conn.close()
                if ddl:
                    dst.execute(ddl)
                dst.close()
                new = [UsageRow(time=now + i * 0.01, request_id=f"new_{trial}_{i}", endpoint="chat", attempt=1,
                                key_id=f"key_{i % 200:03d}", team=f"team_{i % 10}", requested_model="model-1",
                                served_model="anthropic/model-1", deployment="anthropic/model-1", provider="anthropic",
                                input_tokens=900, output_tokens=200, cost_usd=0.001, latency_ms=700.0, ttft_ms=200.0,
                                status=200) for i in range(20_000)]

                async def write(rows_: list[UsageRow] = new, p: str = path) -> float:
                    st = await open_state(p, None, None)
                    try:
                        t0 = time.perf_counter()
                        for i in range(0, len(rows_), 512):
                            await st.ledger.write(rows_[i : i + 512])
                        return len(rows_) / (time.perf_counter() - t0)
                    finally:
                        await st.close()

                rates[name].append(asyncio.run(write()))
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(path + suffix):
                        os.remove(path + suffix)
        for name, r in rates.items():
            print(f"| {name} | {statistics.median(r):,.0f} | {', '.join(f'{x:,.0f}' for x in r)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5, help="warm calls per endpoint (the median is shown)")
    ap.add_argument("--postgres", metavar="URL", help="seed and serve a PostgreSQL ledger (a fresh schema in it)")
    ap.add_argument("--wait-fill", type=float, default=900, help="seconds to wait for the rollups' cold fill")
    ap.add_argument("--insert-cost", action="store_true", help="only measure what candidate indexes cost the insert")
    args = ap.parse_args()
    if args.insert_cost:
        insert_cost(args.rows)
        return
    now = time.time()
    with tempfile.TemporaryDirectory(prefix="unigate-analytics-") as d:
        url = None
        schema = None
        if args.postgres:
            schema = "bench_analytics_" + os.urandom(4).hex()
            import asyncpg

            async def mk(sql: str) -> None:
                c = await asyncpg.connect(args.postgres)
                try:
                    await c.execute(sql)
                finally:
                    await c.close()

            asyncio.run(mk(f"CREATE SCHEMA {schema}"))
            url = f"{args.postgres}{'&' if '?' in args.postgres else '?'}search_path={schema}"
            seed_s = asyncio.run(seed_postgres(url, args.rows, now))
        else:
            seed_s = seed_sqlite(os.path.join(d, "unigate.db"), args.rows, now)
        target = (now - 15 * 60) // 3600 * 3600

        def filled() -> bool:
            if url is None:
                c = sqlite3.connect(os.path.join(d, "unigate.db"))
                try:
                    v = c.execute("SELECT filled_to FROM analytics_rollup").fetchone()[0]
                finally:
                    c.close()
            else:
                async def read() -> Any:
                    c = await asyncpg.connect(url)
                    try:
                        return await c.fetchval("SELECT filled_to FROM analytics_rollup")
                    finally:
                        await c.close()

                v = asyncio.run(read())
            return v is not None and float(v) >= target

        t_start = time.perf_counter()
        gw = Gateway(d, url)
        try:
            start_s = time.perf_counter() - t_start
            res = asyncio.run(run_bench(gw, now, args.runs, args.wait_fill, filled))
        finally:
            gw.stop()
            if schema is not None:
                asyncio.run(mk(f"DROP SCHEMA {schema} CASCADE"))
    engine = "PostgreSQL 15" if url else "SQLite"
    print(f"\n### Analytics on {args.rows:,} ledger rows, {engine}: {time.strftime('%d %b %Y %H:%M', time.gmtime(now))} UTC\n")
    print(f"Command: `{' '.join(['.venv/bin/python', 'bench/analytics.py', *sys.argv[1:]])}`\n")
    print(f"- seeding: {seed_s:.1f} s; gateway ready in {start_s:.1f} s")
    print(f"- first overview page during the rollups' cold fill: {res['overview_during_fill_ms']:.0f} ms")
    print(f"- cold fill finished {res['fill_wait_s']:.1f} s after that page (caught up: {res['filled']})\n")
    print(f"| endpoint | cold (first call) ms | warm ms (median of {args.runs}) |\n|---|---|---|")
    for name, (cold, warm) in res["endpoints"].items():
        print(f"| {name} | {cold:.1f} | {warm:.1f} |")
    print(f"\n| dashboard page (its requests together) | cold ms | warm ms (median of {args.runs}) |\n|---|---|---|")
    for name, (cold, warm) in res["pages"].items():
        print(f"| {name} | {cold:.1f} | {warm:.1f} |")


if __name__ == "__main__":
    main()
