from __future__ import annotations

import orjson
import pytest

from unigate.accounting.ledger import UsageRecord
from unigate.providers.sse import SSEDecoder
from unigate.streams import USAGE_MARK, handle_usage


def events_of(data: bytes, sizes: list[int]) -> list[tuple[str, str]]:
    d = SSEDecoder()
    out = []
    i = k = 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        out += d.feed(data[i : i + n])
        i, k = i + n, k + 1
    out += d.close()
    return [(e.event, e.data) for e in out]


@pytest.mark.parametrize("sizes", [[1], [2], [3, 7], [1000]])
def test_decoder_handles_splits_crlf_comments_and_multiline(sizes: list[int]) -> None:
    raw = b": ping\r\n\r\nevent: a\r\ndata: 1\r\n\r\ndata: x\ndata: y\n\nevent: b\rdata:no-space\r\r"
    assert events_of(raw, sizes) == [("a", "1"), ("message", "x\ny"), ("b", "no-space")]


def test_decoder_flushes_an_unterminated_last_event() -> None:
    assert events_of(b"data: {}\n", [4]) == [("message", "{}")]


def _ev(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _handle_usage(block: bytes, want: bool, rec: UsageRecord) -> bytes:
    return handle_usage(block, block.rfind(USAGE_MARK), want, rec)


USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 2}}


def test_usage_only_event_is_dropped_unless_asked_and_recorded_either_way() -> None:
    block = _ev({"choices": [{"delta": {"content": "a"}}], "usage": None}) + _ev({"choices": [], "usage": USAGE}) + b"data: [DONE]\n\n"
    for want in (False, True):
        rec = UsageRecord(request_id="r", endpoint="chat", model="m")
        out = _handle_usage(block, want, rec)
        assert rec.usage_known and rec.prompt_tokens == 3 and rec.completion_tokens == 4 and rec.cached_tokens == 2
        assert (b'"choices":[]' in out) is want
        assert out.startswith(b'data: {"choices":[{"delta"') and out.endswith(b"data: [DONE]\n\n")


def test_usage_on_a_content_chunk_is_kept() -> None:
    block = _ev({"choices": [{"delta": {"content": "z"}, "finish_reason": "stop"}], "usage": USAGE})
    rec = UsageRecord(request_id="r", endpoint="chat", model="m")
    assert _handle_usage(block, False, rec) == block and rec.completion_tokens == 4


def test_the_last_cumulative_usage_is_the_calls() -> None:
    early = {**USAGE, "completion_tokens": 1}
    block = (_ev({"choices": [{"delta": {"content": "a"}}], "usage": early})
             + _ev({"choices": [{"delta": {"content": "b"}}], "usage": USAGE}) + b"data: [DONE]\n\n")
    rec = UsageRecord(request_id="r", endpoint="chat", model="m")
    assert _handle_usage(block, False, rec) == block and rec.completion_tokens == 4


def test_an_unreadable_usage_event_is_relayed_untouched() -> None:
    block = b'data: {"choices": [], "usage":{"prompt_tokens": 3, oops\n\ndata: [DONE]\n\n'
    rec = UsageRecord(request_id="r", endpoint="chat", model="m")
    assert _handle_usage(block, False, rec) == block and not rec.usage_known
