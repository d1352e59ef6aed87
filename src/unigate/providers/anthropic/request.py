"""Canonical (OpenAI Chat Completions) request -> Anthropic Messages request body.

Wire format: /work/shared/reference/providers.md §2.1-2.2 and the mapping tables in §8
(anthropic-sdk-python `types/message_create_params.py` and friends).
"""

from __future__ import annotations

from typing import Any

import orjson

from unigate.canonical.effort import claude_fit, claude_forced_tool, thinking_budget
from unigate.canonical.limits import max_output_tokens, max_tokens_param
from unigate.canonical.tools import JSON_TOOL, ToolIdRule, refuse_reserved_tool
from unigate.canonical.turns import append_turn
from unigate.canonical.types import JSON
from unigate.errors import InvalidRequest, UnsupportedFeature
from unigate.providers.anthropic.content import message_blocks, text_blocks, user_blocks
from unigate.providers.base import FRAME_FIELDS

#: the API version the adapter speaks (Anthropic versioning docs; the value the SDK sent for years)
ANTHROPIC_VERSION = "2023-06-01"
#: Anthropic requires max_tokens; OpenAI lets the model decide, so pick a generous default.
DEFAULT_MAX_TOKENS = 4096
# response_format is answered through the forced tool canonical.tools.JSON_TOOL, and
# reasoning_effort maps through canonical.effort's Claude table (the same on Bedrock).
#: every canonical field `build` reads; the pipeline reports the others (presence_penalty, seed,
#: logit_bias, metadata, ...: no Anthropic counterpart) as dropped
READS = FRAME_FIELDS | {"temperature", "top_p", "top_k", "user", "safety_identifier", "parallel_tool_calls",
                        "thinking", "functions", "function_call", "audio", "logprobs", "top_logprobs",
                        "web_search_options"}

#: A tool-call id Anthropic accepts (`^[a-zA-Z0-9_-]+$`, §2.2): valid ids pass unchanged,
#: others are rewritten stably (the tool_use and its tool_result get the same id).
tool_id = ToolIdRule("a-zA-Z0-9_-")


def build(body: JSON, model: str, *, stream: bool) -> tuple[JSON, tuple[str, ...]]:
    """The Anthropic request body and the names of the fields that were dropped."""
    if isinstance(body.get("n"), int) and body["n"] > 1:
        raise UnsupportedFeature("anthropic: n > 1 is not supported (Anthropic returns one answer per request)", param="n")
    _refuse_unsupported(body)
    refuse_reserved_tool(body)
    system, messages = translate_messages(body["messages"])
    out: JSON = {"model": model, "messages": messages}
    if system:
        # a plain string unless a block carries cache_control, which only the block form can hold
        out["system"] = "\n\n".join(b["text"] for b in system) if not any("cache_control" in b for b in system) else system
    dropped: list[str] = []  # what is read but cannot go with this request (see _sampling)
    thinking_on = _budget(body, out)
    _sampling(body, out, dropped, thinking_on)
    stop = body.get("stop")
    if stop:
        seqs = [stop] if isinstance(stop, str) else [s for s in stop if s]
        if seqs:
            out["stop_sequences"] = seqs
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if stream:
        out["stream"] = True

    tools, tool_choice = _tools(body)
    rf = body.get("response_format") or {}
    if rf.get("type") in ("json_schema", "json_object"):
        if thinking_on:
            raise claude_forced_tool("anthropic", "response_format")
        tools, tool_choice = _response_tool(rf, tools, tool_choice)
    elif thinking_on and tools and (tool_choice or {}).get("type") in ("any", "tool"):
        raise claude_forced_tool("anthropic", "tool_choice")
    if tools:
        out["tools"] = tools
        if tool_choice is not None:
            out["tool_choice"] = tool_choice
    return out, tuple(dropped)


def _budget(body: JSON, out: JSON) -> bool:
    """Sets max_tokens (required by Anthropic) and thinking; true when thinking is on."""
    max_tokens = max_output_tokens(body)
    thinking = _thinking(body)
    budget = thinking.get("budget_tokens") if thinking is not None and thinking.get("type") == "enabled" else None
    if thinking is not None and isinstance(budget, int):  # a malformed pass-through is Anthropic's to refuse
        fitted, max_tokens = claude_fit(budget, max_tokens, who="anthropic", param=max_tokens_param(body))
        if fitted != budget:
            thinking = {**thinking, "budget_tokens": fitted}
    out["max_tokens"] = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    if thinking is None:
        return False
    out["thinking"] = thinking
    return thinking.get("type") in ("enabled", "adaptive")


