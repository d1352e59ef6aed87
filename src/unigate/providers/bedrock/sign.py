"""Where a Converse call goes and how it is authenticated.

Signing is botocore's own SigV4 (`botocore.auth.SigV4Auth`), never a hand-written signer: the
canonical-request rules (the already percent-encoded path is encoded *again*, so the `:` of
`…-v1:0` is `%3A` on the wire and `%253A` in the canonical request; host without a default
port; trimmed, sorted, lower-cased headers) are exactly what AWS checks, and botocore is the
reference implementation of them. See /work/shared/reference/providers.md §5.6.

With no secret key configured, the key is sent as a Bedrock API key (`Authorization: Bearer`),
the second auth scheme the service model lists (`smithy.api#httpBearerAuth`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode
from yarl import URL

from unigate.providers.base import Deployment
from unigate.providers.options import BedrockOptions, options_as

#: the SigV4 signing name from service-2.json `metadata.signingName` (not "bedrock-runtime").
SIGNING_NAME = "bedrock"
DEFAULT_REGION = "us-east-1"


def endpoint(dep: Deployment, stream: bool, op: str | None = None) -> str:
    """The request URL with the model id percent-encoded as one path segment, the way botocore's
    rest-json serializer renders `/model/{modelId}/converse` (`percent_encode`, safe `-._~`):
    `anthropic.claude-…-v1:0` -> `…-v1%3A0`, and an ARN's `/` -> `%2F`. `op` names another
    operation on the model (`count-tokens`)."""
    op = op or ("converse-stream" if stream else "converse")
    return f"{dep.provider.base_url}/model/{percent_encode(dep.model)}/{op}"


def region_of(dep: Deployment) -> str:
    return options_as(dep.provider.options, BedrockOptions).region or DEFAULT_REGION


def host_header(url: str) -> str:
    """The Host value both signed and sent: netloc without userinfo or a default port (botocore
    drops :443/:80 in the canonical host, and so must the header the upstream sees)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    default = {"https": ":443", "http": ":80"}.get(parts.scheme)
    if default and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return netloc


def auth_headers(dep: Deployment, url: str, body: bytes, base: dict[str, str]) -> dict[str, str]:
    """`base` plus Host and the auth headers for this exact method, URL and body."""
    p = dep.provider
    headers = {**base, "Host": host_header(url)}
    opts = options_as(p.options, BedrockOptions)
    if not opts.aws_secret_access_key:
        if p.api_key:
            headers["Authorization"] = f"Bearer {p.api_key}"
        return headers
    creds = Credentials(p.api_key or "", opts.aws_secret_access_key, opts.aws_session_token or None)
    req = AWSRequest(method="POST", url=url, headers=headers, data=body)
    SigV4Auth(creds, SIGNING_NAME, region_of(dep)).add_auth(req)
    return dict(req.headers.items())


def wire_url(url: str) -> URL:
    """The URL as the transport must send it. yarl would otherwise "normalise" `%3A` back to
    `:` (it is a legal path character), so the path on the wire would differ from the one
    that was signed; `encoded=True` keeps the bytes exactly as botocore sends them."""
    return URL(url, encoded=True)
