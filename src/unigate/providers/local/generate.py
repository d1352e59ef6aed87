"""What runs in a model's worker thread: loading the GGUF file, generating a chat answer token by
token as canonical chunks, and computing embeddings. llama_cpp is imported here, lazily, so a
gateway that never uses the local model never loads the library.
"""

from __future__ import annotations

import base64
import ctypes
import logging
import struct
from collections.abc import Callable
from typing import Any

import orjson

from unigate.canonical.types import JSON
from unigate.errors import InvalidRequest, UnsupportedFeature
from unigate.providers.base import ChunkMaker, usage_dict
from unigate.providers.local.engine import Job, ModelSpec
from unigate.providers.local.grammar import schema_grammar, tool_grammar
from unigate.providers.local.params import ChatParams
from unigate.providers.local.tool_calls import ToolCallReader

log = logging.getLogger("unigate.local.llama_cpp")

_engine_class: Any = None
_log_callback: Any = None


def load_model(spec: ModelSpec) -> Any:
    """Load `spec` with llama-cpp-python. The chat template comes from the GGUF file's metadata
    unless `chat_format` overrides it (llama-cpp-python picks the file's template when
    chat_format is None)."""
    import llama_cpp

    _route_llama_logs(llama_cpp)
    cls = _counting_class(llama_cpp)
    kw: JSON = {"model_path": spec.path, "n_ctx": spec.n_ctx, "n_threads": spec.n_threads,
                "n_threads_batch": spec.n_threads, "chat_format": spec.chat_format, "verbose": False}
    if not spec.embedding:
        llm = cls(**kw)
        if spec.chat_format is not None:
            from llama_cpp import llama_chat_format

            llama_chat_format.get_chat_completion_handler(spec.chat_format)  # unknown name -> ValueError
        return llm
    # Embeddings: one input must fit one batch (llama-cpp-python's `embed`), so the batch is the
    # context. A GGUF made for embeddings declares its pooling; a chat model declares none and
    # would return one vector per token, so mean pooling is asked for explicitly then.
    kw.update(embedding=True, n_batch=spec.n_ctx, n_ubatch=spec.n_ctx)
    llm = cls(**kw)
    if llm.pooling_type() == llama_cpp.LLAMA_POOLING_TYPE_NONE:
        llm.close()
        llm = cls(**kw, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN)
    return llm


def _counting_class(llama_cpp: Any) -> Any:
    """A Llama whose token loop counts tokens for usage and honours the job's cancel flag.

    llama-cpp-python's streamed chat chunks carry no usage, and its chat API takes no stopping
    criteria, but every completion goes through `Llama.generate(prompt_tokens)`, one token per
    step. Wrapping that one method gives exact prompt/completion counts in both modes and a
    place to stop between tokens."""
    global _engine_class
    if _engine_class is not None:
        return _engine_class

    class EngineLlama(llama_cpp.Llama):  # type: ignore[misc]
        job: Job | None = None

        def generate(self, tokens: Any, *args: Any, **kwargs: Any) -> Any:
            job = self.job
            inner = super().generate(tokens, *args, **kwargs)
            if job is None:
                yield from inner
                return
            job.prompt_tokens = len(tokens)
            vocab = self._model.vocab
            is_eog = llama_cpp.llama_vocab_is_eog
            for tok in inner:
                if job.cancelled:
                    return
                if not is_eog(vocab, tok):  # the end-of-generation token is not part of the answer
                    job.completion_tokens += 1
                yield tok

    _engine_class = EngineLlama
    return EngineLlama


def _route_llama_logs(llama_cpp: Any) -> None:
    """llama.cpp writes to stderr even with verbose=False (e.g. warnings when a context is
    created). Send its messages to the `unigate.local.llama_cpp` logger instead: errors as
    warnings, the rest at debug level, so they show only when asked for."""
    global _log_callback
    if _log_callback is not None:
        return

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        # ggml_log_level: 1 info, 2 warn, 3 error, 4 debug, 5 continuation of the previous line
        if level == 3:
            log.warning("%s", text.decode("utf-8", "replace").rstrip())
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("%s", text.decode("utf-8", "replace").rstrip())

    _log_callback = callback  # keep a reference: llama.cpp holds only the C pointer
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


