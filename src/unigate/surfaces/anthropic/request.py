"""Anthropic Messages request (`POST /v1/messages`) -> the canonical OpenAI chat body.

Wire format: /work/shared/reference/providers.md §2.1-2.2 (anthropic-sdk-python
`types/message_create_params.py` and the block param types); mappings from §8 read in reverse.
Bad input is a 400 `invalid_request_error` naming the field the way Anthropic does
(`messages.1.content.0.source.data`).

A few Anthropic-only fields have no OpenAI counterpart but ARE understood by some of the
gateway's upstream adapters. `Target` says what the deployments behind the model can take:

- `native`: every deployment speaks Anthropic Messages. Then `thinking` (exact budget) and
  `cache_control` (on text blocks, system blocks and tools) are carried in the canonical body,
  where providers/anthropic reads them; elsewhere they are dropped (OpenAI refuses unknown keys).
- `top_k`: every deployment's adapter maps `top_k` (Anthropic, Gemini, Cohere); otherwise it is
  dropped, because OpenAI's API answers an unknown parameter with a 400.
- `reasoning`: no deployment is known (from the catalog) to lack reasoning. Then `thinking`
  becomes a rough `reasoning_effort` for non-Anthropic upstreams; for a model known not to
  reason it is dropped, as the request would otherwise fail there.
"""

from __future__ import annotations

from typing import Any

from unigate.canonical.types import JSON
from unigate.errors import InvalidRequest, UnsupportedFeature
from unigate.surfaces.anthropic.content import (
    Target,
    blocks,
    invalid,
    missing,
    text_part,
    tool_call,
    tool_result,
    user_part,
)

__all__ = ["Target", "dropped_in_translation", "effort_for_budget", "request_model", "to_canonical"]

#: Messages fields with no place in the canonical body: they change how Anthropic serves the call
#: (tier, tools it runs, context editing, where it runs), which a translated call cannot carry
_NO_COUNTERPART = ("service_tier", "container", "mcp_servers", "context_management", "inference_geo", "speed",
                   "cache_control")
#: output_config.effort values that have a reasoning_effort of the same name
_EFFORTS = ("low", "medium", "high")


def effort_for_budget(budget: int) -> str:
    """thinking.budget_tokens -> reasoning_effort for non-Anthropic upstreams: a rough inverse
    of providers/anthropic THINKING_BUDGETS (below 4096 low, below 16384 medium, else high)."""
    if budget < 4096:
        return "low"
    if budget < 16384:
        return "medium"
    return "high"


def _is_num(v: Any) -> bool:
    return type(v) is int or type(v) is float


