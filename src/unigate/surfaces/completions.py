"""Legacy `/v1/completions` on models that only chat: the prompt as one chat call, the answer
re-encoded as a `text_completion` (JSON, or SSE chunks ending with `data: [DONE]`).

A deployment whose upstream has a completions API (an OpenAI-compatible host serving an
instruct or base model, Azure, vLLM, ...) keeps getting the client's body as it came, and its
answer is relayed untouched. Every other one (the native dialects, the embedded model, and the
models the rules below know to be chat-only) gets `chat_body(...)` through its chat translator,
and the pipeline encodes the chat answer with `EGRESS` instead of relaying it.

What a chat call cannot hold is refused with a 400 naming the parameter, never dropped
silently: `suffix` (insertion), `echo`, `logprobs` (the completions form: per-token strings),
`best_of` > 1, a token-array prompt and more than one prompt. `n` > 1 goes on to the chat call,
whose translator serves it (OpenAI, Gemini) or refuses it (the others).
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import orjson

from unigate.canonical.types import JSON
from unigate.errors import GatewayError, UnsupportedFeature
from unigate.providers import sse
from unigate.providers.base import AdapterBase, Deployment
from unigate.surfaces import validate

__all__ = ["EGRESS", "CompletionsEgress", "CompletionsStreamEncoder", "chat_body", "has_native_completions",
           "to_text_completion"]

#: OpenAI-compatible hosts with no /completions endpoint at all (their API references list chat only)
NO_COMPLETIONS_API = frozenset({"groq", "mistral", "perplexity", "gemini_openai"})
#: hosts whose model names say what the model is (OpenAI's own, and Azure's usual deployment names)
_OPENAI_NAMED = frozenset({"openai", "azure"})
#: OpenAI's chat-only families: /v1/completions answers them 404 ("This is a chat model ...");
#: its completions models are gpt-3.5-turbo-instruct, davinci-002 and babbage-002
_OPENAI_CHAT_PREFIXES = ("gpt-4", "gpt-5", "gpt-3.5-turbo", "chatgpt-", "o1", "o3", "o4")
#: the completions-only fields a chat call has no counterpart for, and the values that ask
#: for nothing (the defaults), which alone pass on the chat path
_REFUSED_ON_CHAT = ("suffix", "echo", "logprobs", "best_of")
_DEFAULTS: dict[str, tuple[Any, ...]] = {"suffix": (None, ""), "echo": (None, False), "logprobs": (None,),
                                         "best_of": (None, 1)}


def has_native_completions(dep: Deployment) -> bool:
    """Whether this deployment's upstream serves /completions itself (else: the chat path)."""
    cls: Any = type(dep.adapter)  # (mypy: the Protocol's method and the base's do not overlap)
    if cls.completions_request is AdapterBase.completions_request:
        return False  # a dialect with no completions API (native dialects, the embedded model)
    return _native_for(dep.provider.preset.id, dep.model)


@lru_cache(maxsize=1024)
def _native_for(preset: str, model: str) -> bool:
    if preset in NO_COMPLETIONS_API:
        return False
    if preset in _OPENAI_NAMED:
        name = model.lower()
        return "instruct" in name or not name.startswith(_OPENAI_CHAT_PREFIXES)
    return True  # an unknown model: the host's own completions endpoint decides


def chat_body(body: JSON) -> JSON:
    """The canonical chat body for a (validated) completions body; UnsupportedFeature (400,
    and the next deployment, which may have completions, is still tried) for what chat cannot hold."""
    for name in _REFUSED_ON_CHAT:
        v = body.get(name)
        if v is not None and v not in _DEFAULTS[name]:
            raise UnsupportedFeature(
                f"'{name}' is not supported for {body.get('model')!r}: it has no completions API, so the prompt is "
                f"sent as a chat message, which has no {_WHY[name]}. Remove '{name}' or use a completions model.",
                param=name)
    prompt = body["prompt"]
    if isinstance(prompt, list):
        if len(prompt) != 1 or type(prompt[0]) is not str:
            what = ("an empty prompt array" if not prompt else "token arrays" if not isinstance(prompt[0], str)
                    else "several prompts in one request")
            raise UnsupportedFeature(
                f"Invalid 'prompt' for {body.get('model')!r}: it has no completions API, so the prompt is sent as one "
                f"chat message; {what} cannot be. Send one prompt as a string.", param="prompt")
        prompt = prompt[0]
    out: JSON = {k: v for k, v in body.items() if k not in _NOT_CARRIED}
    out["messages"] = [{"role": "user", "content": prompt}]
    # what the completions checks do not look at (a chat field sent to /v1/completions) is
    # checked as chat's, so every chat translator can trust the body
    validate.validate_chat(out)
    return out


