"""director-llm: one config file -> a robust, cheap and fast LiteLLM Router for Director.

    from director_llm import Director
    async with Director.from_file("configs/director.toml") as director:
        result = await director.classify_intent("quero criar uma tarefa para amanhã")

Importing this package is cheap: LiteLLM (seconds to import), redis, numpy and rich are
loaded only when something needs them. Names are resolved lazily (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "BudgetExceededError": "director_llm.errors",
    "CacheError": "director_llm.errors",
    "ClassificationError": "director_llm.errors",
    "ConfigError": "director_llm.errors",
    "DeploymentInfo": "director_llm.providers",
    "Director": "director_llm.director",
    "DirectorConfig": "director_llm.config.models",
    "DirectorError": "director_llm.errors",
    "InputError": "director_llm.errors",
    "IntentClassification": "director_llm.intents.models",
    "IntentClassificationStream": "director_llm.intents.models",
    "ProviderError": "director_llm.errors",
    "StreamEnd": "director_llm.streaming",
    "StreamInterruptedError": "director_llm.errors",
    "TextDelta": "director_llm.streaming",
    "load_config": "director_llm.config.loading",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from director_llm.config.loading import load_config
    from director_llm.config.models import DirectorConfig
    from director_llm.director import Director
    from director_llm.errors import (
        BudgetExceededError,
        CacheError,
        ClassificationError,
        ConfigError,
        DirectorError,
        InputError,
        ProviderError,
        StreamInterruptedError,
    )
    from director_llm.intents.models import IntentClassification, IntentClassificationStream
    from director_llm.providers import DeploymentInfo
    from director_llm.streaming import StreamEnd, TextDelta


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'director_llm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
