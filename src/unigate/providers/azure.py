"""Azure OpenAI: the OpenAI wire format at Azure's URLs.

Bodies and streams are OpenAI's, so everything but the URL is inherited from the OpenAI
dialect (bodies pass through, streams are relayed byte for byte). Azure's additions ride along
untouched: `prompt_filter_results` (the first stream chunk may carry only that, with
`choices: []`), `content_filter_results`, `finish_reason: "content_filter"`, and a prompt blocked
by the content filter as HTTP 400 with `error.code: "content_filter"`, which the inherited error
mapping keeps as a 400 with that code.

The model part of `azure/<name>` is the deployment name. Two URL styles
(learn.microsoft.com azure/ai-foundry/openai/api-version-lifecycle; openai-python
`lib/azure.py`):

- classic (default): `{base}/openai/deployments/{deployment}/{op}?api-version={version}`, where
  the version is `providers.<id>.options.api_version` in the config, defaulting to
  `DEFAULT_API_VERSION`, the last dated GA release of the inference API;
- `options.api_style: v1`: `{base}/openai/v1/{op}` with no api-version; the body's `model`
  names the deployment. A base URL that already ends in `/openai/v1` selects this style too.

`base` is the resource root (`AZURE_BASE_URL` / `AZURE_OPENAI_ENDPOINT`, e.g.
https://myres.openai.azure.com); a trailing `/openai` is tolerated.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote

from unigate.providers.base import Deployment
from unigate.providers.openai_compat import OpenAICompatAdapter
from unigate.providers.options import AzureOptions, options_as

#: The newest dated GA `api-version` of the Azure OpenAI inference API (later releases are
#: previews or the version-less v1 API). Override per provider with `options.api_version`.
DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIAdapter(OpenAICompatAdapter):
    dialect: ClassVar[str] = "azure"
    passthrough: ClassVar[bool] = True

    def url(self, dep: Deployment, path: str) -> str:
        base = dep.provider.base_url.rstrip("/")
        opts = options_as(dep.provider.options, AzureOptions)
        if base.endswith("/openai/v1"):
            return f"{base}/{path}"
        base = base.removesuffix("/openai")
        if opts.api_style == "v1":
            return f"{base}/openai/v1/{path}"
        version = opts.api_version or DEFAULT_API_VERSION
        return f"{base}/openai/deployments/{quote(dep.model, safe='')}/{path}?api-version={quote(version, safe='')}"
