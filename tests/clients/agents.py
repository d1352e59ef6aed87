"""Finding and running the coding agents from npm (.ci/run installs them under .ci/node)."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("UNIGATE_CLIENT_BIN_DIR", REPO / ".ci" / "node" / "node_modules" / ".bin"))
# what the agents may take to answer one prompt from a local mock (their start-up included)
AGENT_TIMEOUT = 180.0
# recordings are rewritten only when asked: CI must never change the tree it tests
RECORD = os.environ.get("UNIGATE_RECORD_CLIENTS", "") == "1"


def agent_binary(name: str) -> Path:
    """The agent's executable; fails under CI, skips elsewhere, when it is not installed."""
    path = BIN_DIR / name
    if not path.exists():
        msg = f"{name} is not installed in {BIN_DIR}: run the npm step of .ci/run"
        if IN_CI:
            pytest.fail(msg + " (CI must run every agent)", pytrace=False)
        pytest.skip(msg)
    return path


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str


async def run_agent(argv: list[str], env: dict[str, str], cwd: Path) -> Finished:
    """Run an agent to the end (bounded), in the test's event loop: the gateway it talks to lives there."""
    proc = await asyncio.create_subprocess_exec(*argv, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), AGENT_TIMEOUT)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)  # its whole session: agents start helpers of their own
        out, err = await proc.communicate()
        raise AssertionError(f"{argv[0]} did not finish in {AGENT_TIMEOUT}s\nstdout: {out.decode()[-2000:]}\n"
                             f"stderr: {err.decode()[-4000:]}") from None
    return Finished(proc.returncode or 0, out.decode(), err.decode())


def base_env(home: Path) -> dict[str, str]:
    """A clean environment: only PATH and a HOME of the test's own, so no user config or cached
    login is read, and nothing is written outside the temp dir."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local/share"), "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_STATE_HOME": str(home / ".local/state"), "TERM": "dumb", "NO_COLOR": "1", "CI": "true"}
