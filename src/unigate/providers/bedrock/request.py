"""Canonical (OpenAI Chat Completions) request -> Bedrock `ConverseRequest` body.

Shapes: botocore `data/bedrock-runtime/2023-09-30/service-2.json` (ConverseRequest, Message,
ContentBlock, ToolConfiguration, InferenceConfiguration, OutputConfig); mapping choices:
/work/shared/reference/providers.md §5.1 and §8.2-8.7. The model id travels in the URL path,
not the body.
"""

from __future__ import annotations

from typing import Any

import orjson

from unigate.canonical.effort import claude_fit, claude_forced_tool, thinking_budget
from unigate.canonical.limits import max_output_tokens, max_tokens_param
from unigate.canonical.tools import JSON_TOOL, refuse_reserved_tool
from unigate.canonical.turns import append_turn
from unigate.canonical.types import JSON
from unigate.errors import InvalidRequest, UnsupportedFeature
from unigate.providers.base import FRAME_FIELDS
from unigate.providers.bedrock.content import tool_use_id, user_blocks

#: OpenAI fields Converse has no place for: dropped and reported in x-unigate-dropped-params.
#: (seed and the penalties exist for some models only through additionalModelRequestFields,
#: under names that differ per model family, so they are not guessed.)
#: every canonical field `build_converse` reads; the pipeline reports the others (penalties, seed,
#: logprobs, user, metadata, ...: Converse has no field for them) as dropped
READS = FRAME_FIELDS | {"temperature", "top_p", "parallel_tool_calls"}


def build_converse(body: JSON, pid: str, model: str, structured_mode: str) -> tuple[JSON, tuple[str, ...]]:
    """(ConverseRequest body, dropped fields)."""
    n = body.get("n")
    if n is not None and n != 1:
        raise UnsupportedFeature(f"{pid}: the Converse API returns one choice per call; 'n' must be 1", param="n")
    if "audio" in (body.get("modalities") or ()):
        raise UnsupportedFeature(f"{pid}: Bedrock Converse cannot answer with audio", param="modalities")
    dropped: list[str] = []  # what is read but cannot go with this request
    if body.get("parallel_tool_calls") is False:  # Converse has no switch for it
        dropped.append("parallel_tool_calls")
    refuse_reserved_tool(body)

    system, messages, used_tools = convert_messages(body["messages"], pid)
    out: JSON = {"messages": messages}
    if system:
        out["system"] = system

    inference: JSON = {}
    max_tokens = max_output_tokens(body)
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        inference["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        inference["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)

    json_tool = _structured_output(body, out, pid, structured_mode)
    tool_config = _tool_config(body, pid, used_tools, json_tool)
    if tool_config is not None:
        out["toolConfig"] = tool_config
    _reasoning(body, model, inference, out, dropped, pid)
    if inference:
        out["inferenceConfig"] = inference
    return out, tuple(dropped)


# ---------------------------------------------------------------------------- messages


def convert_messages(msgs: list[Any], pid: str) -> tuple[list[JSON], list[JSON], list[str]]:
    """(system blocks, Converse messages, names of tools used in the history).

    system/developer turns are hoisted to the top-level `system`; `tool` turns become user
    `toolResult` blocks. Converse rejects two turns of the same role in a row ("A conversation
    must alternate between user and assistant roles"), so consecutive same-role turns are merged,
    toolResult blocks first (Claude wants the results at the head of the turn that follows the
    calls). Turns left empty (e.g. an assistant "" placeholder) are dropped: Converse rejects
    empty content.
    """
    system: list[JSON] = []
    out: list[JSON] = []
    used: list[str] = []
    fn_ids: dict[str, str] = {}  # legacy function_call: name -> synthesised id
    for i, m in enumerate(msgs):
        role = m.get("role")
        content = m.get("content")
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            system.extend({"text": t} for t in _texts(content, pid, where) if t)
            continue
        if role == "user":
            turn, blocks = "user", user_blocks(content, pid, where)
        elif role == "assistant":
            turn, blocks = "assistant", _assistant_blocks(m, pid, where, used, fn_ids)
        elif role == "tool":
            turn = "user"
            blocks = [_tool_result(tool_use_id(str(m.get("tool_call_id"))), content, pid, where)]
        elif role == "function":  # deprecated: answered by name, paired with the last call of that name
            name = str(m.get("name") or "")
            turn = "user"
            blocks = [_tool_result(fn_ids.get(name) or tool_use_id(f"function-{name}"), content, pid, where)]
        else:
            raise InvalidRequest(f"{pid}: unsupported role {role!r}", param=f"{where}.role")
        append_turn(out, turn, blocks, first=_is_result)
    return system, out, used


