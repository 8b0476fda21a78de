"""director-llm: one config file -> a robust, cheap and fast LLM layer for Director.

    from director_llm import Director
    async with Director.from_file("configs/director.toml") as director:
        result = await director.classify_intent("quero criar uma tarefa para amanhã")

Importing this package is cheap: LiteLLM (seconds to import), redis, numpy and rich are
loaded only when something needs them. Names are resolved lazily (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # the facade and its config
    "Director": "director_llm.director",
    "SyncDirector": "director_llm.sync",
    "DirectorConfig": "director_llm.config.models",
    "load_config": "director_llm.config.loading",
    "DeploymentInfo": "director_llm.providers",
    # how a request was served
    "Attempt": "director_llm.route",
    "Route": "director_llm.route",
    # streams
    "ResponseStream": "director_llm.engine.stream",
    "StreamChunk": "director_llm.engine.stream",
    "StreamEnd": "director_llm.engine.stream",
    "TextDelta": "director_llm.engine.stream",
    # classification and its stream items
    "CacheHitEvent": "director_llm.intents.models",
    "FallbackEvent": "director_llm.intents.models",
    "IntentClassification": "director_llm.intents.models",
    "IntentClassificationStream": "director_llm.intents.models",
    "StreamItem": "director_llm.intents.models",
    "TierChosenEvent": "director_llm.intents.models",
    "UsageEvent": "director_llm.intents.models",
    # reports
    "CacheStats": "director_llm.cache.stats",
    "SpendReport": "director_llm.budget.ledger",
    "UsageReport": "director_llm.budget.ledger",
    "WindowReport": "director_llm.budget.ledger",
    # errors
    "AttemptOverBudgetError": "director_llm.errors",
    "BudgetBackendError": "director_llm.errors",
    "BudgetExceededError": "director_llm.errors",
    "BudgetStoreDownError": "director_llm.errors",
    "CacheError": "director_llm.errors",
    "ClassificationError": "director_llm.errors",
    "ConfigError": "director_llm.errors",
    "DirectorClosedError": "director_llm.errors",
    "DirectorError": "director_llm.errors",
    "InputError": "director_llm.errors",
    "LocalModelError": "director_llm.errors",
    "ProviderError": "director_llm.errors",
    "RateLimitedError": "director_llm.errors",
    "ReservationClosedError": "director_llm.errors",
    "StreamInterruptedError": "director_llm.errors",
    "TrainingDataError": "director_llm.errors",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from director_llm.budget.ledger import SpendReport as SpendReport
    from director_llm.budget.ledger import UsageReport as UsageReport
    from director_llm.budget.ledger import WindowReport as WindowReport
    from director_llm.cache.stats import CacheStats as CacheStats
    from director_llm.config.loading import load_config as load_config
    from director_llm.config.models import DirectorConfig as DirectorConfig
    from director_llm.director import Director as Director
    from director_llm.engine.stream import ResponseStream as ResponseStream
    from director_llm.engine.stream import StreamChunk as StreamChunk
    from director_llm.engine.stream import StreamEnd as StreamEnd
    from director_llm.engine.stream import TextDelta as TextDelta
    from director_llm.errors import AttemptOverBudgetError as AttemptOverBudgetError
    from director_llm.errors import BudgetBackendError as BudgetBackendError
    from director_llm.errors import BudgetExceededError as BudgetExceededError
    from director_llm.errors import BudgetStoreDownError as BudgetStoreDownError
    from director_llm.errors import CacheError as CacheError
    from director_llm.errors import ClassificationError as ClassificationError
    from director_llm.errors import ConfigError as ConfigError
    from director_llm.errors import DirectorClosedError as DirectorClosedError
    from director_llm.errors import DirectorError as DirectorError
    from director_llm.errors import InputError as InputError
    from director_llm.errors import LocalModelError as LocalModelError
    from director_llm.errors import ProviderError as ProviderError
    from director_llm.errors import RateLimitedError as RateLimitedError
    from director_llm.errors import ReservationClosedError as ReservationClosedError
    from director_llm.errors import StreamInterruptedError as StreamInterruptedError
    from director_llm.errors import TrainingDataError as TrainingDataError
    from director_llm.intents.models import CacheHitEvent as CacheHitEvent
    from director_llm.intents.models import FallbackEvent as FallbackEvent
    from director_llm.intents.models import IntentClassification as IntentClassification
    from director_llm.intents.models import IntentClassificationStream as IntentClassificationStream
    from director_llm.intents.models import StreamItem as StreamItem
    from director_llm.intents.models import TierChosenEvent as TierChosenEvent
    from director_llm.intents.models import UsageEvent as UsageEvent
    from director_llm.providers import DeploymentInfo as DeploymentInfo
    from director_llm.route import Attempt as Attempt
    from director_llm.route import Route as Route
    from director_llm.sync import SyncDirector as SyncDirector


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'director_llm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