def _sampling(body: JSON, out: JSON, dropped: list[str], thinking_on: bool) -> None:
    temperature = body.get("temperature")
    if temperature is not None:
        if temperature > 1:
            # Anthropic takes 0-1 (§2.1); scaling or clamping would silently change the request
            raise UnsupportedFeature(f"anthropic: temperature {temperature} is out of range; Anthropic models accept 0 to 1",
                                     param="temperature")
        if thinking_on and temperature != 1:
            dropped.append("temperature")  # extended thinking requires the default temperature
        else:
            out["temperature"] = temperature
    top_p = body.get("top_p")
    if top_p is not None:
        if thinking_on and top_p < 0.95:
            dropped.append("top_p")  # with thinking Anthropic accepts top_p only in [0.95, 1]
        else:
            out["top_p"] = top_p
    top_k = body.get("top_k")  # not OpenAI, but clients aimed at several providers send it
    if isinstance(top_k, int) and not isinstance(top_k, bool):
        if thinking_on:
            dropped.append("top_k")
        else:
            out["top_k"] = top_k


def _refuse_unsupported(body: JSON) -> None:
    if body.get("logprobs") is True or (body.get("top_logprobs") or 0) > 0:
        raise UnsupportedFeature("anthropic: logprobs are not available from Anthropic models", param="logprobs")
    modalities = body.get("modalities")
    if body.get("audio") is not None or (isinstance(modalities, list) and "audio" in modalities):
        raise UnsupportedFeature("anthropic: audio output is not supported", param="modalities")
    if body.get("web_search_options") is not None:
        raise UnsupportedFeature("anthropic: web_search_options is not supported through this gateway", param="web_search_options")


def _thinking(body: JSON) -> JSON | None:
    budget = thinking_budget("claude", body)  # checks reasoning_effort even when `thinking` wins
    if isinstance(body.get("thinking"), dict):
        return dict(body["thinking"])  # Anthropic's own knob, passed by clients that know it
    if not budget:
        return None  # thinking is off unless asked for
    return {"type": "enabled", "budget_tokens": budget}


# ---------------------------------------------------------------------------- messages


def translate_messages(msgs: list[JSON]) -> tuple[list[JSON], list[JSON]]:
    """(system text blocks, Anthropic messages). System and developer messages are hoisted into
    `system` in order; tool results become user turns; consecutive same-role turns are merged
    (Anthropic merges them anyway, and tool results must share one user turn, §8.2)."""
    system: list[JSON] = []
    turns: list[JSON] = []
    for i, m in enumerate(msgs):
        role = m.get("role")
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            system.extend(text_blocks(m.get("content"), where))
        elif role == "user":
            _append(turns, "user", user_blocks(m.get("content"), where))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(m, where))
        elif role in ("tool", "function"):
            _append(turns, "user", [_tool_result(m, where)])
        else:
            raise InvalidRequest(f"Invalid value for '{where}.role': {role!r}.", param=f"{where}.role", code="invalid_value")
    if not turns:
        raise InvalidRequest("anthropic: the conversation needs at least one user or assistant message besides the "
                             "system prompt", param="messages")
    last = turns[-1]
    if last["role"] == "assistant":
        # A trailing assistant turn is a prefill; the API rejects one ending in whitespace
        # ("final assistant content cannot end with trailing whitespace").
        blk = last["content"][-1]
        if blk.get("type") == "text":
            blk["text"] = blk["text"].rstrip()
            if not blk["text"]:
                last["content"].pop()
                if not last["content"]:
                    turns.pop()
    return system, turns


def _is_result(block: JSON) -> bool:
    return block.get("type") == "tool_result"


def _append(turns: list[JSON], role: str, blocks: list[JSON]) -> None:
    # Anthropic rejects empty turns; tool_result blocks must open the user turn, before any
    # text (Anthropic tool-use docs)
    append_turn(turns, role, blocks, first=_is_result)


