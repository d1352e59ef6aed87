"""The model catalog (context windows, capabilities, prices) and request capability checks.

    from unigate import catalog
    info = catalog.lookup("openai", "gpt-4o-mini")      # ModelInfo | None
    catalog.models_for(["openai", "groq"])               # list[ModelInfo]
    catalog.check_capabilities(body, info, "chat")       # raises UnsupportedFeature (400)
"""

from unigate.catalog.models import (
    CAPABILITIES,
    GP_PROVIDERS,
    Catalog,
    ModelInfo,
    all_models,
    check_capabilities,
    get_catalog,
    lookup,
    models_for,
)

__all__ = [
    "CAPABILITIES",
    "GP_PROVIDERS",
    "Catalog",
    "ModelInfo",
    "all_models",
    "check_capabilities",
    "get_catalog",
    "lookup",
    "models_for",
]