def _is_result(block: JSON) -> bool:
    return "toolResult" in block


def _texts(content: Any, pid: str, where: str) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text") or ""))
        elif kind == "refusal":
            texts.append(str(part.get("refusal") or ""))
        else:
            raise UnsupportedFeature(
                f"{pid}: {where} may only hold text parts here, got {kind!r}", param=f"{where}.content[{j}]"
            )
    return texts


def _assistant_blocks(m: JSON, pid: str, where: str, used: list[str], fn_ids: dict[str, str]) -> list[JSON]:
    blocks: list[JSON] = [{"text": t} for t in _texts(m.get("content"), pid, where) if t]
    calls = list(m.get("tool_calls") or ())
    fc = m.get("function_call")
    if isinstance(fc, dict) and fc.get("name"):
        fid = tool_use_id(f"function-{fc['name']}-{where}")
        fn_ids[str(fc["name"])] = fid
        calls.append({"id": fid, "type": "function", "function": fc})
    for k, tc in enumerate(calls):
        fn = tc.get("function") if isinstance(tc, dict) else None
        if not isinstance(fn, dict) or not fn.get("name"):
            raise InvalidRequest(f"{pid}: {where}.tool_calls[{k}] needs a function name", param=f"{where}.tool_calls[{k}]")
        args = fn.get("arguments") or "{}"
        try:
            parsed = orjson.loads(args) if isinstance(args, str) else args
        except orjson.JSONDecodeError:
            raise InvalidRequest(
                f"{pid}: {where}.tool_calls[{k}].function.arguments is not valid JSON; Converse needs the "
                "tool input as a JSON object",
                param=f"{where}.tool_calls[{k}].function.arguments",
            ) from None
        if not isinstance(parsed, dict):  # toolUse.input must be an object
            parsed = {"value": parsed}
        name = str(fn["name"])
        if name not in used:
            used.append(name)
        blocks.append({"toolUse": {"toolUseId": tool_use_id(str(tc.get("id") or f"{where}-{k}")), "name": name,
                                   "input": parsed}})
    return blocks


def _tool_result(tid: str, content: Any, pid: str, where: str) -> JSON:
    if isinstance(content, list):
        inner = user_blocks(content, pid, where)  # text, image and document all fit a toolResult
    else:
        inner = [{"text": "" if content is None else str(content)}]
    return {"toolResult": {"toolUseId": tid, "content": inner or [{"text": ""}]}}


# ---------------------------------------------------------------------------- tools


def _tool_config(body: JSON, pid: str, used: list[str], json_tool: JSON | None) -> JSON | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    specs: list[JSON] = []
    for i, t in enumerate(tools):
        if t.get("type") != "function":
            raise UnsupportedFeature(f"{pid}: Converse only takes function tools, not {t.get('type')!r}",
                                     param=f"tools[{i}].type")
        fn = t["function"]
        spec: JSON = {"name": fn["name"], "inputSchema": {"json": fn.get("parameters") or
                                                          {"type": "object", "properties": {}}}}
        if fn.get("description"):
            spec["description"] = fn["description"]
        # `strict` is left out: toolSpec.strict is rejected by models without strict tool use.
        specs.append({"toolSpec": spec})

    tool_choice: JSON | None = None
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        names = {(t.get("function") or {}).get("name") for t in allowed.get("tools") or ()}
        specs = [s for s in specs if s["toolSpec"]["name"] in names]
        choice = allowed.get("mode", "auto")
    if choice == "required":
        tool_choice = {"any": {}}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise InvalidRequest(f"{pid}: tool_choice.function.name is missing", param="tool_choice")
        tool_choice = {"tool": {"name": name}}
    elif choice == "none" and not used:
        specs = []  # Converse has no "none": send no tools
    # "auto" is Converse's default and not every model takes a toolChoice, so it is omitted;
    # for "none" with tool turns in the history the tools must stay (Converse needs a toolConfig
    # then, see below) and only the model's judgement keeps it from calling one.

    if json_tool is not None:
        specs.append({"toolSpec": json_tool})
        tool_choice = {"tool": {"name": JSON_TOOL}}
    # Converse rejects toolUse/toolResult blocks when toolConfig is absent [obs, reference §5.1],
    # so with no tools offered now, the ones used in the history are declared (open schema).
    if used and all(s["toolSpec"]["name"] == JSON_TOOL for s in specs):
        specs[:0] = [{"toolSpec": {"name": name, "description": "A tool used earlier in this conversation.",
                                   "inputSchema": {"json": {"type": "object"}}}} for name in used]
    if not specs:
        return None
    cfg: JSON = {"tools": specs}
    if tool_choice is not None:
        cfg["toolChoice"] = tool_choice
    return cfg


