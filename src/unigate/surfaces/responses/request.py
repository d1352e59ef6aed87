"""A Responses API request (`POST /v1/responses`) -> the canonical OpenAI chat body.

Wire format: the openai SDK's `types/responses/response_create_params.py` and the input item
types (`response_input_param.py`). Bad input is a 400 in OpenAI's envelope naming the field the
way the API does (`input[2].call_id`, `tools[0].type`).

    input (string | items)   -> messages: message items (input_text, input_image, output_text,
                                refusal parts), function_call items (merged into one assistant
                                message with tool_calls), function_call_output -> role "tool"
    instructions             -> a leading system message (not carried to the next turn, as the API)
    tools (function)         -> tools [{type: function, function: {...}}]; built-ins are a 400
    tool_choice              -> tool_choice
    text.format              -> response_format (json_schema, json_object; text is the default)
    max_output_tokens        -> max_completion_tokens
    reasoning.effort         -> reasoning_effort
    temperature, top_p, parallel_tool_calls, user, service_tier, prompt_cache_key,
    safety_identifier        -> the same names

`metadata`, `store`, `previous_response_id` and `include` belong to the surface (echoed on the
answer, or the state layer). `reasoning` items in the input are the model's own earlier thinking:
the chat form has no place for them, so they are left out (the visible answer and tool calls
carry the conversation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from unigate.canonical.types import JSON
from unigate.errors import InvalidRequest

#: the Responses fields the gateway reads; any other field is a 400, as OpenAI answers it
KNOWN_FIELDS = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "text", "max_output_tokens", "temperature", "top_p",
    "reasoning", "parallel_tool_calls", "metadata", "user", "stream", "stream_options", "store",
    "previous_response_id", "include", "truncation", "service_tier", "prompt_cache_key", "safety_identifier",
    "top_logprobs", "max_tool_calls", "background", "conversation", "prompt", "prompt_cache_retention",
    "prompt_cache_options", "context_management", "client_metadata",
})
#: fields of OpenAI's own serving (cache retention, context compaction, a client's own ids such
#: as Codex CLI's thread and turn in `client_metadata`) the chat form has no place for: named in
#: x-unigate-dropped-params
_NAMED_DROPPED = ("top_logprobs", "max_tool_calls", "prompt_cache_retention", "prompt_cache_options",
                  "context_management", "client_metadata")
#: fields passed to the canonical body under the same name
_SAME = ("temperature", "top_p", "user", "service_tier", "prompt_cache_key", "safety_identifier")
#: tools the API runs on OpenAI's side; a gateway in front of any model cannot run them
BUILTIN_TOOLS = frozenset({
    "web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11", "file_search",
    "computer_use", "computer_use_preview", "computer", "code_interpreter", "image_generation", "mcp", "local_shell",
    "shell", "apply_patch", "custom",
})
_ROLES = frozenset({"user", "assistant", "system", "developer"})
_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh"})
#: input item types the chat form cannot carry (the outputs of built-in tools, references to
#: items the gateway does not keep)
_UNSUPPORTED_ITEMS = frozenset({
    "item_reference", "file_search_call", "computer_call", "computer_call_output", "web_search_call",
    "image_generation_call", "code_interpreter_call", "local_shell_call", "local_shell_call_output", "mcp_list_tools",
    "mcp_approval_request", "mcp_approval_response", "mcp_call", "custom_tool_call", "custom_tool_call_output",
    "shell_call", "shell_call_output", "apply_patch_call", "apply_patch_call_output",
})


@dataclass(slots=True)
class Translation:
    body: JSON
    #: the request's fields the translation could not carry (x-unigate-dropped-params)
    dropped: list[str] = field(default_factory=list)


def bad(message: str, param: str | None, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def _type_name(v: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _expect(v: Any, kind: type | tuple[type, ...], what: str, param: str) -> Any:
    if not isinstance(v, kind):  # (the kinds asked for are never numbers: a bool is no dict, list or str)
        raise bad(f"Invalid type for '{param}': expected {what}, but got {_type_name(v)}.", param, "invalid_type")
    return v


def _number(body: JSON, name: str) -> float | int | None:
    v = body.get(name)
    if v is None:
        return None
    if type(v) not in (int, float):
        raise bad(f"Invalid type for '{name}': expected a number, but got {_type_name(v)}.", name, "invalid_type")
    return v  # type: ignore[no-any-return]


def input_items(body: JSON) -> list[JSON]:
    """The request's `input` as a list of items (a string is one user message)."""
    raw = body.get("input")
    if raw is None:
        raise bad("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    _expect(raw, list, "a string or an array of input items", "input")
    for i, item in enumerate(raw):
        _expect(item, dict, "an object", f"input[{i}]")
    return raw  # type: ignore[no-any-return]


def check_fields(body: JSON) -> None:
    for k in body:
        if k not in KNOWN_FIELDS:
            raise bad(f"Unrecognized request argument supplied: {k}", k, "unknown_parameter")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        if model is None:
            raise bad("Missing required parameter: 'model'.", "model", "missing_required_parameter")
        raise bad(f"Invalid type for 'model': expected a non-empty string, but got {_type_name(model)}.", "model",
                  "invalid_type")
    if body.get("background") is True:
        raise bad("'background' responses are not supported by this gateway: make the request and wait for it.",
                  "background", "unsupported_parameter")
    for name in ("conversation", "prompt"):
        if body.get(name) is not None:
            raise bad(f"'{name}' is not supported by this gateway: it refers to objects kept by OpenAI; send the "
                      "input itself (or previous_response_id for a response the gateway stored).", name,
                      "unsupported_parameter")
    for name in ("stream", "store", "parallel_tool_calls"):
        if body.get(name) is not None:
            _expect(body[name], bool, "a boolean", name)
    if body.get("metadata") is not None:
        meta = _expect(body["metadata"], dict, "an object", "metadata")
        if len(meta) > 16:
            raise bad("Invalid 'metadata': at most 16 key-value pairs.", "metadata")
        for k, v in meta.items():
            if not isinstance(v, str) or len(k) > 64 or len(v) > 512:
                raise bad(f"Invalid 'metadata.{k}': values are strings of at most 512 characters, keys of at most 64.",
                          f"metadata.{k}")
    prev = body.get("previous_response_id")
    if prev is not None:
        _expect(prev, str, "a string", "previous_response_id")


def to_canonical(body: JSON, history: list[JSON] | None = None) -> Translation:
    """The canonical chat body for `body`; `history` holds the items of the conversation before
    it (a stored response's input and output, for previous_response_id)."""
    check_fields(body)
    t = Translation({"model": body["model"]})
    out = t.body
    messages: list[JSON] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if isinstance(instructions, str):
            if instructions:
                messages.append({"role": "system", "content": instructions})
        else:
            # a list of input messages, as the API also takes
            _expect(instructions, list, "a string or an array of input items", "instructions")
            messages.extend(_messages(instructions, "instructions", t))
    if history:
        messages.extend(_messages(history, "previous_response_id", t))
    messages.extend(_messages(input_items(body), "input", t))
    if not messages:
        raise bad("Invalid 'input': empty array. Expected an array with minimum length 1.", "input", "empty_array")
    out["messages"] = messages
    if body.get("stream") is True:
        out["stream"] = True
    for name in _SAME:
        if body.get(name) is not None:
            out[name] = body[name]
    _number(body, "temperature")
    _number(body, "top_p")
    limit = body.get("max_output_tokens")
    if limit is not None:
        if type(limit) is not int or limit < 1:
            raise bad(f"Invalid 'max_output_tokens': expected an integer of at least 1, got {limit!r}.",
                      "max_output_tokens")
        out["max_completion_tokens"] = limit
    _reasoning(body, t)
    _text(body, t)
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        if body.get("parallel_tool_calls") is False:
            out["parallel_tool_calls"] = False
    choice = _tool_choice(body.get("tool_choice"), bool(tools))
    if choice is not None:
        out["tool_choice"] = choice
    if body.get("include"):
        _expect(body["include"], list, "an array of strings", "include")
        t.dropped.extend(f"include.{v}" for v in body["include"] if isinstance(v, str))
    if body.get("truncation") not in (None, "disabled"):
        t.dropped.append("truncation")
    for name in _NAMED_DROPPED:
        if body.get(name) is not None:
            t.dropped.append(name)
    return t


def _reasoning(body: JSON, t: Translation) -> None:
    r = body.get("reasoning")
    if r is None:
        return
    _expect(r, dict, "an object", "reasoning")
    effort = r.get("effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in _EFFORTS:
            raise bad(f"Invalid value for 'reasoning.effort': {effort!r}. Supported values are: "
                      f"{', '.join(sorted(_EFFORTS))}.", "reasoning.effort")
        t.body["reasoning_effort"] = effort
    for k in ("summary", "generate_summary"):
        if r.get(k) is not None:
            t.dropped.append(f"reasoning.{k}")


def _text(body: JSON, t: Translation) -> None:
    text = body.get("text")
    if text is None:
        return
    _expect(text, dict, "an object", "text")
    if text.get("verbosity") is not None:
        t.dropped.append("text.verbosity")
    fmt = text.get("format")
    if fmt is None:
        return
    _expect(fmt, dict, "an object", "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return
    if kind == "json_object":
        t.body["response_format"] = {"type": "json_object"}
        return
    if kind != "json_schema":
        raise bad(f"Invalid value for 'text.format.type': {kind!r}. Supported values are: 'text', 'json_object' and "
                  "'json_schema'.", "text.format.type")
    name, schema = fmt.get("name"), fmt.get("schema")
    if not isinstance(name, str) or not name:
        raise bad("Missing required parameter: 'text.format.name'.", "text.format.name", "missing_required_parameter")
    if not isinstance(schema, dict):
        raise bad("Missing required parameter: 'text.format.schema' (an object).", "text.format.schema",
                  "missing_required_parameter")
    spec: JSON = {"name": name, "schema": schema}
    for k in ("description", "strict"):
        if fmt.get(k) is not None:
            spec[k] = fmt[k]
    t.body["response_format"] = {"type": "json_schema", "json_schema": spec}


def _tools(tools: Any) -> list[JSON]:
    if tools is None:
        return []
    _expect(tools, list, "an array of tools", "tools")
    out: list[JSON] = []
    for i, tool in enumerate(tools):
        p = f"tools[{i}]"
        _expect(tool, dict, "an object", p)
        kind = tool.get("type")
        if kind != "function":
            if isinstance(kind, str) and (kind in BUILTIN_TOOLS or kind.startswith(("web_search", "computer"))):
                raise bad(f"The built-in tool {kind!r} is not supported by this gateway: it runs on OpenAI's side "
                          "and the gateway serves any model. Declare a function tool and run it yourself.",
                          f"{p}.type", "unsupported_tool")
            raise bad(f"Invalid value for '{p}.type': {kind!r}. Supported values are: 'function'.", f"{p}.type")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise bad(f"Missing required parameter: '{p}.name'.", f"{p}.name", "missing_required_parameter")
        fn: JSON = {"name": name}
        if tool.get("description") is not None:
            fn["description"] = _expect(tool["description"], str, "a string", f"{p}.description")
        params = tool.get("parameters")
        if params is not None:
            fn["parameters"] = _expect(params, dict, "an object", f"{p}.parameters")
        if tool.get("strict") is not None:
            fn["strict"] = _expect(tool["strict"], bool, "a boolean", f"{p}.strict")
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any, has_tools: bool) -> Any:
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise bad(f"Invalid value for 'tool_choice': {choice!r}. Supported values are: 'auto', 'none' and "
                      "'required'.", "tool_choice")
        return choice if has_tools else None
    _expect(choice, dict, "a string or an object", "tool_choice")
    kind = choice.get("type")
    if kind == "function":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise bad("Missing required parameter: 'tool_choice.name'.", "tool_choice.name",
                      "missing_required_parameter")
        if not has_tools:
            raise bad(f"Invalid 'tool_choice': the function {name!r} is not among the request's tools.",
                      "tool_choice")
        return {"type": "function", "function": {"name": name}}
    if isinstance(kind, str) and (kind in BUILTIN_TOOLS or kind.startswith(("web_search", "computer"))):
        raise bad(f"The built-in tool {kind!r} is not supported by this gateway.", "tool_choice.type", "unsupported_tool")
    raise bad(f"Invalid value for 'tool_choice.type': {kind!r}. Supported values are: 'function'.", "tool_choice.type")


# ---------------------------------------------------------------------------------- items


def _messages(items: list[Any], where: str, t: Translation) -> list[JSON]:
    """Input items -> chat messages. Function calls join the assistant message before them (the
    chat form keeps an answer's text and its tool calls in one message)."""
    out: list[JSON] = []
    for i, item in enumerate(items):
        p = f"{where}[{i}]"
        _expect(item, dict, "an object", p)
        kind = item.get("type")
        if kind is not None and not isinstance(kind, str):
            raise bad(f"Invalid type for '{p}.type': expected a string, but got {_type_name(kind)}.", f"{p}.type",
                      "invalid_type")
        if kind is None or kind == "message":
            msg = _message(item, p)
            if msg is not None:
                out.append(msg)
        elif kind == "function_call":
            call = _function_call(item, p)
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and not _has_tool_results_after(out):
                last.setdefault("tool_calls", []).append(call)
                if last.get("content") == "":
                    last["content"] = None
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise bad(f"Missing required parameter: '{p}.call_id'.", f"{p}.call_id", "missing_required_parameter")
            out.append({"role": "tool", "tool_call_id": call_id, "content": _output_text(item.get("output"), p)})
        elif kind == "reasoning":
            continue  # see the module's docstring
        elif kind in _UNSUPPORTED_ITEMS:
            raise bad(f"Input items of type {kind!r} are not supported by this gateway (they belong to tools "
                      "OpenAI runs, or to items it keeps).", f"{p}.type", "unsupported_value")
        else:
            raise bad(f"Invalid value for '{p}.type': {kind!r}. Supported values are: 'message', 'function_call', "
                      "'function_call_output' and 'reasoning'.", f"{p}.type")
    return out


def _has_tool_results_after(out: list[JSON]) -> bool:
    return bool(out) and out[-1]["role"] == "tool"


def _message(item: JSON, p: str) -> JSON | None:
    role = item.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        if role is None:
            raise bad(f"Missing required parameter: '{p}.role'.", f"{p}.role", "missing_required_parameter")
        raise bad(f"Invalid value for '{p}.role': {role!r}. Supported values are: 'assistant', 'developer', "
                  "'system' and 'user'.", f"{p}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if content is None:
        raise bad(f"Missing required parameter: '{p}.content'.", f"{p}.content", "missing_required_parameter")
    _expect(content, list, "a string or an array of content parts", f"{p}.content")
    if role == "assistant":
        # the model's own earlier answer: output_text (and refusal) parts, as one text
        texts: list[str] = []
        for j, part in enumerate(content):
            q = f"{p}.content[{j}]"
            _expect(part, dict, "an object", q)
            kind = part.get("type")
            if kind in ("output_text", "input_text"):
                texts.append(_expect(part.get("text"), str, "a string", f"{q}.text"))
            elif kind == "refusal":
                texts.append(_expect(part.get("refusal"), str, "a string", f"{q}.refusal"))
            else:
                raise bad(f"Invalid value for '{q}.type': {kind!r}. An assistant message holds 'output_text' and "
                          "'refusal' parts.", f"{q}.type")
        return {"role": "assistant", "content": "".join(texts)}
    parts: list[JSON] = []
    for j, part in enumerate(content):
        q = f"{p}.content[{j}]"
        _expect(part, dict, "an object", q)
        parts.append(_part(part, q))
    if role in ("system", "developer"):
        if any(x["type"] != "text" for x in parts):
            raise bad(f"Invalid '{p}.content': a {role} message holds text only.", f"{p}.content")
        return {"role": role, "content": "".join(x["text"] for x in parts)}
    if len(parts) == 1 and parts[0]["type"] == "text":
        return {"role": role, "content": parts[0]["text"]}  # the plain form every upstream takes
    return {"role": role, "content": parts}


def _part(part: JSON, q: str) -> JSON:
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": _expect(part.get("text"), str, "a string", f"{q}.text")}
    if kind == "input_image":
        url = part.get("image_url")
        if part.get("file_id") is not None and url is None:
            raise bad(f"'{q}.file_id' is not supported by this gateway (it has no files API): send the image as "
                      "image_url (https or a data: URL).", f"{q}.file_id", "unsupported_value")
        if not isinstance(url, str) or not url:
            raise bad(f"Missing required parameter: '{q}.image_url'.", f"{q}.image_url", "missing_required_parameter")
        image: JSON = {"url": url}
        detail = part.get("detail")
        if detail is not None and detail != "auto":
            if detail not in ("low", "high"):
                raise bad(f"Invalid value for '{q}.detail': {detail!r}. Supported values are: 'low', 'high' and "
                          "'auto'.", f"{q}.detail")
            image["detail"] = detail
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        raise bad(f"'{q}': input_file parts are not supported by this gateway.", f"{q}.type", "unsupported_value")
    raise bad(f"Invalid value for '{q}.type': {kind!r}. Supported values are: 'input_text', 'input_image'.",
              f"{q}.type")


def _function_call(item: JSON, p: str) -> JSON:
    call_id, name, args = item.get("call_id"), item.get("name"), item.get("arguments")
    for k, v in (("call_id", call_id), ("name", name)):
        if not isinstance(v, str) or not v:
            raise bad(f"Missing required parameter: '{p}.{k}'.", f"{p}.{k}", "missing_required_parameter")
    if not isinstance(args, str):
        raise bad(f"Invalid type for '{p}.arguments': expected a string, but got {_type_name(args)}.",
                  f"{p}.arguments", "invalid_type")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def _output_text(output: Any, p: str) -> str | list[JSON]:
    """A function_call_output's `output`: a string, or (newer API) a list of input parts."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        parts = [_part(_expect(x, dict, "an object", f"{p}.output[{j}]"), f"{p}.output[{j}]")
                 for j, x in enumerate(output)]
        if all(x["type"] == "text" for x in parts):
            return "".join(x["text"] for x in parts)
        return parts
    raise bad(f"Invalid type for '{p}.output': expected a string, but got {_type_name(output)}.", f"{p}.output",
              "invalid_type")