def request_model(body: JSON) -> str:
    model = body.get("model")
    if model is None:
        raise missing("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "a non-empty string", model)
    return model


_PLAIN = Target()


def to_canonical(body: JSON, target: Target = _PLAIN) -> JSON:
    """The canonical chat body for an Anthropic Messages request body."""
    model = request_model(body)
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise missing("max_tokens")  # required by Anthropic's API, so required here too
    if type(max_tokens) is not int or max_tokens < 0:
        raise invalid("max_tokens", "a non-negative integer", max_tokens)
    msgs = body.get("messages")
    if msgs is None:
        raise missing("messages")
    if not isinstance(msgs, list):
        raise invalid("messages", "a valid list", msgs)
    if not msgs:
        raise InvalidRequest("messages: at least one message is required", param="messages", code="invalid_value")

    messages: list[JSON] = []
    system = _system(body.get("system"), target)
    if system is not None:
        messages.append(system)
    for i, m in enumerate(msgs):
        messages.extend(_message(m, f"messages.{i}", target))
    # max_completion_tokens: what OpenAI's reasoning models require; presets rename it to
    # max_tokens for hosts that only know that, and every native adapter reads it.
    out: JSON = {"model": model, "messages": messages, "max_completion_tokens": max_tokens}
    _sampling(body, out, target)
    _tools(body, out, target)
    _thinking(body, out, target)
    _output_config(body, out, target)
    md = body.get("metadata")
    if md is not None:
        if not isinstance(md, dict):
            raise invalid("metadata", "a valid dictionary", md)
        uid = md.get("user_id")
        if uid is not None and not isinstance(uid, str):
            raise invalid("metadata.user_id", "a valid string", uid)
        if uid:
            out["user"] = uid
    stream = body.get("stream")
    if stream is not None and type(stream) is not bool:
        raise invalid("stream", "a valid boolean", stream)
    if stream:
        out["stream"] = True
        # the stream encoder reports usage in message_delta, so the pipeline must learn it
        out["stream_options"] = {"include_usage": True}
    # Fields with no counterpart (_NO_COUNTERPART) are left out: dropped_in_translation names them.
    return out


def dropped_in_translation(body: JSON, target: Target) -> list[str]:
    """What `to_canonical(body, target)` leaves out, for x-unigate-dropped-params. Anthropic
    upstreams get the client's body itself (the pipeline's native pass-through), so this is what
    a call translated to another dialect loses; that dialect's own losses come on top."""
    out = [k for k in _NO_COUNTERPART if body.get(k) is not None]
    if body.get("top_k") is not None and not target.top_k:
        out.append("top_k")
    if target.native:
        return out
    th = body.get("thinking")
    if isinstance(th, dict) and (th.get("type") == "adaptive" or (th.get("type") == "enabled" and not target.reasoning)):
        out.append("thinking")
    oc = body.get("output_config")
    # effort becomes reasoning_effort (see _output_config) unless thinking already set that
    thinking_mapped = isinstance(th, dict) and th.get("type") == "enabled" and target.reasoning
    if isinstance(oc, dict) and oc.get("effort") is not None and (
            oc["effort"] not in _EFFORTS or not target.reasoning or thinking_mapped):
        out.append("output_config.effort")
    md = body.get("metadata")
    if isinstance(md, dict) and any(k != "user_id" for k in md):
        out.append("metadata")
    cache, thinking = _marks(body)
    if cache and "cache_control" not in out:
        out.append("cache_control")  # prompt-caching breakpoints: only Anthropic reads them
    if thinking:
        out.append("thinking blocks")  # signed reasoning in the history has no canonical form
    return out


def _marks(body: JSON) -> tuple[bool, bool]:
    """Whether any block carries cache_control, and whether the history holds thinking blocks."""
    cache = thinking = False
    system = body.get("system")
    for b in (system if isinstance(system, list) else ()):
        cache = cache or (isinstance(b, dict) and b.get("cache_control") is not None)
    for t in body.get("tools") or ():
        cache = cache or (isinstance(t, dict) and t.get("cache_control") is not None)
    for m in body.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        for b in (content if isinstance(content, list) else ()):
            if isinstance(b, dict):
                cache = cache or b.get("cache_control") is not None
                thinking = thinking or b.get("type") in ("thinking", "redacted_thinking")
    return cache, thinking


# ---------------------------------------------------------------------------- sampling


def _sampling(body: JSON, out: JSON, target: Target) -> None:
    for name in ("temperature", "top_p"):
        v = body.get(name)
        if v is None:
            continue
        if not _is_num(v):
            raise invalid(name, "a valid number", v)
        if not 0 <= v <= 1:  # Anthropic's range for both
            raise InvalidRequest(f"{name}: Input should be between 0 and 1, got {v}", param=name, code="invalid_value")
        out[name] = v
    top_k = body.get("top_k")
    if top_k is not None:
        if type(top_k) is not int or top_k < 0:
            raise invalid("top_k", "a non-negative integer", top_k)
        if target.top_k:
            out["top_k"] = top_k
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise invalid("stop_sequences", "a list of strings", stop)
        if stop:
            out["stop"] = list(stop)


def _thinking(body: JSON, out: JSON, target: Target) -> None:
    th = body.get("thinking")
    if th is None:
        return
    if not isinstance(th, dict):
        raise invalid("thinking", "a valid dictionary", th)
    kind = th.get("type")
    if kind not in ("enabled", "disabled", "adaptive"):
        raise InvalidRequest("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'",
                             param="thinking.type", code="invalid_value")
    budget = th.get("budget_tokens")
    if kind == "enabled" and (type(budget) is not int or budget < 1):
        raise invalid("thinking.budget_tokens", "a positive integer", budget)
    if target.native:
        out["thinking"] = th  # providers/anthropic passes Anthropic's own knob through as is
    elif kind == "enabled" and target.reasoning and isinstance(budget, int):
        out["reasoning_effort"] = effort_for_budget(budget)
    # adaptive / disabled elsewhere: the model's default


def _output_config(body: JSON, out: JSON, target: Target) -> None:
    oc = body.get("output_config")
    if oc is None:
        return
    if not isinstance(oc, dict):
        raise invalid("output_config", "a valid dictionary", oc)
    effort = oc.get("effort")
    if effort in _EFFORTS and "reasoning_effort" not in out and target.reasoning:
        out["reasoning_effort"] = effort  # the same knob by another name (thinking, when set, wins)
    fmt = oc.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise InvalidRequest("output_config.format: expected {\"type\": \"json_schema\", \"schema\": {...}}",
                             param="output_config.format", code="invalid_value")
    out["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}


# ---------------------------------------------------------------------------- tools


def _tools(body: JSON, out: JSON, target: Target) -> None:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise invalid("tools", "a valid list", tools)
    converted: list[JSON] = []
    for i, t in enumerate(tools or ()):
        p = f"tools.{i}"
        if not isinstance(t, dict):
            raise invalid(p, "a valid dictionary", t)
        if t.get("type") not in (None, "custom"):
            raise UnsupportedFeature(f"{p}.type: server tool {t.get('type')!r} is not supported by this gateway; "
                                     "only client tools (name, description, input_schema) are", param=f"{p}.type")
        name = t.get("name")
        if name is None:
            raise missing(f"{p}.name")
        if not isinstance(name, str) or not name:
            raise invalid(f"{p}.name", "a non-empty string", name)
        schema = t.get("input_schema")
        if schema is None:
            raise missing(f"{p}.input_schema")
        if not isinstance(schema, dict):
            raise invalid(f"{p}.input_schema", "a valid dictionary", schema)
        fn: JSON = {"name": name, "parameters": schema}
        desc = t.get("description")
        if isinstance(desc, str) and desc:
            fn["description"] = desc
        if t.get("strict") is True:
            fn["strict"] = True
        tool: JSON = {"type": "function", "function": fn}
        if target.native and isinstance(t.get("cache_control"), dict):
            tool["cache_control"] = t["cache_control"]
        converted.append(tool)
    tc = body.get("tool_choice")
    if tc is not None and not isinstance(tc, dict):
        raise invalid("tool_choice", "a valid dictionary", tc)
    if not converted:
        return  # OpenAI refuses tool_choice / parallel_tool_calls without tools
    out["tools"] = converted
    if tc is None:
        return
    kind = tc.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        name = tc.get("name")
        if not isinstance(name, str) or not name:
            raise missing("tool_choice.name")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise InvalidRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'",
                             param="tool_choice.type", code="invalid_value")
    if tc.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False


# ---------------------------------------------------------------------------- messages


def _system(system: Any, target: Target) -> JSON | None:
    if system is None:
        return None
    if isinstance(system, str):
        return {"role": "system", "content": system} if system else None
    if not isinstance(system, list):
        raise invalid("system", "a string or a list of text blocks", system)
    parts: list[JSON] = []
    for j, b in enumerate(system):
        p = f"system.{j}"
        if not isinstance(b, dict) or b.get("type") != "text":
            raise InvalidRequest(f"{p}.type: system blocks must be text blocks", param=f"{p}.type",
                                 code="invalid_value")
        text = b.get("text")
        if not isinstance(text, str):
            raise invalid(f"{p}.text", "a valid string", text)
        if text:
            parts.append(text_part(text, b, target))
    if not parts:
        return None
    if target.native:
        return {"role": "system", "content": parts}  # blocks keep their cache_control
    # one string: some OpenAI-compatible hosts take only strings for system content; the same
    # separator providers/anthropic uses when it joins system parts
    return {"role": "system", "content": "\n\n".join(p["text"] for p in parts)}


def _message(m: Any, path: str, target: Target) -> list[JSON]:
    if not isinstance(m, dict):
        raise invalid(path, "a valid dictionary", m)
    role = m.get("role")
    if role is None:
        raise missing(f"{path}.role")
    content = m.get("content")
    if content is None:
        raise missing(f"{path}.content")
    if not isinstance(content, (str, list)):
        raise invalid(f"{path}.content", "a string or a list of content blocks", content)
    if role == "user":
        return _user(content, path, target)
    if role == "assistant":
        return _assistant(content, path, target)
    if role == "system":  # newer API versions allow system blocks mid-conversation
        sys_msg = _system(content, target)
        return [sys_msg] if sys_msg else []
    raise InvalidRequest(f"{path}.role: Input should be 'user' or 'assistant'", param=f"{path}.role",
                         code="invalid_value")


def _user(content: str | list[Any], path: str, target: Target) -> list[JSON]:
    """tool_result blocks become `tool` messages, placed before the turn's remaining content
    (the order OpenAI requires: tool results right after the assistant's tool_calls)."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tool_msgs: list[JSON] = []
    parts: list[JSON] = []
    for p, b in blocks(content, path):
        t = b["type"]
        if t == "tool_result":
            msg, extra = tool_result(b, p, target)
            tool_msgs.append(msg)
            parts.extend(extra)
        elif t in ("thinking", "redacted_thinking"):
            continue
        else:
            parts.extend(user_part(b, p, target))
    out = tool_msgs
    if parts:
        simple = len(parts) == 1 and parts[0]["type"] == "text" and "cache_control" not in parts[0]
        out.append({"role": "user", "content": parts[0]["text"] if simple else parts})
    elif not tool_msgs:
        out.append({"role": "user", "content": ""})  # the upstream decides about an empty turn
    return out


def _assistant(content: str | list[Any], path: str, target: Target) -> list[JSON]:
    if isinstance(content, str):
        return [{"role": "assistant", "content": content}]
    texts: list[str] = []
    calls: list[JSON] = []
    for p, b in blocks(content, path):
        t = b["type"]
        if t == "text":
            text = b.get("text")
            if not isinstance(text, str):
                raise invalid(f"{p}.text", "a valid string", text)
            texts.append(text)
        elif t == "tool_use":
            calls.append(tool_call(b, p))
        elif t in ("thinking", "redacted_thinking"):
            continue  # the canonical form has no place for signed thinking blocks
        else:
            raise UnsupportedFeature(f"{p}.type: content block type {t!r} is not supported in assistant messages "
                                     "by this gateway (supported: text, tool_use, thinking)", param=f"{p}.type")
    text = "".join(texts)
    msg: JSON = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        msg["tool_calls"] = calls
    return [msg]
