"""Function calling on the embedded model, request side: which tools a turn may call, the
system prompt that shows them to the model, and the history rendered as text turns.

A 135M-parameter model does not decide reliably *whether* to call a tool, so the decision is a
fixed, documented policy, and *how* it calls one is forced by a grammar (grammar.py): the output
is exactly `{"name": "<a tool>", "arguments": <that tool's parameters>}`.

    tool_choice "none"             text; the tools are not shown
    tool_choice {"type": "function", "function": {"name": N}}   a call of N
    tool_choice "required"         a call of any tool
    tool_choice "auto" (default)   a call of any tool, unless the last message is a tool result
                                   (role "tool"): then a text answer with the results in the prompt

So the usual round trip works: the user asks -> a tool call -> the tool's output -> a text answer.
One call per turn (parallel_tool_calls is accepted; the answer never holds more than one call).

History the model can read: SmolLM2's chat template (ChatML) knows system/user/assistant turns,
so an assistant turn with tool_calls becomes an assistant turn `Calling get_weather({"city": ...}).`
and a tool result a user turn `Result of get_weather: <the output>`. (Shown its calls as the JSON
the grammar makes it write, the model repeats that JSON instead of answering from the result.)

Nothing here imports llama_cpp; the grammar is built in the worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from unigate.canonical.types import JSON
from unigate.errors import InvalidRequest, UnsupportedFeature

#: a function declared without `parameters` takes none (OpenAI: "omitting parameters defines a
#: function with an empty parameter list").
NO_PARAMETERS: JSON = {"type": "object", "properties": {}, "additionalProperties": False}


@dataclass(frozen=True, slots=True)
class Tool:
    #: the tool's position in the request's `tools`, for error messages that name it.
    index: int
    name: str
    description: str
    parameters: JSON


@dataclass(frozen=True, slots=True)
class ToolTurn:
    """This turn must be a call of one of `tools` (the ones tool_choice allows)."""

    tools: tuple[Tool, ...]

    def grammar_key(self) -> bytes:
        """What the compiled grammar depends on (grammar.py caches by it): agents resend the same
        tools every turn, so the same bytes come back. Built in the worker thread, not on the loop."""
        return orjson.dumps([[t.index, t.name, t.parameters] for t in self.tools])


def call_prefix(name: str) -> str:
    """The text a call of `name` starts with: the grammar writes exactly this, with this spacing."""
    return '{"name": ' + orjson.dumps(name).decode() + ', "arguments": '


def function_tools(tools: list[JSON], public_id: str) -> list[Tool]:
    out: list[Tool] = []
    for i, t in enumerate(tools):
        if t.get("type") != "function":
            raise UnsupportedFeature(
                f"local: {public_id} calls function tools only; tools[{i}] has type {t.get('type')!r}.",
                param=f"tools[{i}].type",
            )
        fn = t["function"]
        params = fn.get("parameters")
        out.append(Tool(i, fn["name"], fn.get("description") or "", NO_PARAMETERS if params is None else params))
    return out


def tool_turn(body: JSON, messages: list[JSON], public_id: str) -> ToolTurn | None:
    """The tools this turn must call from, or None for a text answer (see the policy above)."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    declared = function_tools(tools, public_id)
    if isinstance(choice, dict):
        if choice.get("type") != "function":
            raise UnsupportedFeature(
                f"local: {public_id} takes tool_choice 'none', 'auto', 'required' or "
                f"{{\"type\": \"function\", \"function\": {{\"name\": ...}}}}; not type {choice.get('type')!r}.",
                param="tool_choice",
            )
        name = choice["function"]["name"]
        named = [t for t in declared if t.name == name]
        if not named:
            raise InvalidRequest(f"local: Invalid 'tool_choice': no function named {name!r} in 'tools'.",
                                 param="tool_choice.function.name", code="invalid_value")
        return ToolTurn((named[0],))
    if choice != "required" and messages and messages[-1].get("role") == "tool":
        return None
    return ToolTurn(tuple(declared))


def tools_prompt(turn: ToolTurn) -> str:
    lines = ["You can call these functions:"]
    for t in turn.tools:
        desc = f" {t.description}" if t.description else ""
        lines.append(f"- {t.name}:{desc} Arguments (JSON schema): {orjson.dumps(t.parameters).decode()}")
    lines.append('To call a function, reply with a JSON object {"name": <function name>, "arguments": '
                 "<an object with its arguments>}, taking the values from the user's message.")
    return "\n".join(lines)


def with_tools_prompt(messages: list[JSON], turn: ToolTurn) -> list[JSON]:
    """`messages` with the tools shown in the system turn (the request's own first, if it has one)."""
    prompt = tools_prompt(turn)
    if messages and messages[0]["role"] == "system":
        first = messages[0]
        text = f"{first['content']}\n\n{prompt}" if first["content"] else prompt
        return [{"role": "system", "content": text}, *messages[1:]]
    return [{"role": "system", "content": prompt}, *messages]


def call_text(name: str, arguments: Any) -> str:
    """An earlier call, for the model to read. Not the JSON the grammar makes it write: shown its
    own call JSON in the history, SmolLM2 repeats it instead of answering from the result."""
    args = arguments if isinstance(arguments, str) and arguments.strip() else "{}"
    return f"Calling {name}({args})."


def assistant_calls_text(m: JSON, content: str) -> str:
    calls = [call_text(tc["function"]["name"], tc["function"].get("arguments")) for tc in m["tool_calls"]]
    return "\n".join([content, *calls] if content else calls)


def tool_result_text(m: JSON, content: str, names: dict[str, str]) -> str:
    name = names.get(m["tool_call_id"])
    return f"Result of {name}: {content}" if name else f"Result of the call {m['tool_call_id']}: {content}"


def call_names(messages: list[Any]) -> dict[str, str]:
    """tool_call_id -> function name, from the assistant turns' tool_calls (a tool message names
    only the call it answers)."""
    names: dict[str, str] = {}
    for m in messages:
        for tc in (m.get("tool_calls") or ()) if isinstance(m, dict) else ():
            if isinstance(tc.get("id"), str):
                names[tc["id"]] = tc["function"]["name"]
    return names
