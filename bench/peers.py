"""The processes a bench run starts: the two mock upstreams and the peers under test, with their
readiness, start-up time, idle memory and a sanity check that each answers correctly.

Peers (all on 127.0.0.1, each on a free port picked at start):
  direct    no proxy: the load goes straight to the mock (the baseline for "added" figures)
  floor     bench/floor.py, 1 process        floor2    the same with --workers 2
  unigate   `unigate serve`, 1 worker        unigate2  the same with --workers 2
Proxied peers are reached with model `<upstream>/gpt-4o-mini`, where the upstream is one of
`fast` / `faststream` (the nginx mock's JSON / SSE path) and `slow` / `slowstream` (the paced
aiohttp mock). unigate runs with a master key (auth on) and its usage ledger (always on).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nginx_mock
import payloads
from loadgen import Target
from procs import Proc, Procs, memory_kb, session_pids

HERE = Path(__file__).resolve().parent
PROXIED = ("floor", "floor2", "unigate", "unigate2")
ALL_PEERS = ("direct",) + PROXIED
KEY = "sk-ubench-master-0123456789"
UPSTREAMS = ("fast", "faststream", "slow", "slowstream")
#: environment a peer may see: nothing that could configure an extra provider
_ENV_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TERM", "PYTHONHASHSEED")


class StartError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_call(method: str, port: int, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def wait_ready(proc: Proc, port: int, path: str, timeout: float = 30.0) -> float:
    """Poll `path` every 5 ms until it answers 200; returns seconds since the process was started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StartError(f"{proc.name} exited during start-up (rc {proc.popen.returncode}):\n{proc.log_tail()}")
        try:
            status, _ = http_call("GET", port, path, timeout=0.5)
            if status == 200:
                return time.monotonic() - proc.started
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.005)
    raise StartError(f"{proc.name} not ready on :{port}{path} after {timeout:.0f} s:\n{proc.log_tail()}")


@dataclass
class Peer:
    name: str
    port: int = 0
    proc: Proc | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def sid(self) -> int | None:
        return self.proc.pid if self.proc else None


