"""The embedded local model: GGUF files run in process with llama-cpp-python.

    models.py    which models exist (built-in SmolLM2, config entries) -> `local/<name>` deployments
    params.py    canonical request -> llama-cpp-python arguments, with clear 400s for what it cannot do
    engine.py    one worker thread per model, a bounded queue, cancellation between tokens
    generate.py  worker-side: loading, token-by-token generation as canonical chunks, embeddings
    adapter.py   the in-process adapter the pipeline calls
"""

from unigate.providers.local.adapter import LocalAdapter, LocalStream, engine_for
from unigate.providers.local.models import builtin_model_path, llama_cpp_available, local_deployments

__all__ = [
    "LocalAdapter", "LocalStream", "builtin_model_path", "engine_for", "llama_cpp_available", "local_deployments",
]