_WHY = {"suffix": "text after the insertion point", "echo": "way to return the prompt with the answer",
        "logprobs": "per-token log probabilities in the completions form", "best_of": "server-side best-of"}
#: the completions-only fields (each refused above unless at its default) and the prompt itself;
#: everything else (max_tokens, temperature, top_p, stop, seed, user, the penalties, n,
#: logit_bias, stream, stream_options, ...) is the chat field of the same name
_NOT_CARRIED = frozenset({"prompt", *_REFUSED_ON_CHAT})


# ---------------------------------------------------------------------------- the answer


def _choice(c: JSON, text: Any) -> JSON:
    return {"text": text if isinstance(text, str) else "", "index": c.get("index", 0), "logprobs": None,
            "finish_reason": c.get("finish_reason")}


def to_text_completion(obj: JSON) -> JSON:
    """A chat.completion -> the text_completion a completions client reads."""
    choices = [_choice(c, (c.get("message") or {}).get("content")) for c in obj.get("choices") or ()]
    out: JSON = {"id": _cmpl_id(obj.get("id")), "object": "text_completion",
                 "created": obj.get("created") or int(time.time()), "model": obj.get("model", ""),
                 "choices": choices}
    if obj.get("system_fingerprint") is not None:
        out["system_fingerprint"] = obj["system_fingerprint"]
    if obj.get("usage") is not None:
        out["usage"] = obj["usage"]
    return out


def _cmpl_id(chat_id: Any) -> str:
    if not isinstance(chat_id, str) or not chat_id:
        return "cmpl-" + time.time_ns().to_bytes(8, "big").hex()
    return "cmpl-" + chat_id.removeprefix("chatcmpl-")


class CompletionsStreamEncoder:
    """Canonical chat.completion.chunk -> text_completion chunks (a chunk with no text and no
    finish, such as the role-only first one, is left out), then the usage chunk when the client
    asked (stream_options.include_usage) and `data: [DONE]`."""

    __slots__ = ("created", "id", "model", "want_usage")

    def __init__(self, want_usage: bool) -> None:
        self.want_usage = want_usage
        self.id = ""
        self.created = 0
        self.model = ""

    def chunk(self, chunk: JSON) -> bytes:
        if not self.id:
            self.id = _cmpl_id(chunk.get("id"))
            self.created = chunk.get("created") or int(time.time())
            self.model = chunk.get("model", "")
        choices = []
        for c in chunk.get("choices") or ():
            text = (c.get("delta") or {}).get("content")
            if text or c.get("finish_reason") is not None:
                choices.append(_choice(c, text))
        if not choices:
            return b""
        return sse.encode({"id": self.id, "object": "text_completion", "created": self.created,
                           "model": self.model, "choices": choices})

    def finish(self, usage: JSON | None) -> bytes:
        if self.want_usage and usage is not None:
            last = {"id": self.id or _cmpl_id(None), "object": "text_completion",
                    "created": self.created or int(time.time()), "model": self.model, "choices": [], "usage": usage}
            return sse.encode(last) + sse.DONE
        return sse.DONE

    def error(self, err: GatewayError) -> bytes:
        return sse.encode(err.body())


class CompletionsEgress:
    """The OpenAI surface's encoding of a chat answer to a completions call (never a relay:
    the upstream's bytes are a chat completion)."""

    relay_openai = False

    def encode_json(self, obj: JSON) -> bytes:
        return orjson.dumps(to_text_completion(obj))

    def stream_encoder(self, body: JSON) -> CompletionsStreamEncoder:
        opts = body.get("stream_options")
        return CompletionsStreamEncoder(isinstance(opts, dict) and opts.get("include_usage") is True)


EGRESS = CompletionsEgress()