# ---------------------------------------------------------------------------- response_format


def _structured_output(body: JSON, out: JSON, pid: str, mode: str) -> JSON | None:
    """Structured output, either as Converse's native `outputConfig.textFormat` (service-2.json
    OutputConfig; the schema travels as a JSON *string*) or as a forced tool whose input schema
    is the wanted schema. The tool route works on every tool-capable model; outputConfig only
    on models with structured outputs. `mode` "auto" forces the tool unless the request has its
    own tools or the schema is not an object; "tool" / "output_config" pin one route.
    Returns the forced tool's spec, if that route was taken."""
    rf = body.get("response_format")
    if not isinstance(rf, dict) or rf.get("type") in (None, "text"):
        return None
    has_tools = bool(body.get("tools"))
    if rf.get("type") == "json_object":
        if has_tools:
            raise UnsupportedFeature(
                f"{pid}: response_format json_object cannot be combined with tools on Bedrock; "
                "use a json_schema response_format instead", param="response_format")
        return {"name": JSON_TOOL, "description": "Give the answer as a JSON object.",
                "inputSchema": {"json": {"type": "object"}}}
    js = rf.get("json_schema") or {}
    schema = js.get("schema") or {"type": "object"}
    is_object = schema.get("type") == "object" or ("type" not in schema and "properties" in schema)
    use_tool = mode == "tool" or (mode != "output_config" and not has_tools and is_object)
    if use_tool:
        if has_tools:
            raise UnsupportedFeature(f"{pid}: a json_schema answer is forced through a tool here, which cannot be "
                                     "combined with the request's own tools", param="response_format")
        if not is_object:
            raise UnsupportedFeature(f"{pid}: the json_schema must describe an object", param="response_format")
        desc = "Give the answer in this structure."
        if js.get("name"):
            desc = f"Give the answer as `{js['name']}`." + (f" {js['description']}" if js.get("description") else "")
        return {"name": JSON_TOOL, "description": desc, "inputSchema": {"json": schema}}
    definition: JSON = {"schema": orjson.dumps(schema).decode()}
    if js.get("name"):
        definition["name"] = js["name"]
    if js.get("description"):
        definition["description"] = js["description"]
    out["outputConfig"] = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": definition}}}
    return None


# ---------------------------------------------------------------------------- reasoning


def _reasoning(body: JSON, model: str, inference: JSON, out: JSON, dropped: list[str], pid: str) -> None:
    """reasoning_effort -> Claude extended thinking through additionalModelRequestFields (the
    Converse docs' own example), with the budgets of canonical.effort (the same as on the
    Anthropic dialect); other model families take model-specific fields, so it is dropped for
    them. Thinking needs maxTokens > budget and no temperature/top_p/forced tool."""
    budget = thinking_budget("claude", body)
    if budget is None:
        return
    if "anthropic.claude" not in model or budget == 0:
        if budget != 0:
            dropped.append("reasoning_effort")
        return
    choice = (out.get("toolConfig") or {}).get("toolChoice") or {}
    if "any" in choice or "tool" in choice:
        forced_json = choice.get("tool") == {"name": JSON_TOOL}
        raise claude_forced_tool(pid, "response_format" if forced_json else "tool_choice")
    budget, inference["maxTokens"] = claude_fit(budget, inference.get("maxTokens"), who=pid,
                                                param=max_tokens_param(body))
    for k, name in (("temperature", "temperature"), ("topP", "top_p")):
        if inference.pop(k, None) is not None:
            dropped.append(name)
    out["additionalModelRequestFields"] = {"thinking": {"type": "enabled", "budget_tokens": budget}}