def chat_work(params: ChatParams, model_name: str, *, stream: bool) -> Callable[[Any, Job], JSON | None]:
    """The job for one chat request. Streaming emits canonical chunks as tokens come; otherwise the
    text is collected and one chat.completion returned. Both run llama-cpp-python in stream mode,
    so a cancelled non-streaming request stops between tokens too. A tool-call turn (params.tools)
    generates under the tools' grammar and answers with the call (tool_calls.py)."""

    def work(llm: Any, job: Job) -> JSON | None:
        kwargs = dict(params.kwargs)
        reader: ToolCallReader | None = None
        if params.tools is not None:
            kwargs["grammar"] = tool_grammar(params.tools.grammar_key())
            reader = ToolCallReader(params.tools)
        elif params.json_schema is not None:
            kwargs["grammar"] = schema_grammar(orjson.dumps(params.json_schema))
        if params.logit_bias:
            n_vocab = llm.n_vocab()
            bad = [t for t in params.logit_bias if not 0 <= t < n_vocab]
            if bad:
                raise InvalidRequest(
                    f"local: Invalid 'logit_bias': token id {bad[0]} is not in local/{model_name}'s "
                    f"vocabulary (0..{n_vocab - 1}).", param="logit_bias", code="invalid_value")
            kwargs["logit_bias"] = params.logit_bias
        maker = ChunkMaker(model_name)
        texts: list[str] = []
        finish: str | None = None
        llm.job = job
        try:
            for ch in llm.create_chat_completion(messages=params.messages, stream=True, **kwargs):
                if job.cancelled:
                    break
                choice = ch["choices"][0]
                delta = choice["delta"]
                finish = choice.get("finish_reason") or finish
                if reader is not None:  # a call: its finish is sent below, after the call's end
                    if "role" in delta:
                        _emit_if(stream, job, maker, [{"role": "assistant", "content": None}])
                    elif delta.get("content"):
                        _emit_if(stream, job, maker, [{"tool_calls": [d]} for d in reader.feed(delta["content"])])
                    continue
                if "role" in delta:
                    out: JSON = {"role": "assistant", "content": ""}
                elif delta.get("content"):
                    out = {"content": delta["content"]}
                    texts.append(delta["content"])
                else:
                    out = {}
                if stream and (out or choice.get("finish_reason")):
                    job.emit(maker.chunk(out, finish_reason=choice.get("finish_reason")))
        finally:
            llm.job = None
        job.finish_reason = finish or "stop"
        if job.cancelled:
            return None
        message: JSON = {"role": "assistant", "content": "".join(texts), "refusal": None}
        if reader is not None:
            complete = job.finish_reason == "stop"  # the grammar's end, not max_tokens
            rest = reader.finish(complete)
            if complete:
                job.finish_reason = "tool_calls"
            if stream:
                _emit_if(True, job, maker, [{"tool_calls": [d]} for d in rest])
                job.emit(maker.chunk({}, finish_reason=job.finish_reason))
                return None
            if reader.name is not None:
                message = {"role": "assistant", "content": None, "refusal": None,
                           "tool_calls": [reader.message_call()]}
        if stream:
            return None
        return {
            "id": maker.id,
            "object": "chat.completion",
            "created": maker.created,
            "model": model_name,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": job.finish_reason}],
            "usage": usage_dict(job.prompt_tokens, job.completion_tokens),
        }

    return work


def _emit_if(stream: bool, job: Job, maker: ChunkMaker, deltas: list[JSON]) -> None:
    """Stream each delta as its own chunk (one tool-call delta per chunk, as OpenAI sends them)."""
    if stream:
        for d in deltas:
            job.emit(maker.chunk(d))


def embed_work(texts: list[str], model_name: str, *, encoding_format: str | None,
               dimensions: int | None) -> Callable[[Any, Job], JSON]:
    def work(llm: Any, job: Job) -> JSON:
        n = llm.n_embd()
        if dimensions is not None and dimensions != n:
            # OpenAI shortens text-embedding-3 vectors; cutting another model's vectors short
            # would not give meaningful embeddings.
            raise UnsupportedFeature(f"local: local/{model_name} returns {n}-dimensional embeddings; "
                                     f"'dimensions' {dimensions} is not supported.", param="dimensions")
        vectors, count = llm.embed(texts, normalize=True, truncate=False, return_count=True)
        job.prompt_tokens = count
        job.finish_reason = "stop"
        data: list[JSON] = []
        for i, v in enumerate(vectors):
            emb: Any = v
            if encoding_format == "base64":  # little-endian float32, as OpenAI sends it
                emb = base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode("ascii")
            data.append({"object": "embedding", "index": i, "embedding": emb})
        return {"object": "list", "data": data, "model": model_name,
                "usage": {"prompt_tokens": count, "total_tokens": count}}

    return work
