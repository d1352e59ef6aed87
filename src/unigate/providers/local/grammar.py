"""llama.cpp grammars (GBNF) that constrain the embedded model's output: to a JSON schema
(response_format) or to one call of a declared tool (tools.py). Built in the worker thread, where
llama_cpp is loaded, never on the event loop.

Building a grammar means converting JSON schemas to GBNF in Python, so the results are cached
(bounded LRU) by the request's schemas as bytes: agents resend the same tools every turn.

A tool-call grammar:

    root   ::= call-0 | call-1 | ...
    call-0 ::= "{\\"name\\": \\"get_weather\\", \\"arguments\\": " t0-root "}"
    t0-... ::= the rules llama.cpp's converter makes of tool 0's parameters schema

Each tool's schema is converted on its own (its `$ref`s resolve inside it, and an error names
that tool), and its rules are renamed with a `t<i>-` prefix so two tools' rules never clash
(the converter names rules after properties and `$defs`, which tools share freely).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import orjson

from unigate.errors import InvalidRequest

#: cached grammars: the distinct tool sets / schemas that agents in flight use at once.
CACHE_SIZE = 64

#: `name ::= ` at the start of a line of the converter's output (one rule per line).
_RULE_START = re.compile(r"^([A-Za-z0-9-]+) ::= ", re.MULTILINE)
#: a rule body's tokens that may hold a rule name's characters: string literals, character
#: classes and repetition bounds are matched whole so that only bare names are renamed.
_BODY_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]|\{[0-9, ]*\}|[A-Za-z0-9-]+')


def gbnf_literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


def prefixed_rules(gbnf: str, prefix: str) -> list[str]:
    """The rules of `gbnf` with every rule name (definitions and uses) prefixed by `prefix`."""
    parts = _RULE_START.split(gbnf)
    # split -> [text before the first rule, name, body, name, body, ...]
    rules = {parts[k]: parts[k + 1].rstrip("\n") for k in range(1, len(parts), 2)}

    def rename(m: re.Match[str]) -> str:
        tok = m.group(0)
        return prefix + tok if tok in rules else tok

    return [f"{prefix}{name} ::= {_BODY_TOKEN.sub(rename, body)}" for name, body in rules.items()]


def _schema_gbnf(schema: Any) -> str:
    from llama_cpp import llama_grammar

    return str(llama_grammar.json_schema_to_gbnf(orjson.dumps(schema).decode()))


def tool_gbnf(tools: list[tuple[int, str, Any]]) -> str:
    """The GBNF of one call of any of `tools` ((index in the request, name, parameters schema))."""
    from unigate.providers.local.tools import call_prefix

    calls: list[str] = []
    rules: list[str] = []
    for k, (index, name, params) in enumerate(tools):
        try:
            gbnf = _schema_gbnf(params)
        except Exception as e:  # noqa: BLE001 - any failure of the converter means this schema is unusable
            raise InvalidRequest(
                f"local: tools[{index}] ({name}): its parameters schema cannot be turned into a grammar for the "
                f"local model: {type(e).__name__}: {e}",
                param=f"tools[{index}].function.parameters",
            ) from None
        calls.append(f"call-{k}")
        rules.append(f"call-{k} ::= {gbnf_literal(call_prefix(name))} t{k}-root {gbnf_literal('}')}")
        rules.extend(prefixed_rules(gbnf, f"t{k}-"))
    return "\n".join([f"root ::= {' | '.join(calls)}", *rules])


@lru_cache(maxsize=CACHE_SIZE)
def tool_grammar(key: bytes) -> Any:
    """The compiled grammar for `ToolTurn.grammar_key()`: [[index, name, parameters], ...]."""
    from llama_cpp import llama_grammar

    tools = [(int(i), str(n), p) for i, n, p in orjson.loads(key)]
    return llama_grammar.LlamaGrammar.from_string(tool_gbnf(tools), verbose=False)


@lru_cache(maxsize=CACHE_SIZE)
def schema_grammar(key: bytes) -> Any:
    """The compiled grammar for a response_format schema given as JSON bytes (b"{}": any object)."""
    from llama_cpp import llama_grammar

    schema = orjson.loads(key)
    if not schema:
        return llama_grammar.LlamaGrammar.from_string(llama_grammar.JSON_GBNF, verbose=False)
    # Converted here, not through create_chat_completion(response_format=...): that path silently
    # falls back to "any JSON" when a schema cannot be converted (llama_chat_format.py
    # `_grammar_for_json_schema`), which would be a quiet wrong answer.
    try:
        return llama_grammar.LlamaGrammar.from_string(_schema_gbnf(schema), verbose=False)
    except Exception as e:  # noqa: BLE001 - any failure of the converter means this schema is unusable
        raise InvalidRequest(
            f"local: the JSON schema cannot be turned into a grammar for the local model: {e}",
            param="response_format.json_schema.schema",
        ) from None
