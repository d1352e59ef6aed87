"""The OpenAI-canonical semantics every native dialect shares, one definition each.

    types.py     JSON, the one alias for a plain JSON object
    effort.py    reasoning_effort: the accepted values, the thinking budget per model family
                 (Claude on Anthropic and Bedrock, Gemini) and the one 400 for anything else
    tools.py     the reserved name of the forced-JSON tool and its refusal; tool-id rewrites
    turns.py     merging consecutive same-role turns, for dialects that need alternation
    limits.py    which of max_completion_tokens / max_tokens a request means
    upstream.py  an upstream error body's message and code; the Retry-After it asks for

Adapters (providers/*) import from here; nothing here imports a provider.
"""
