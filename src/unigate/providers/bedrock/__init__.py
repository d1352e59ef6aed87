"""The AWS Bedrock dialect: the Converse / ConverseStream API, which speaks one request shape for
every model family on Bedrock (Claude, Nova, Llama, Mistral, Cohere, ...).

    POST {base}/model/{modelId}/converse          JSON answer
    POST {base}/model/{modelId}/converse-stream   application/vnd.amazon.eventstream
    POST {base}/model/{modelId}/count-tokens      CountTokens (the Anthropic surface's count_tokens)

Wire format: botocore `data/bedrock-runtime/2023-09-30/service-2.json`, `eventstream.py`,
`auth.py` (see /work/shared/reference/providers.md §5). Modules:

    request.py   canonical body -> ConverseRequest (content.py: content blocks, tool ids)
    response.py  ConverseResponse -> chat.completion
    stream.py    event-stream frames -> chat.completion.chunk
    errors.py    AWS error codes -> gateway errors
    sign.py      URL and SigV4 (botocore's signer)

Credentials are resolved when the provider is built (registry.py): the access key id is the
provider's api_key; `options` carries aws_secret_access_key, aws_session_token and region.
`options.structured_output` ("auto" | "tool" | "output_config") picks how a json_schema
response_format is obtained (see request._structured_output).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import orjson

try:  # botocore supplies the SigV4 signer and the event-stream parser
    import botocore  # noqa: F401
except ImportError:  # pragma: no cover - depends on the install
    raise ImportError("the bedrock provider needs botocore: pip install botocore") from None

from unigate.canonical.types import JSON
from unigate.errors import UpstreamError
from unigate.providers.base import AdapterBase, Deployment, NativeBody, UpstreamRequest
from unigate.providers.bedrock import sign
from unigate.providers.bedrock.errors import http_error
from unigate.providers.bedrock.request import READS, build_converse
from unigate.providers.bedrock.response import parse_converse
from unigate.providers.bedrock.stream import ConverseStreamDecoder
from unigate.providers.options import BedrockOptions, options_as

__all__ = ["BedrockAdapter"]

#: the parts of a ConverseRequest that CountTokens takes (ConverseTokensRequest, service-2.json)
_COUNTED = ("messages", "system", "toolConfig", "additionalModelRequestFields")


class BedrockAdapter(AdapterBase):
    dialect: ClassVar[str] = "bedrock"
    passthrough: ClassVar[bool] = False
    reads: ClassVar[frozenset[str] | None] = READS
    stream_content_type: ClassVar[str] = "application/vnd.amazon.eventstream"

    def chat_request(self, body: JSON, dep: Deployment, *, stream: bool) -> UpstreamRequest:
        p = dep.provider
        mode = options_as(p.options, BedrockOptions).structured_output
        native, dropped = build_converse(body, p.id, dep.model, mode)
        data = orjson.dumps(native)
        url = sign.endpoint(dep, stream)
        headers = sign.auth_headers(dep, url, data, dict(p.headers))
        # A yarl URL rather than a str: see sign.wire_url (the transport hands it to aiohttp as is).
        return UpstreamRequest("POST", sign.wire_url(url), headers, data, dropped)

    def chat_response(self, data: bytes, dep: Deployment) -> JSON:
        return parse_converse(data, dep.model)

    def count_tokens_request(self, body: JSON, native: NativeBody, dep: Deployment) -> UpstreamRequest:
        """CountTokens (free) on the Converse translation of the request. Bedrock counts some
        models only (Claude models by their model id; not Nova, nor inference-profile ids): for
        the others it answers a ValidationException, which errors.py makes UpstreamCannotCount,
        and the surface answers its estimate instead."""
        p = dep.provider
        built, _ = build_converse(body, p.id, dep.model, options_as(p.options, BedrockOptions).structured_output)
        data = orjson.dumps({"input": {"converse": {k: built[k] for k in _COUNTED if k in built}}})
        url = sign.endpoint(dep, False, "count-tokens")
        headers = sign.auth_headers(dep, url, data, dict(p.headers))
        return UpstreamRequest("POST", sign.wire_url(url), headers, data)

    def count_tokens_response(self, data: bytes, dep: Deployment) -> JSON:
        obj = orjson.loads(data)
        n = obj.get("inputTokens") if isinstance(obj, dict) else None
        if type(n) is not int or n < 0:
            raise ValueError("inputTokens is not a count")
        return {"input_tokens": n}

    def chat_stream(self, body: JSON, dep: Deployment) -> ConverseStreamDecoder:
        return ConverseStreamDecoder(dep.model, dep.provider.id)

    def error(self, status: int, data: bytes, headers: Mapping[str, str], dep: Deployment) -> UpstreamError:
        return http_error(dep.provider.id, status, data, headers)