class Rig:
    """The mocks, the request bodies and the peers of one run."""

    def __init__(self, procs: Procs, rundir: Path, unigate_cmd: list[str], group_strategy: str | None = None,
                 key_fields: dict[str, Any] | None = None, upstream_client: str | None = None) -> None:
        self.procs = procs
        #: unigate's `server.upstream_client` ("aiohttp" or "lean"); None: its default
        self.upstream_client = upstream_client
        self.dir = rundir
        self.unigate_cmd = unigate_cmd
        #: route every model through a two-deployment group with this strategy (breakers on):
        #: the same request bytes, served by the routing path instead of a lone deployment
        self.group_strategy = group_strategy
        #: load unigate with a virtual key carrying these fields (rpm, budget_usd, ...), made
        #: through its admin API at start, instead of the master key (which skips enforcement)
        self.key_fields = key_fields
        self.keys: dict[str, str] = {}
        self.fast_port = self.slow_port = 0
        self.mocks: list[Proc] = []
        self.peers: dict[str, Peer] = {}
        self._bodies: dict[tuple[str, bool], Path] = {}

    def key_for(self, peer: str) -> str:
        """The key the load sends to `peer`: its virtual key when one was made, else the master key."""
        return self.keys.get(peer, KEY)

    # -------------------------------------------------------------------- targets
    def body(self, model: str, stream: bool) -> Path:
        key = (model, stream)
        if key not in self._bodies:
            p = self.dir / f"req-{model.replace('/', '_')}-{'sse' if stream else 'json'}.json"
            p.write_bytes(payloads.request_body(model, stream))
            self._bodies[key] = p
        return self._bodies[key]

    def target(self, peer: str, upstream: str, stream: bool) -> Target:
        """The load for `peer` against the `fast` (nginx) or `slow` (paced) mock."""
        if peer == "direct":
            port = self.fast_port if upstream == "fast" else self.slow_port
            path = "/stream/v1/chat/completions" if stream else "/v1/chat/completions"
            return Target(f"http://127.0.0.1:{port}{path}", self.body("gpt-4o-mini", stream), stream)
        model = f"{upstream}{'stream' if stream else ''}/gpt-4o-mini"
        return Target(f"http://127.0.0.1:{self.peers[peer].port}/v1/chat/completions", self.body(model, stream), stream)

    def mixed_target(self, peer: str) -> Target:
        """The soak's load: plain and streamed requests in turn, against the paced mock."""
        j, s = self.target(peer, "slow", False), self.target(peer, "slow", True)
        path2 = "/" + s.url.split("/", 3)[3]
        return Target(j.url, j.body, False, path2=path2, body2=s.body)

    # -------------------------------------------------------------------- mocks
    def start_mocks(self, ttfb_ms: float, gap_ms: float) -> None:
        self.fast_port, self.slow_port = free_port(), free_port()
        prefix = self.dir / "nginx"
        prefix.mkdir()
        conf = nginx_mock.prepare(prefix, self.fast_port)
        ng = self.procs.start("nginx-mock", nginx_mock.argv(conf, prefix), log_path=self.dir / "nginx-mock.log")
        slow = self.procs.start("slow-mock", [sys.executable, str(HERE / "mock_slow.py"), "--port", str(self.slow_port),
                                              "--ttfb-ms", str(ttfb_ms), "--gap-ms", str(gap_ms)],
                                log_path=self.dir / "slow-mock.log")
        self.mocks = [ng, slow]
        wait_ready(ng, self.fast_port, "/health", 15)
        wait_ready(slow, self.slow_port, "/health", 30)
        want = {"/v1/chat/completions": payloads.completion_json(), "/stream/v1/chat/completions": payloads.sse_stream()}
        for port in (self.fast_port, self.slow_port):
            for path, expected in want.items():
                status, got = http_call("POST", port, path, payloads.request_body(), {"Content-Type": "application/json"})
                if status != 200 or got != expected:
                    raise StartError(f"the mock on :{port}{path} does not serve payloads.py's bytes (HTTP {status})")

    # -------------------------------------------------------------------- peers
    def _unigate_config(self) -> Path:
        lines = ["server:", "  log_level: warning"]
        if self.upstream_client:
            lines.append(f"  upstream_client: {self.upstream_client}")
        lines += ["local:", "  enabled: false", "providers:"]
        for name in UPSTREAMS:
            port = self.fast_port if name.startswith("fast") else self.slow_port
            base = f"http://127.0.0.1:{port}{'/stream' if name.endswith('stream') else ''}/v1"
            lines.append(f"  {name}: {{preset: openai, api_key: sk-upstream, base_url: \"{base}\"}}")
            if self.group_strategy:
                lines.append(f"  {name}_b: {{preset: openai, api_key: sk-upstream, base_url: \"{base}\"}}")
        if self.group_strategy:
            # a group named as the model the load asks for, so the request bytes stay the same
            lines.append("deployments:")
            for name in UPSTREAMS:
                for prov in (name, f"{name}_b"):
                    lines.append(f"  - {{name: \"{name}/gpt-4o-mini\", model: \"{prov}/gpt-4o-mini\"}}")
            lines.append("routing:\n  groups:")
            for name in UPSTREAMS:
                lines.append(f"    \"{name}/gpt-4o-mini\": {{strategy: {self.group_strategy}}}")
        p = self.dir / "unigate.yaml"
        p.write_text("\n".join(lines) + "\n")
        return p

    def start_peer(self, name: str, wrap: list[str] | None = None, ready_timeout: float = 30.0) -> Peer:
        """Start a proxied peer, time its readiness, sample its idle memory, check its answers.
        `wrap` prefixes the command (e.g. valgrind, for bench/cost.py)."""
        if name == "direct":
            peer = Peer("direct", info={"ready_s": None})
            self.peers[name] = peer
            return peer
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP}
        workers = "2" if name.endswith("2") else "1"
        if name.startswith("floor"):
            argv = [sys.executable, str(HERE / "floor.py"), "--port", str(port), "--key", KEY, "--workers", workers]
            for up in UPSTREAMS:
                p = self.fast_port if up.startswith("fast") else self.slow_port
                argv += ["--upstream", f"{up}=http://127.0.0.1:{p}{'/stream' if up.endswith('stream') else ''}/v1"]
            ready_path = "/health"
        else:
            argv = [*self.unigate_cmd, "serve", "--config", str(self._unigate_config()), "--port", str(port), "--workers", workers]
            # its state (keys, the usage ledger: SQLite) in the run directory, one file per peer
            env.update(UNIGATE_MASTER_KEY=KEY, UNIGATE_LOCAL="off", UNIGATE_DATA_DIR=str(self.dir / f"{name}-state"))
            ready_path = "/health/ready"
        proc = self.procs.start(name, [*(wrap or []), *argv], env=env, log_path=self.dir / f"{name}.log")
        peer = Peer(name, port, proc)
        self.peers[name] = peer
        peer.info["ready_s"] = round(wait_ready(proc, port, ready_path, ready_timeout), 3)
        if self.key_fields is not None and name.startswith("unigate"):
            status, data = http_call("POST", port, "/admin/keys", json.dumps({"name": "bench", **self.key_fields}).encode(),
                                     {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
            if status != 201:
                raise StartError(f"{name} did not make the virtual key: HTTP {status} {data[:300]!r}")
            made = json.loads(data)
            self.keys[name] = made["key"]
            peer.info["virtual_key"] = {k: made[k] for k in self.key_fields}
        time.sleep(0.5)  # let start-up settle (multi-worker peers: all workers up)
        rss, pss = memory_kb(session_pids(proc.pid))
        peer.info.update(idle_rss_kb=rss, idle_pss_kb=pss, processes=len(session_pids(proc.pid)))
        problems = self.check(name)
        if problems:
            raise StartError(f"{name} does not answer correctly: " + "; ".join(problems) + f"\n{proc.log_tail()}")
        return peer

    def check(self, name: str) -> list[str]:
        """One JSON and one streamed request through the peer (fast and slow mock), and, for a
        proxied peer, one without a key that must get 401. Returns what is wrong."""
        problems: list[str] = []
        for upstream in ("fast", "slow"):
            for stream in (False, True):
                t = self.target(name, upstream, stream)
                port = int(t.url.split(":")[2].split("/")[0])
                path = "/" + t.url.split("/", 3)[3]
                hdrs = {"Content-Type": "application/json", "Authorization": f"Bearer {self.key_for(name)}"}
                status, data = http_call("POST", port, path, t.body.read_bytes(), hdrs)
                what = f"{upstream} {'stream' if stream else 'json'}"
                if status != 200:
                    problems.append(f"{what}: HTTP {status} {data[:200]!r}")
                    continue
                problems += [f"{what}: {p}" for p in (_check_stream(data) if stream else _check_json(data))]
        if name != "direct":
            t = self.target(name, "fast", False)
            status, _ = http_call("POST", self.peers[name].port, "/v1/chat/completions", t.body.read_bytes(),
                             {"Content-Type": "application/json"})
            if status != 401:
                problems.append(f"a request without a key got HTTP {status}, not 401 (auth must be on)")
        return problems


def _check_json(data: bytes) -> list[str]:
    obj = json.loads(data)
    out = []
    if obj["choices"][0]["message"]["content"] != payloads.answer_text():
        out.append("wrong content")
    if obj.get("usage", {}).get("total_tokens") != payloads.USAGE["total_tokens"]:
        out.append("usage missing")
    return out


def _check_stream(data: bytes) -> list[str]:
    events = [e for e in data.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]
    out = []
    if len(events) != payloads.EVENTS:
        out.append(f"{len(events)} events, expected {payloads.EVENTS}")
    if not events or events[-1].strip() != b"data: [DONE]":
        out.append("no [DONE] at the end")
        return out
    text, usage = "", None
    for e in events[:-1]:
        obj = json.loads(e.split(b"data: ", 1)[1])
        for c in obj.get("choices") or []:
            text += c.get("delta", {}).get("content") or ""
        usage = obj.get("usage") or usage
    if text != payloads.answer_text():
        out.append("streamed content differs")
    if not usage or usage.get("total_tokens") != payloads.USAGE["total_tokens"]:
        out.append("no usage chunk (the client asked for one)")
    return out
