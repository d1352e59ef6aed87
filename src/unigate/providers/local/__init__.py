"""The embedded local model: GGUF files run in process with llama-cpp-python.

    models.py    which models exist (built-in SmolLM2, config entries) -> `local/<name>` deployments
    params.py    canonical request -> llama-cpp-python arguments, with clear 400s for what it cannot do
    tools.py     function calling: the tool_choice policy, the tools' system prompt, history as text
    grammar.py   llama.cpp grammars from JSON schemas / the tools' schemas, built in the worker, cached
    tool_calls.py  the grammar-constrained output read as OpenAI tool_calls (JSON and stream deltas)
    engine.py    one worker thread per model, a bounded queue, cancellation between tokens
    generate.py  worker-side: loading, token-by-token generation as canonical chunks, embeddings
    adapter.py   the adapter: canonical request -> the engine's work, a passthrough like OpenAI's
    exchange.py  the in-process exchange the transport enters instead of HTTP (OpenAI JSON / SSE out)
"""

from unigate.providers.local.adapter import LocalAdapter, engine_for
from unigate.providers.local.models import builtin_model_path, llama_cpp_available, local_deployments

__all__ = [
    "LocalAdapter", "builtin_model_path", "engine_for", "llama_cpp_available", "local_deployments",
]
