"""A fake Bedrock Runtime speaking the real Converse / ConverseStream wire format:

- routes `POST /model/{modelId}/converse` and `/converse-stream` on the RAW request path (the
  model id arrives percent-encoded, `…-v1%3A0`) and records that raw path;
- VERIFIES every SigV4 signature by recomputing it with botocore for the secret it knows for
  the access key id, and answers 403 (InvalidSignatureException / UnrecognizedClientException,
  as AWS does) on a mismatch;
- streams REAL binary event-stream frames (prelude CRC32 and message CRC32), with the `p`
  padding field real payloads carry, written in odd-sized pieces so frames straddle TCP reads.

Behaviour is chosen by the model id (`test.<scenario>-v1:0`; any other id answers normally):

    anything                "Hello from <modelId>!"; a forced tool (toolChoice.tool) answers with
                            `structured_input`; an outputConfig json_schema answers that as text
    test.tools-v1:0         "Let me check." + toolUse get_weather({"city": "Paris"}), stopReason tool_use
    test.reasoning-v1:0     reasoningContent "Thinking it over." + text "42"
    test.cache-v1:0         usage with cacheReadInputTokens / cacheWriteInputTokens
    test.stop-<reason>-v1:0 that stopReason
    test.error-<Code>-v1:0  HTTP error with x-amzn-ErrorType <Code> and its service-2.json status
    test.midstream-<member>-v1:0  two text deltas, then an exception frame of that member
    test.drop-v1:0          stream cut off after two frames (no messageStop)
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fakes.server import FakeUpstream, write_in_pieces

USAGE = {"inputTokens": 12, "outputTokens": 5, "totalTokens": 17}

#: service-2.json error statuses
ERROR_STATUS = {"ValidationException": 400, "AccessDeniedException": 403, "ResourceNotFoundException": 404,
                "ModelTimeoutException": 408, "ModelErrorException": 424, "ThrottlingException": 429,
                "ModelNotReadyException": 429, "InternalServerException": 500, "ServiceUnavailableException": 503,
                "ServiceQuotaExceededException": 400}

_PATH = re.compile(r"/model/([^/?]+)/(converse|converse-stream|count-tokens)")
#: what CountTokens' ConverseTokensRequest takes (service-2.json)
_COUNT_FIELDS = {"messages", "system", "toolConfig", "additionalModelRequestFields"}
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})")


# ---------------------------------------------------------------------------- event-stream encoding


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total length, headers length, CRC32 of those 8
    bytes), headers (name_len u8, name, type 7 = string, value_len u16, value), payload, and a
    CRC32 of everything before it. All integers big-endian."""
    hb = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        hb += struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    total = 12 + len(hb) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hb))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + hb + payload
    return message + struct.pack(">I", zlib.crc32(message) & 0xFFFFFFFF)


_pad_n = 0


