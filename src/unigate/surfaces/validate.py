"""Validation of OpenAI-surface request bodies: parse once, check what the gateway and any
upstream rely on, and answer bad input with a 400 that names the parameter."""

from __future__ import annotations

from typing import Any

import orjson

from unigate.canonical.effort import EFFORTS
from unigate.canonical.types import JSON
from unigate.errors import InvalidRequest

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_NEEDS_CONTENT = frozenset({"user", "system", "developer", "tool"})


def parse_json_object(raw: bytes, max_depth: int = 64) -> JSON:
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"We could not parse the JSON body of your request: {e}") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object, got {_tname(body)}.")
    # orjson reads 1024 levels but writes only 255, and a translator adds a few: refuse what could
    # not be forwarded. A body with fewer brackets than the limit cannot be that deep (two C
    # counts); only the rest is walked.
    if raw.count(b"[") + raw.count(b"{") > max_depth and _deeper_than(body, max_depth):
        raise InvalidRequest(f"The request body nests JSON more than {max_depth} levels deep.", code="invalid_value")
    return body


def _deeper_than(obj: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if type(node) is dict else node
        stack.extend((c, depth + 1) for c in children if type(c) is dict or type(c) is list)
    return False


def _tname(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(v), type(v).__name__
    )


def _bad_type(param: str, expected: str, v: Any) -> InvalidRequest:
    return InvalidRequest(f"Invalid type for '{param}': expected {expected}, but got {_tname(v)}.", param=param, code="invalid_type")


def _is_int(v: Any) -> bool:
    return type(v) is int


def require_model(body: JSON) -> str:
    model = body.get("model")
    if model is None:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise _bad_type("model", "a non-empty string", model)
    return model


def _check_optional(body: JSON) -> None:
    # only the keys the body has (a C-level set intersection): most requests set two or three
    for name in _OPTIONAL_KEYS.intersection(body):
        if _optional_error(name, body[name]) is not None:
            # a set has no stable order: name the body's first bad parameter, as the body orders them
            for first in body:
                if first in _OPTIONAL_KEYS:
                    err = _optional_error(first, body[first])
                    if err is not None:
                        raise err


def _optional_error(name: str, v: Any) -> InvalidRequest | None:
    if v is None:
        return None
    types, expected, rng = _OPTIONAL[name]
    if type(v) not in types:  # JSON gives exact types (and bool is not an int here)
        return _bad_type(name, expected, v)
    if rng is not None and not (rng[0] <= v <= rng[1]):
        return InvalidRequest(
            f"Invalid value for '{name}': {v} is outside the range [{rng[0]}, {rng[1]}].",
            param=name,
            code="invalid_value",
        )
    return None


_BOOL, _INT, _NUM = frozenset({bool}), frozenset({int}), frozenset({int, float})
_STR, _LIST, _DICT = frozenset({str}), frozenset({list}), frozenset({dict})

#: param -> (the JSON types it may have, what is expected, (min, max) or None)
_OPTIONAL: dict[str, tuple[frozenset[type], str, tuple[float, float] | None]] = {
    "stream": (_BOOL, "a boolean", None),
    "n": (_INT, "an integer", (1, 128)),
    "max_tokens": (_INT, "an integer", (0, 10_000_000)),
    "max_completion_tokens": (_INT, "an integer", (0, 10_000_000)),
    "temperature": (_NUM, "a number", (0, 2)),
    "top_p": (_NUM, "a number", (0, 1)),
    "presence_penalty": (_NUM, "a number", (-2, 2)),
    "frequency_penalty": (_NUM, "a number", (-2, 2)),
    "seed": (_INT, "an integer", None),
    "logprobs": (_BOOL, "a boolean", None),
    "top_logprobs": (_INT, "an integer", (0, 20)),
    "user": (_STR, "a string", None),
    "tools": (_LIST, "an array", None),
    "stream_options": (_DICT, "an object", None),
    "response_format": (_DICT, "an object", None),
    "logit_bias": (_DICT, "an object", None),
    "metadata": (_DICT, "an object", None),
    "parallel_tool_calls": (_BOOL, "a boolean", None),
}
_OPTIONAL_KEYS = frozenset(_OPTIONAL)
#: roles whose message needs nothing beyond a string `content` (the usual chat message)
_PLAIN_ROLES = frozenset({"system", "developer", "user", "assistant"})


def validate_chat(body: JSON) -> None:
    require_model(body)
    msgs = body.get("messages")
    if msgs is None:
        raise InvalidRequest("Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter")
    if not isinstance(msgs, list):
        raise _bad_type("messages", "an array", msgs)
    if not msgs:
        raise InvalidRequest("Invalid 'messages': empty array. Expected an array with minimum length 1.", param="messages", code="empty_array")
    # the usual messages ({"role", "content": str}, nothing else) pass here; anything else (a
    # non-object, an unhashable role, parts, tool calls, a name) gets the detailed walk below,
    # which names what is wrong
    plain = True
    try:
        for m in msgs:
            if len(m) != 2 or m.get("role") not in _PLAIN_ROLES or type(m.get("content")) is not str:
                plain = False
                break
    except (AttributeError, TypeError):
        plain = False
    for i, m in enumerate(() if plain else msgs):
        if type(m) is not dict:
            raise _bad_type(f"messages[{i}]", "an object", m)
        role = m.get("role")
        if type(role) is not str or role not in ROLES:
            p = f"messages[{i}]"
            if role is None:
                raise InvalidRequest(f"Missing required parameter: '{p}.role'.", param=f"{p}.role", code="missing_required_parameter")
            raise InvalidRequest(
                f"Invalid value for '{p}.role': {role!r}. Supported values are: {', '.join(sorted(ROLES))}.",
                param=f"{p}.role",
                code="invalid_value",
            )
        content = m.get("content")
        if content is None:
            if role in _NEEDS_CONTENT:
                raise InvalidRequest(f"Missing required parameter: 'messages[{i}].content'.", param=f"messages[{i}].content",
                                     code="missing_required_parameter")
        elif type(content) is list:
            _check_parts(content, f"messages[{i}].content")
        elif type(content) is not str:
            raise _bad_type(f"messages[{i}].content", "a string or an array of content parts", content)
        if role == "tool" and not isinstance(m.get("tool_call_id"), str):
            raise InvalidRequest(f"Missing required parameter: 'messages[{i}].tool_call_id'.",
                                 param=f"messages[{i}].tool_call_id", code="missing_required_parameter")
        _check_message_fields(m, i)
    _check_optional(body)
    _check_stop(body.get("stop"))
    for i, t in enumerate(body.get("tools") or ()):
        if not isinstance(t, dict) or not isinstance(t.get("type"), str):
            raise InvalidRequest(f"Invalid 'tools[{i}]': expected an object with a 'type'.", param=f"tools[{i}]")
        if t["type"] == "function":
            fn = t.get("function")
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise InvalidRequest(f"Missing required parameter: 'tools[{i}].function.name'.", param=f"tools[{i}].function.name", code="missing_required_parameter")
            for key, kind, expected in (("parameters", dict, "an object"), ("description", str, "a string"),
                                        ("strict", bool, "a boolean")):
                v = fn.get(key)
                if v is not None and type(v) is not kind:
                    raise _bad_type(f"tools[{i}].function.{key}", expected, v)
    _check_tool_choice(body.get("tool_choice"))
    _check_functions(body)
    effort = body.get("reasoning_effort")
    if effort is not None and (type(effort) is not str or effort not in REASONING_EFFORTS):
        raise InvalidRequest(f"Invalid value for 'reasoning_effort': {effort!r}. Supported values are: "
                             f"{', '.join(sorted(REASONING_EFFORTS))}.", param="reasoning_effort", code="invalid_value")
    opts = body.get("stream_options")
    if opts is not None and opts.get("include_usage") is not None and type(opts["include_usage"]) is not bool:
        raise _bad_type("stream_options.include_usage", "a boolean", opts["include_usage"])
    rf = body.get("response_format")
    if rf is not None and rf.get("type") not in ("text", "json_object", "json_schema"):
        raise InvalidRequest(
            "Invalid 'response_format.type': expected 'text', 'json_object' or 'json_schema'.",
            param="response_format.type",
            code="invalid_value",
        )
    if rf is not None and rf.get("type") == "json_schema" and not isinstance(rf.get("json_schema"), dict):
        raise InvalidRequest("Missing required parameter: 'response_format.json_schema'.", param="response_format.json_schema", code="missing_required_parameter")
    if rf is not None and rf.get("type") == "json_schema":
        schema = rf["json_schema"].get("schema")
        if schema is not None and type(schema) is not dict:
            raise _bad_type("response_format.json_schema.schema", "an object", schema)


def _check_stop(stop: Any) -> None:
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise _bad_type("stop", "a string or an array of strings", stop)
    if isinstance(stop, list) and len(stop) > 4:
        raise InvalidRequest("Invalid 'stop': at most 4 stop sequences are allowed.", param="stop", code="invalid_value")


REASONING_EFFORTS = frozenset(EFFORTS)  # the one list (canonical/effort.py)
#: content part type -> the field it must carry and that field's JSON types
_PART_FIELDS: dict[str, tuple[str, tuple[type, ...], str]] = {
    "text": ("text", (str,), "a string"),
    "image_url": ("image_url", (str, dict), "an object with a 'url'"),
    "input_audio": ("input_audio", (dict,), "an object"),
    "file": ("file", (dict,), "an object"),
    "refusal": ("refusal", (str,), "a string"),
}


def _check_parts(parts: list[Any], where: str) -> None:
    """Every translator reads parts as objects with a string `type` and that type's field."""
    for j, p in enumerate(parts):
        if type(p) is not dict:
            raise _bad_type(f"{where}[{j}]", "an object", p)
        kind = p.get("type")
        if type(kind) is not str:
            raise _bad_type(f"{where}[{j}].type", "a string", kind)
        spec = _PART_FIELDS.get(kind)
        if spec is None:
            continue  # a part type some upstream knows; the adapter refuses it if it cannot take it
        field, types, expected = spec
        v = p.get(field)
        if type(v) not in types:
            raise _bad_type(f"{where}[{j}].{field}", expected, v)
        if kind == "image_url" and type(v) is dict and type(v.get("url")) is not str:
            raise _bad_type(f"{where}[{j}].image_url.url", "a string", v.get("url"))


def _check_message_fields(m: JSON, i: int) -> None:
    """The fields of a message beyond role and content that translators read."""
    for key in ("name", "tool_call_id", "refusal", "reasoning_content"):
        v = m.get(key)
        if v is not None and type(v) is not str:
            raise _bad_type(f"messages[{i}].{key}", "a string", v)
    fc = m.get("function_call")  # the deprecated single-call form
    if fc is not None and (type(fc) is not dict or type(fc.get("name")) is not str
                           or type(fc.get("arguments", "")) is not str):
        raise _bad_type(f"messages[{i}].function_call", "an object with a string 'name' and 'arguments'", fc)
    calls = m.get("tool_calls")
    if calls is None:
        return
    if type(calls) is not list:
        raise _bad_type(f"messages[{i}].tool_calls", "an array", calls)
    for j, tc in enumerate(calls):
        p = f"messages[{i}].tool_calls[{j}]"
        if type(tc) is not dict:
            raise _bad_type(p, "an object", tc)
        if tc.get("id") is not None and type(tc["id"]) is not str:
            raise _bad_type(f"{p}.id", "a string", tc["id"])
        fn = tc.get("function")
        if type(fn) is not dict:
            raise _bad_type(f"{p}.function", "an object", fn)
        if type(fn.get("name")) is not str:
            raise _bad_type(f"{p}.function.name", "a string", fn.get("name"))
        if fn.get("arguments") is not None and type(fn["arguments"]) is not str:
            raise _bad_type(f"{p}.function.arguments", "a string (JSON text)", fn["arguments"])


def _check_functions(body: JSON) -> None:
    """The deprecated forms of tools and tool_choice, which translators still read."""
    fns = body.get("functions")
    if fns is not None:
        if type(fns) is not list:
            raise _bad_type("functions", "an array", fns)
        for i, fn in enumerate(fns):
            if type(fn) is not dict or type(fn.get("name")) is not str:
                raise InvalidRequest(f"Missing required parameter: 'functions[{i}].name'.", param=f"functions[{i}].name",
                                     code="missing_required_parameter")
            if fn.get("parameters") is not None and type(fn["parameters"]) is not dict:
                raise _bad_type(f"functions[{i}].parameters", "an object", fn["parameters"])
    fc = body.get("function_call")
    if fc is not None and not (type(fc) is str or (type(fc) is dict and type(fc.get("name")) is str)):
        raise _bad_type("function_call", "'none', 'auto' or an object with a 'name'", fc)


def _check_tool_choice(tc: Any) -> None:
    if tc is None:
        return
    if type(tc) is str:
        if tc not in ("none", "auto", "required"):
            raise InvalidRequest(f"Invalid value for 'tool_choice': {tc!r}. Supported values are: 'none', 'auto', "
                                 "'required', or an object naming a function.", param="tool_choice", code="invalid_value")
        return
    if type(tc) is not dict or type(tc.get("type")) is not str:
        raise _bad_type("tool_choice", "a string or an object with a 'type'", tc)
    if tc["type"] == "function":
        fn = tc.get("function")
        if type(fn) is not dict or type(fn.get("name")) is not str:
            raise InvalidRequest("Missing required parameter: 'tool_choice.function.name'.",
                                 param="tool_choice.function.name", code="missing_required_parameter")


def validate_embeddings(body: JSON) -> None:
    require_model(body)
    dims = body.get("dimensions")
    if dims is not None and (type(dims) is not int or dims < 1):
        raise InvalidRequest("Invalid 'dimensions': expected a positive integer.", param="dimensions", code="invalid_value")
    inp = body.get("input")
    if inp is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    if isinstance(inp, str):
        return
    if not isinstance(inp, list) or not inp:
        raise InvalidRequest("Invalid 'input': expected a string or a non-empty array.", param="input", code="invalid_value")
    ok = (
        all(isinstance(x, str) for x in inp)
        or all(_is_int(x) for x in inp)
        or all(isinstance(x, list) and all(_is_int(y) for y in x) for x in inp)
    )
    if not ok:
        raise InvalidRequest(
            "Invalid 'input': expected a string, an array of strings, or arrays of token ids.", param="input", code="invalid_value"
        )
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise InvalidRequest("Invalid 'encoding_format': expected 'float' or 'base64'.", param="encoding_format", code="invalid_value")


def validate_completions(body: JSON) -> None:
    require_model(body)
    prompt = body.get("prompt")
    if prompt is None:
        raise InvalidRequest("Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter")
    if not isinstance(prompt, (str, list)):
        raise _bad_type("prompt", "a string or an array", prompt)
    # completions' own fields: `logprobs` here is how many per-token alternatives (0..5), not
    # chat's boolean, so it is checked here and not by the shared table
    lp = body.get("logprobs")
    if lp is not None:
        if type(lp) is not int:
            raise _bad_type("logprobs", "an integer", lp)
        if not 0 <= lp <= 5:
            raise InvalidRequest(f"Invalid value for 'logprobs': {lp} is outside the range [0, 5].", param="logprobs",
                                 code="invalid_value")
        body = {k: v for k, v in body.items() if k != "logprobs"}
    for name, kind, expected in _COMPLETIONS_FIELDS:
        v = body.get(name)
        if v is not None and type(v) is not kind:
            raise _bad_type(name, expected, v)
    _check_stop(body.get("stop"))
    _check_optional(body)


_COMPLETIONS_FIELDS = (("echo", bool, "a boolean"), ("suffix", str, "a string"), ("best_of", int, "an integer"))


def wants_usage(body: JSON) -> bool:
    opts = body.get("stream_options")
    return isinstance(opts, dict) and bool(opts.get("include_usage"))
