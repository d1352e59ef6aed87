"""The embedded local model (llama-cpp-python, in process). Filled in by the local-model work."""

from __future__ import annotations

from unigate.config import Config
from unigate.providers.base import Deployment


def local_deployments(cfg: Config) -> list[Deployment]:
    return []