def event(kind: str, payload: dict[str, Any]) -> bytes:
    global _pad_n
    _pad_n += 1
    body = {**payload, "p": "abcdefghijklmnopqrstuvwxyzABCDEF"[: 1 + _pad_n % 30]}  # real streams pad events
    return frame({":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
                 orjson.dumps(body))


def exception_frame(member: str, message: str) -> bytes:
    return frame({":exception-type": member, ":content-type": "application/json", ":message-type": "exception"},
                 orjson.dumps({"message": message}))


# ---------------------------------------------------------------------------- the fake


@dataclass
class FakeBedrock(FakeUpstream):
    credentials: dict[str, str] = field(default_factory=lambda: {"AKIDTEST": "secret"})
    region: str = "us-west-2"
    #: raw request paths as received (still percent-encoded)
    raw_paths: list[str] = field(default_factory=list)
    #: (access key id, signature valid?) per request
    signature_checks: list[tuple[str, bool]] = field(default_factory=list)
    structured_input: dict[str, Any] = field(default_factory=lambda: {"city": "Paris", "temp_c": 21})
    piece_sizes: list[int] = field(default_factory=lambda: [5, 17, 3, 64, 1, 250])

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.raw_paths.append(request.raw_path)
        denied = self.check_signature(request, body)
        if denied is not None:
            return denied
        m = _PATH.fullmatch(request.raw_path)
        if m is None:
            return _error("UnknownOperationException", "Unknown operation", 404)
        model, stream = unquote(m[1]), m[2] == "converse-stream"
        req = orjson.loads(body)
        if m[2] == "count-tokens":
            return self.count(model, req)
        scenario = model[5:].rsplit("-v1:0", 1)[0] if model.startswith("test.") else ""
        if scenario.startswith("error-"):
            code = scenario[6:]
            return _error(code, f"fake {code}", ERROR_STATUS.get(code, 500))
        if not stream:
            return web.json_response(self.answer(model, scenario, req), headers={"x-amzn-RequestId": "req-1"})
        resp = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream",
                                           "x-amzn-RequestId": "req-1"})
        await resp.prepare(request)
        data = b"".join(self.events(model, scenario, req))
        await write_in_pieces(resp, data, self.piece_sizes, delay=0.001)
        if scenario == "drop":
            request.transport.close()  # type: ignore[union-attr]
            return resp
        await resp.write_eof()
        return resp

    def count(self, model: str, req: dict[str, Any]) -> web.Response:
        """CountTokens, Converse form. Like the real API it counts Claude models by their model
        id only (Nova and inference-profile ids such as `us.anthropic...` get a
        ValidationException). The count is made up but exact to predict: a token per word of the
        text blocks (system included) and 10 per tool."""
        inner = req.get("input")
        if not isinstance(inner, dict) or set(inner) != {"converse"} or set(inner["converse"]) - _COUNT_FIELDS:
            return _error("ValidationException", "input must be {converse: {messages, system, toolConfig, "
                          "additionalModelRequestFields}}", 400)
        if not model.startswith("anthropic."):
            return _error("ValidationException", "The provided model doesn't support counting tokens.", 400)
        conv = inner["converse"]
        blocks = [b for msg in conv.get("messages", []) for b in msg.get("content", [])] + conv.get("system", [])
        words = sum(len(b["text"].split()) for b in blocks if "text" in b)
        tools = len((conv.get("toolConfig") or {}).get("tools", []))
        return web.json_response({"inputTokens": words + 10 * tools})

    # ------------------------------------------------------------------ SigV4 check

    def check_signature(self, request: web.Request, body: bytes) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        m = _AUTH.fullmatch(auth)
        if m is None:
            return _error("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
        akid, day, region, service, signed, signature = m.groups()
        secret = self.credentials.get(akid)
        if secret is None:
            self.signature_checks.append((akid, False))
            return _error("UnrecognizedClientException", "The security token included in the request is invalid.", 403)
        amz_date = request.headers.get("X-Amz-Date", "")
        names = signed.split(";")
        if (service != "bedrock" or region != self.region or amz_date[:8] != day
                or not {"host", "x-amz-date"} <= set(names) or any(n not in request.headers for n in names)):
            self.signature_checks.append((akid, False))
            return _error("InvalidSignatureException", f"Credential should be scoped to {self.region}/bedrock "
                          "and sign host and x-amz-date.", 403)
        # Recompute with botocore over exactly what arrived: the raw (still encoded) path, the
        # signed headers' values, the body bytes, the request's own timestamp.
        aws = AWSRequest(method=request.method, url=f"http://{request.host}{request.raw_path}",
                         headers={n: request.headers[n] for n in names}, data=body)
        aws.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(akid, secret, request.headers.get("X-Amz-Security-Token")), service, region)
        canonical = signer.canonical_request(aws)
        expected = signer.signature(signer.string_to_sign(aws, canonical), aws)
        ok = expected == signature
        self.signature_checks.append((akid, ok))
        if not ok:
            return _error("InvalidSignatureException",
                          "The request signature we calculated does not match the signature you provided. Check "
                          "your AWS Secret Access Key and signing method. Consult the service documentation for "
                          "details.", 403)
        return None

    # ------------------------------------------------------------------ answers

    def blocks(self, model: str, scenario: str, req: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """The answer's content blocks and stopReason."""
        choice = ((req.get("toolConfig") or {}).get("toolChoice") or {}).get("tool")
        if choice:
            return [{"toolUse": {"toolUseId": "tooluse_forced01", "name": choice["name"],
                                 "input": self.structured_input}}], "tool_use"
        if req.get("outputConfig"):
            return [{"text": orjson.dumps(self.structured_input).decode()}], "end_turn"
        if scenario == "tools":
            return [{"text": "Let me check."},
                    {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "get_weather",
                                 "input": {"city": "Paris"}}}], "tool_use"
        if scenario == "reasoning":
            return [{"reasoningContent": {"reasoningText": {"text": "Thinking it over.", "signature": "sig"}}},
                    {"text": "42"}], "end_turn"
        stop = scenario[5:] if scenario.startswith("stop-") else "end_turn"
        return [{"text": f"Hello from {model}!"}], stop

    def usage(self, scenario: str) -> dict[str, Any]:
        if scenario == "cache":
            return {"inputTokens": 4, "outputTokens": 5, "totalTokens": 1109, "cacheReadInputTokens": 1000,
                    "cacheWriteInputTokens": 100}
        return dict(USAGE)

    def answer(self, model: str, scenario: str, req: dict[str, Any]) -> dict[str, Any]:
        blocks, stop = self.blocks(model, scenario, req)
        return {"output": {"message": {"role": "assistant", "content": blocks}}, "stopReason": stop,
                "usage": self.usage(scenario), "metrics": {"latencyMs": 12}}

    def events(self, model: str, scenario: str, req: dict[str, Any]) -> list[bytes]:
        evs = [event("messageStart", {"role": "assistant"})]
        if scenario.startswith("midstream-"):
            evs += [event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
                    event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo"}}),
                    exception_frame(scenario[10:], "fake stream failure")]
            return evs
        blocks, stop = self.blocks(model, scenario, req)
        for i, b in enumerate(blocks):
            if "text" in b:  # text blocks get no start event; the first delta opens them
                for piece in _split(b["text"], 3):
                    evs.append(event("contentBlockDelta", {"contentBlockIndex": i, "delta": {"text": piece}}))
            elif "toolUse" in b:
                tu = b["toolUse"]
                evs.append(event("contentBlockStart", {"contentBlockIndex": i, "start": {
                    "toolUse": {"toolUseId": tu["toolUseId"], "name": tu["name"]}}}))
                for frag in _split(orjson.dumps(tu["input"]).decode(), 4):
                    evs.append(event("contentBlockDelta", {"contentBlockIndex": i, "delta": {"toolUse": {"input": frag}}}))
            elif "reasoningContent" in b:
                rt = b["reasoningContent"]["reasoningText"]
                evs.append(event("contentBlockDelta", {"contentBlockIndex": i,
                                                       "delta": {"reasoningContent": {"text": rt["text"]}}}))
                evs.append(event("contentBlockDelta", {"contentBlockIndex": i,
                                                       "delta": {"reasoningContent": {"signature": rt["signature"]}}}))
            evs.append(event("contentBlockStop", {"contentBlockIndex": i}))
        if scenario == "drop":
            return evs[:2]
        evs.append(event("messageStop", {"stopReason": stop}))
        evs.append(event("metadata", {"usage": self.usage(scenario), "metrics": {"latencyMs": 12}}))
        return evs


def _split(s: str, parts: int) -> list[str]:
    step = max(1, -(-len(s) // parts))
    return [s[i : i + step] for i in range(0, len(s), step)]


def _error(code: str, message: str, status: int) -> web.Response:
    # AWS puts the code in x-amzn-ErrorType with a namespace suffix after ':' (botocore parsers.py)
    return web.json_response({"message": message}, status=status, headers={
        "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.coral.service/",
        "x-amzn-RequestId": "req-err"})
