"""Config: file -> text -> dict -> validated, frozen ``DirectorConfig``."""

from director_llm.config.loading import load_config, parse_config_text
from director_llm.config.models import (
    TIERS,
    CachingConfig,
    CircuitBreakerConfig,
    DirectorConfig,
    IntentsConfig,
    LLMConfig,
    ModelOverride,
    ObservabilityConfig,
    ProviderConfig,
    ServeConfig,
)

__all__ = [
    "TIERS",
    "CachingConfig",
    "CircuitBreakerConfig",
    "DirectorConfig",
    "IntentsConfig",
    "LLMConfig",
    "ModelOverride",
    "ObservabilityConfig",
    "ProviderConfig",
    "ServeConfig",
    "load_config",
    "parse_config_text",
]
