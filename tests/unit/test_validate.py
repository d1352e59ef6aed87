"""Request validation reports the body's first bad parameter, whatever order it checks them in."""

from __future__ import annotations

import pytest

from unigate.errors import InvalidRequest
from unigate.surfaces.validate import validate_chat

MSGS = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("first, second", [("temperature", "top_p"), ("top_p", "temperature"),
                                           ("n", "max_tokens"), ("max_tokens", "n"), ("user", "stream"), ("stream", "user")])
def test_the_first_bad_parameter_in_the_body_is_named(first: str, second: str) -> None:
    bad = {"temperature": 9, "top_p": "x", "n": 0, "max_tokens": -1, "user": 5, "stream": "yes"}
    body = {"model": "m", "messages": MSGS, first: bad[first], second: bad[second]}
    with pytest.raises(InvalidRequest) as e:
        validate_chat(body)
    assert e.value.param == first


def test_good_optional_parameters_and_nulls_pass() -> None:
    validate_chat({"model": "m", "messages": MSGS, "temperature": 0.5, "top_p": 1, "n": 1, "max_tokens": 10,
                   "user": "u", "stream": False, "seed": None, "tools": None})


@pytest.mark.parametrize("messages, param", [
    (["hi"], "messages[0]"),
    ([{"role": ["user"], "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}], "messages[1].tool_call_id"),
    ([{"role": "user"}], "messages[0].content"),
])
def test_messages_off_the_fast_path_are_still_checked(messages: list[object], param: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        validate_chat({"model": "m", "messages": messages})
    assert e.value.param == param