def _assistant_blocks(m: JSON, where: str) -> list[JSON]:
    blocks = message_blocks(m.get("content"), where)
    for j, tc in enumerate(m.get("tool_calls") or ()):
        p = f"{where}.tool_calls[{j}]"
        fn = tc.get("function") if isinstance(tc, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest(f"Missing required parameter: '{p}.function.name'.", param=f"{p}.function.name",
                                 code="missing_required_parameter")
        blocks.append({"type": "tool_use", "id": tool_id(str(tc.get("id") or "")), "name": fn["name"],
                       "input": _arguments(fn.get("arguments"), f"{p}.function.arguments")})
    fc = m.get("function_call")  # the deprecated single-call form
    if isinstance(fc, dict) and isinstance(fc.get("name"), str):
        blocks.append({"type": "tool_use", "id": tool_id("fn_" + fc["name"]), "name": fc["name"],
                       "input": _arguments(fc.get("arguments"), f"{where}.function_call.arguments")})
    return blocks


def _arguments(raw: Any, param: str) -> JSON:
    """OpenAI sends arguments as a JSON string; Anthropic's tool_use.input is an object."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        obj = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        raise InvalidRequest(f"Invalid '{param}': not valid JSON. Anthropic needs tool-call arguments as a JSON object.",
                             param=param, code="invalid_value") from None
    if not isinstance(obj, dict):
        raise InvalidRequest(f"Invalid '{param}': expected a JSON object, Anthropic takes tool-call arguments only as an "
                             "object.", param=param, code="invalid_value")
    return obj


def _tool_result(m: JSON, where: str) -> JSON:
    if m.get("role") == "function":
        ident = tool_id("fn_" + str(m.get("name") or ""))
    else:
        ident = tool_id(str(m.get("tool_call_id") or ""))
    block: JSON = {"type": "tool_result", "tool_use_id": ident}
    content = m.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif isinstance(content, list):
        parts = user_blocks(content, where)
        if parts:
            block["content"] = parts
    return block


# ---------------------------------------------------------------------------- tools


def _tools(body: JSON) -> tuple[list[JSON], JSON | None]:
    tools: list[JSON] = []
    for i, t in enumerate(body.get("tools") or ()):
        if t.get("type") != "function":
            raise UnsupportedFeature(f"anthropic: tools[{i}] has type {t.get('type')!r}; only function tools can be "
                                     "translated", param=f"tools[{i}].type")
        tools.append(_tool(t["function"], f"tools[{i}].function", t))
    for i, fn in enumerate(body.get("functions") or ()):  # the deprecated form of tools
        tools.append(_tool(fn, f"functions[{i}]", {}))
    if not tools:
        return [], None

    choice: JSON | None = None
    tc = body.get("tool_choice")
    if tc is None and isinstance(body.get("function_call"), (str, dict)):
        fc = body["function_call"]
        tc = fc if isinstance(fc, str) else {"type": "function", "function": fc}
    if tc == "auto":
        choice = {"type": "auto"}
    elif tc == "none":
        choice = {"type": "none"}
    elif tc == "required":
        choice = {"type": "any"}
    elif isinstance(tc, dict) and tc.get("type") == "function":
        name = (tc.get("function") or {}).get("name")
        if not isinstance(name, str):
            raise InvalidRequest("Missing required parameter: 'tool_choice.function.name'.",
                                 param="tool_choice.function.name", code="missing_required_parameter")
        choice = {"type": "tool", "name": name}
    elif isinstance(tc, dict) and tc.get("type") == "allowed_tools":
        # Anthropic has no allow-list: send only the allowed tools, then auto/any (§8.4)
        spec = tc.get("allowed_tools") or {}
        names = {(a.get("function") or {}).get("name") for a in spec.get("tools") or () if isinstance(a, dict)}
        tools = [t for t in tools if t["name"] in names]
        choice = {"type": "any" if spec.get("mode") == "required" else "auto"}
    elif tc is not None:
        raise InvalidRequest(f"Invalid value for 'tool_choice': {tc!r}.", param="tool_choice", code="invalid_value")
    if body.get("parallel_tool_calls") is False:
        # the switch lives on the tool_choice object, so an explicit auto is needed (§8.4)
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    return tools, choice


def _tool(fn: JSON, where: str, wrapper: JSON) -> JSON:
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"Missing required parameter: '{where}.name'.", param=f"{where}.name",
                             code="missing_required_parameter")
    params = fn.get("parameters")
    if not isinstance(params, dict) or not params:
        schema: JSON = {"type": "object", "properties": {}}  # input_schema is required and must be an object
    elif "type" not in params:
        schema = {"type": "object", **params}
    else:
        schema = params
    out: JSON = {"name": name, "input_schema": schema}
    if fn.get("description"):
        out["description"] = fn["description"]
    if fn.get("strict") is True:
        out["strict"] = True
    if isinstance(wrapper.get("cache_control"), dict):
        out["cache_control"] = wrapper["cache_control"]
    return out


def _response_tool(rf: JSON, tools: list[JSON], choice: JSON | None) -> tuple[list[JSON], JSON]:
    """response_format as one forced tool whose input is the answer: the tool-based JSON mode
    Anthropic documents for models without native structured output (§8.7)."""
    if rf["type"] == "json_schema":
        js = rf.get("json_schema") or {}
        schema = js.get("schema") or {"type": "object"}
        if not isinstance(schema, dict) or schema.get("type", "object") != "object":
            raise UnsupportedFeature("anthropic: response_format json_schema must describe a JSON object (Anthropic "
                                     "tool inputs are objects)", param="response_format.json_schema.schema")
        desc = js.get("description") or f"Give the final answer by calling this tool; its input is the answer, a " \
                                        f"JSON object following the {js.get('name', 'response')!r} schema."
    else:
        schema = {"type": "object"}
        desc = "Give the final answer by calling this tool; its input is the answer as a JSON object."
    tool = {"name": JSON_TOOL, "description": desc, "input_schema": schema}
    if not tools or (choice or {}).get("type") == "none":
        # only the answer tool may be called; user tools stay defined because a history with
        # tool_use blocks needs them
        return [*tools, tool], {"type": "tool", "name": JSON_TOOL, "disable_parallel_tool_use": True}
    if choice is not None and choice.get("type") == "tool":
        return [*tools, tool], choice  # the client named a tool: that call comes first
    # the model may call a client tool or answer through the answer tool, but must do one
    forced: JSON = {"type": "any"}
    if (choice or {}).get("disable_parallel_tool_use"):
        forced["disable_parallel_tool_use"] = True
    return [*tools, tool], forced
