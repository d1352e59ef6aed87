"""OpenAI-compatible providers as data: one row each (base URL, auth, env names, quirks).

Adding an OpenAI-compatible provider is one `Preset(...)` row below. A provider with its own
wire format is a dialect module instead (see `providers/registry.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Preset:
    id: str
    base_url: str
    title: str
    dialect: str = "openai"
    #: extra env names the vendor's own SDK reads, after `<ID>_API_KEY`.
    key_envs: tuple[str, ...] = ()
    base_url_envs: tuple[str, ...] = ()
    #: "bearer" (Authorization: Bearer <key>), "header:<name>" (<name>: <key>), "sigv4" (the
    #: dialect signs each request), "none"
    auth: str = "bearer"
    #: self-hosted servers run without a key; an empty key is fine for them.
    keyless: bool = False
    #: request fields renamed before sending (e.g. max_completion_tokens -> max_tokens).
    renames: tuple[tuple[str, str], ...] = ()
    #: request fields this upstream rejects; dropped and reported in x-unigate-dropped-params.
    drop: tuple[str, ...] = ()
    #: whether the upstream accepts stream_options.include_usage.
    stream_usage: bool = True
    #: tool-call ids must be this many alphanumerics (Mistral wants 9).
    tool_id_len: int | None = None
    extra_headers: tuple[tuple[str, str], ...] = field(default=())
    docs: str = ""

    @property
    def env_prefix(self) -> str:
        return self.id.upper().replace("-", "_")


_MAXTOK = (("max_completion_tokens", "max_tokens"),)

PRESETS: dict[str, Preset] = {
    p.id: p
    for p in [
        Preset("openai", "https://api.openai.com/v1", "OpenAI", docs="https://platform.openai.com/docs/api-reference"),
        Preset("groq", "https://api.groq.com/openai/v1", "Groq", renames=_MAXTOK, drop=("logit_bias", "logprobs", "top_logprobs")),
        Preset("together", "https://api.together.xyz/v1", "Together AI", renames=_MAXTOK),
        Preset("fireworks", "https://api.fireworks.ai/inference/v1", "Fireworks AI", key_envs=("FIREWORKS_AI_API_KEY",), renames=_MAXTOK),
        Preset("deepseek", "https://api.deepseek.com/v1", "DeepSeek", renames=_MAXTOK),
        Preset("xai", "https://api.x.ai/v1", "xAI"),
        Preset("mistral", "https://api.mistral.ai/v1", "Mistral AI", renames=_MAXTOK, drop=("logit_bias",), tool_id_len=9),
        Preset("perplexity", "https://api.perplexity.ai", "Perplexity", key_envs=("PERPLEXITYAI_API_KEY",), renames=_MAXTOK),
        Preset("openrouter", "https://openrouter.ai/api/v1", "OpenRouter"),
        Preset("deepinfra", "https://api.deepinfra.com/v1/openai", "DeepInfra", renames=_MAXTOK),
        Preset("cerebras", "https://api.cerebras.ai/v1", "Cerebras", renames=_MAXTOK, drop=("frequency_penalty", "presence_penalty", "logit_bias")),
        Preset("sambanova", "https://api.sambanova.ai/v1", "SambaNova", renames=_MAXTOK),
        Preset("nebius", "https://api.studio.nebius.ai/v1", "Nebius AI Studio", renames=_MAXTOK),
        Preset("hyperbolic", "https://api.hyperbolic.xyz/v1", "Hyperbolic", renames=_MAXTOK),
        Preset("novita", "https://api.novita.ai/v3/openai", "Novita AI", renames=_MAXTOK),
        Preset("moonshot", "https://api.moonshot.ai/v1", "Moonshot AI (Kimi)", renames=_MAXTOK),
        Preset("dashscope", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "Alibaba DashScope (Qwen)", renames=_MAXTOK),
        Preset("zhipu", "https://open.bigmodel.cn/api/paas/v4", "Zhipu AI (GLM)", key_envs=("ZHIPUAI_API_KEY",), renames=_MAXTOK),
        Preset("siliconflow", "https://api.siliconflow.cn/v1", "SiliconFlow", renames=_MAXTOK),
        Preset("nvidia", "https://integrate.api.nvidia.com/v1", "NVIDIA NIM", key_envs=("NVIDIA_NIM_API_KEY",), renames=_MAXTOK),
        Preset("huggingface", "https://router.huggingface.co/v1", "Hugging Face Inference Providers", key_envs=("HF_TOKEN",), renames=_MAXTOK),
        Preset("gemini_openai", "https://generativelanguage.googleapis.com/v1beta/openai", "Google Gemini (OpenAI endpoint)"),
        Preset("github", "https://models.inference.ai.azure.com", "GitHub Models", key_envs=("GITHUB_TOKEN",)),
        # Native dialects: one module each under providers/, registered in registry.DIALECTS.
        Preset("anthropic", "https://api.anthropic.com", "Anthropic", dialect="anthropic", auth="header:x-api-key",
               docs="https://docs.anthropic.com/en/api/messages"),
        Preset("gemini", "https://generativelanguage.googleapis.com", "Google Gemini", dialect="gemini",
               key_envs=("GOOGLE_API_KEY",), auth="header:x-goog-api-key",
               docs="https://ai.google.dev/api/generate-content"),
        Preset("bedrock", "https://bedrock-runtime.us-east-1.amazonaws.com", "AWS Bedrock", dialect="bedrock",
               key_envs=("AWS_ACCESS_KEY_ID",), auth="sigv4",
               docs="https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html"),
        Preset("cohere", "https://api.cohere.com", "Cohere", dialect="cohere", key_envs=("CO_API_KEY",),
               docs="https://docs.cohere.com/reference/chat"),
        Preset("azure", "https://example-resource.openai.azure.com", "Azure OpenAI", dialect="azure",
               key_envs=("AZURE_OPENAI_API_KEY",), base_url_envs=("AZURE_OPENAI_ENDPOINT",), auth="header:api-key",
               docs="https://learn.microsoft.com/en-us/azure/ai-foundry/openai/reference"),
        # The model embedded in the gateway: its deployments come from the config's `local:`
        # section (providers/local/models.py), not from `providers:` or the environment.
        Preset("local", "", "Embedded local model (SmolLM2, your GGUF files)", dialect="local", keyless=True),
        # Self-hosted servers: keyless by default, on their usual local ports.
        Preset("ollama", "http://localhost:11434/v1", "Ollama", keyless=True, key_envs=(), base_url_envs=("OLLAMA_HOST",), renames=_MAXTOK, drop=("logit_bias", "n", "user", "logprobs", "top_logprobs")),
        Preset("vllm", "http://localhost:8000/v1", "vLLM", keyless=True, renames=_MAXTOK),
        Preset("llamacpp", "http://127.0.0.1:8080/v1", "llama.cpp server", keyless=True, renames=_MAXTOK),
        Preset("lmstudio", "http://localhost:1234/v1", "LM Studio", keyless=True, renames=_MAXTOK),
        Preset("tgi", "http://localhost:8080/v1", "Hugging Face TGI", keyless=True, renames=_MAXTOK),
        Preset("localai", "http://localhost:8080/v1", "LocalAI", keyless=True, renames=_MAXTOK),
    ]
}
