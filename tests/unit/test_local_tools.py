"""Function calling on the local model without the model: the tool_choice policy, the prompt and
history rendering, the grammar built from the tools' schemas, and the reading of the model's
call into OpenAI's tool_calls (JSON and stream), with a scripted llama in place of llama.cpp.
The real model is exercised in tests/integration/test_local_tools.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import IN_CI
from unigate.errors import InvalidRequest, UnsupportedFeature, UpstreamUnavailable
from unigate.providers.local import llama_cpp_available
from unigate.providers.local.engine import END, Job
from unigate.providers.local.generate import chat_work
from unigate.providers.local.grammar import prefixed_rules, tool_gbnf, tool_grammar
from unigate.providers.local.params import chat_params
from unigate.providers.local.tool_calls import ToolCallReader
from unigate.providers.local.tools import call_prefix, tool_turn

ID = "local/smollm2"
WEATHER: dict[str, Any] = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.",
                                      "parameters": WEATHER}},
    {"type": "function", "function": {"name": "now"}},  # no parameters: takes none
]
ASK = {"role": "user", "content": "Weather in Paris?"}
CALL = {"role": "assistant", "content": None,
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
RESULT = {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "sunny"}'}


def body(messages: list[dict[str, Any]] | None = None, **kw: Any) -> dict[str, Any]:
    return {"model": ID, "messages": messages or [ASK], "tools": TOOLS, **kw}


def needs_llama_cpp() -> None:
    if not llama_cpp_available():
        if IN_CI:
            pytest.fail("llama-cpp-python is needed to build grammars (CI must have it)", pytrace=False)
        pytest.skip("llama-cpp-python is not installed")


# ------------------------------------------------------------------------------ policy


def names(b: dict[str, Any]) -> list[str] | None:
    turn = tool_turn(b, b["messages"], ID)
    return None if turn is None else [t.name for t in turn.tools]


def test_tool_choice_policy() -> None:
    assert names(body()) == ["get_weather", "now"]  # auto: a call
    assert names(body(tool_choice="auto")) == ["get_weather", "now"]
    assert names(body([ASK, CALL, RESULT])) is None  # auto after a tool result: text
    assert names(body([ASK, CALL, RESULT], tool_choice="required")) == ["get_weather", "now"]
    assert names(body(tool_choice="none")) is None
    named = {"type": "function", "function": {"name": "now"}}
    assert names(body([ASK, CALL, RESULT], tool_choice=named)) == ["now"]
    assert names({"model": ID, "messages": [ASK]}) is None  # no tools


def test_tool_choice_errors() -> None:
    with pytest.raises(InvalidRequest) as ei:
        chat_params(body(tool_choice={"type": "function", "function": {"name": "nope"}}), ID)
    assert ei.value.param == "tool_choice.function.name" and "'nope'" in ei.value.message
    with pytest.raises(UnsupportedFeature) as ei:
        chat_params(body(tool_choice={"type": "allowed_tools", "mode": "auto", "tools": []}), ID)
    assert ei.value.param == "tool_choice"
    with pytest.raises(UnsupportedFeature) as ei:
        chat_params(body(tools=[*TOOLS, {"type": "custom", "custom": {"name": "x"}}]), ID)
    assert ei.value.param == "tools[2].type" and "function tools" in ei.value.message


# ------------------------------------------------------------------------------ prompt and history


def test_tools_are_shown_in_the_system_turn() -> None:
    p = chat_params(body(stop="}", response_format={"type": "json_object"}, temperature=0), ID)
    assert p.tools is not None and [t.name for t in p.tools.tools] == ["get_weather", "now"]
    system, user = p.messages
    assert system["role"] == "system" and user == ASK
    assert "- get_weather: Weather in a city. Arguments (JSON schema): " + json.dumps(WEATHER, separators=(",", ":")) \
        in system["content"]
    assert '- now: Arguments (JSON schema): {"type":"object","properties":{},"additionalProperties":false}' \
        in system["content"]
    # a stop sequence could cut the call's JSON, and response_format is for text answers
    assert "stop" not in p.kwargs and p.json_schema is None
    # the request's own system message comes first, the tools after it
    p = chat_params(body([{"role": "developer", "content": "Be brief."}, ASK]), ID)
    assert p.messages[0]["content"].startswith("Be brief.\n\nYou can call these functions:")
    assert len(p.messages) == 2


def test_history_is_rendered_as_text_turns() -> None:
    p = chat_params(body([ASK, CALL, RESULT], stop="x"), ID)
    assert p.tools is None and p.kwargs["stop"] == ["x"]  # a text turn: no tools shown, stop applies
    assert p.messages == [
        ASK,
        {"role": "assistant", "content": 'Calling get_weather({"city": "Paris"}).'},
        {"role": "user", "content": 'Result of get_weather: {"sky": "sunny"}'},
    ]
    # text beside the calls, several calls, empty arguments, a result whose call is unknown
    calls = {"role": "assistant", "content": "Let me look.",
             "tool_calls": [{"id": "a", "type": "function", "function": {"name": "now", "arguments": ""}},
                            {"id": "b", "type": "function", "function": {"name": "get_weather",
                                                                         "arguments": '{"city": "Rome"}'}}]}
    orphan = {"role": "tool", "tool_call_id": "zzz", "content": [{"type": "text", "text": "42"}]}
    p = chat_params(body([ASK, calls, orphan], tool_choice="none"), ID)
    assert p.messages[1]["content"] == 'Let me look.\nCalling now({}).\nCalling get_weather({"city": "Rome"}).'
    assert p.messages[2] == {"role": "user", "content": "Result of the call zzz: 42"}


def test_deprecated_function_forms_are_still_refused() -> None:
    with pytest.raises(UnsupportedFeature) as ei:
        chat_params(body([{"role": "function", "name": "f", "content": "r"}]), ID)
    assert ei.value.param == "messages[0].role" and "'tool'" in ei.value.message
    with pytest.raises(UnsupportedFeature) as ei:
        chat_params(body([{"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}}]),
                    ID)
    assert ei.value.param == "messages[0].function_call"


# ------------------------------------------------------------------------------ grammar


def test_rules_are_renamed_but_not_literals_or_classes() -> None:
    gbnf = 'root ::= "{" space item{1,3} "root" [a-z] "\\"item\\""\nitem ::= [^"\\\\] space\nspace ::= " "?'
    assert prefixed_rules(gbnf, "t0-") == [
        't0-root ::= "{" t0-space t0-item{1,3} "root" [a-z] "\\"item\\""',
        't0-item ::= [^"\\\\] t0-space',
        't0-space ::= " "?',
    ]


def test_tool_grammar_per_tool_rules() -> None:
    needs_llama_cpp()
    # two tools with a $defs entry of the same name and different content must not share a rule
    a = {"type": "object", "properties": {"x": {"$ref": "#/$defs/Item"}}, "required": ["x"],
         "$defs": {"Item": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}}
    b = {"type": "object", "properties": {"x": {"$ref": "#/$defs/Item"}}, "required": ["x"],
         "$defs": {"Item": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}}}
    g = tool_gbnf([(0, "a", a), (1, 'say "hi"', b)])
    lines = g.splitlines()
    assert lines[0] == "root ::= call-0 | call-1"
    assert 'call-0 ::= "{\\"name\\": \\"a\\", \\"arguments\\": " t0-root "}"' in lines
    assert 'call-1 ::= "{\\"name\\": \\"say \\\\\\"hi\\\\\\"\\", \\"arguments\\": " t1-root "}"' in lines
    assert any(line.startswith("t0-Item ::= ") and "t0-Item-n-kv" in line for line in lines)
    assert any(line.startswith("t1-Item ::= ") and "t1-Item-ok-kv" in line for line in lines)
    defined = {line.split(" ::= ")[0] for line in lines}
    used = {tok for line in lines for tok in line.split(" ::= ")[1].split() if tok[:3] in ("t0-", "t1-")}
    assert {u.rstrip("?*+)") for u in used} <= defined  # every renamed use has its rule


def test_bad_parameters_schema_names_the_tool() -> None:
    needs_llama_cpp()
    bad = [TOOLS[0], {"type": "function", "function": {"name": "f", "parameters": {"type": "wat"}}}]
    p = chat_params(body(tools=bad), ID)
    assert p.tools is not None
    with pytest.raises(InvalidRequest) as ei:
        tool_grammar(p.tools.grammar_key())
    assert ei.value.param == "tools[1].function.parameters" and "tools[1] (f)" in ei.value.message


def test_grammars_are_cached_by_the_tools() -> None:
    needs_llama_cpp()
    first = chat_params(body(), ID).tools
    again = chat_params(body(temperature=0), ID).tools  # a new request, the same tools
    assert first is not None and again is not None
    g = tool_grammar(first.grammar_key())
    hits = tool_grammar.cache_info().hits
    assert tool_grammar(again.grammar_key()) is g and tool_grammar.cache_info().hits == hits + 1
    named = chat_params(body(tool_choice={"type": "function", "function": {"name": "now"}}), ID).tools
    assert named is not None and tool_grammar(named.grammar_key()) is not g
    assert tool_grammar.cache_info().maxsize == 64


# ------------------------------------------------------------------------------ reading the call


def reader(*tool_names: str) -> ToolCallReader:
    tools = [{"type": "function", "function": {"name": n}} for n in tool_names]
    turn = tool_turn({"tools": tools}, [ASK], ID)
    assert turn is not None
    return ToolCallReader(turn)


def test_reader_streams_the_name_then_the_arguments() -> None:
    r = reader("get", "get_weather")  # one name is a prefix of the other
    args = '{ "city": "Pa }ris", "n": {"a": 1} }'
    text = call_prefix("get_weather") + args + " }"
    deltas = [d for ch in text for d in r.feed(ch)] + r.finish(complete=True)
    head, *rest = deltas
    assert head == {"index": 0, "id": r.id, "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    assert r.id.startswith("call_") and len(r.id) == 29
    assert all(set(d) == {"index", "function"} and set(d["function"]) == {"arguments"} for d in rest)
    assert "".join(d["function"]["arguments"] for d in rest) == args == r.arguments
    assert json.loads(r.arguments) == {"city": "Pa }ris", "n": {"a": 1}}
    assert r.message_call() == {"id": r.id, "type": "function", "function": {"name": "get_weather", "arguments": args}}


def test_reader_cut_short_and_off_grammar() -> None:
    r = reader("now")
    r.feed(call_prefix("now") + '{"a": {"b": 1}')
    assert r.finish(complete=False) == [{"index": 0, "function": {"arguments": "}"}}]
    assert r.arguments == '{"a": {"b": 1}'
    cut = reader("now")
    assert cut.feed('{"name": "n') == [] and cut.finish(complete=False) == [] and cut.name is None
    off = reader("now")
    off.feed("hello")
    with pytest.raises(UpstreamUnavailable):
        off.finish(complete=True)


# ------------------------------------------------------------------------------ chat_work with a scripted llama


class ScriptedLlama:
    """What chat_work uses of llama_cpp.Llama, answering with fixed text pieces."""

    def __init__(self, pieces: list[str], finish: str = "stop") -> None:
        self.pieces, self.finish = pieces, finish
        self.job: Job | None = None
        self.calls: list[dict[str, Any]] = []

    def create_chat_completion(self, **kw: Any) -> Any:
        self.calls.append(kw)
        yield {"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]}
        for p in self.pieces:
            yield {"choices": [{"delta": {"content": p}, "finish_reason": None}]}
        yield {"choices": [{"delta": {}, "finish_reason": self.finish}]}


async def run(b: dict[str, Any], llm: ScriptedLlama, *, stream: bool) -> list[Any]:
    job = Job(lambda m, j: None, asyncio.get_running_loop())
    final = chat_work(chat_params(b, ID), "smollm2", stream=stream)(llm, job)
    await asyncio.sleep(0)  # emitted items arrive through call_soon_threadsafe
    items = []
    while not job.out.empty():
        items.append(job.out.get_nowait())
    assert END not in items
    return [*items, final] if final is not None else items


CALL_TEXT = ['{"name": "get_', 'weather", "arguments": {', '"city": "Paris"', '} ', "}"]


async def test_chat_work_answers_with_the_call() -> None:
    needs_llama_cpp()
    llm = ScriptedLlama(CALL_TEXT)
    [answer] = await run(body(), llm, stream=False)
    assert "grammar" in llm.calls[0] and "stop" not in llm.calls[0]
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    msg = choice["message"]
    assert msg["content"] is None and msg["role"] == "assistant"
    [tc] = msg["tool_calls"]
    assert tc["type"] == "function" and tc["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}


async def test_chat_work_streams_the_call() -> None:
    needs_llama_cpp()
    chunks = await run(body(), ScriptedLlama(CALL_TEXT), stream=True)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": None}
    assert deltas[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    args = "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[2:-1])
    assert args == '{"city": "Paris"}'
    assert deltas[-1] == {} and finishes == [None] * (len(chunks) - 1) + ["tool_calls"]
    assert len({c["id"] for c in chunks}) == 1


async def test_chat_work_cut_by_max_tokens() -> None:
    needs_llama_cpp()
    [answer] = await run(body(), ScriptedLlama(CALL_TEXT[:3], finish="length"), stream=False)
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"'
    chunks = await run(body(), ScriptedLlama(CALL_TEXT[:1], finish="length"), stream=True)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all("tool_calls" not in c["choices"][0]["delta"] for c in chunks)  # the name was never complete


async def test_chat_work_text_turn_after_a_result() -> None:
    llm = ScriptedLlama(["It is ", "sunny."])
    [answer] = await run(body([ASK, CALL, RESULT]), llm, stream=False)
    assert "grammar" not in llm.calls[0]
    assert answer["choices"][0]["message"]["content"] == "It is sunny."
    assert answer["choices"][0]["finish_reason"] == "stop"
