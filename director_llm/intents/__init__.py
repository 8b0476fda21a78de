"""Intent classification: a user's message -> one of the application's flows.

``director.classify_intent(text)`` returns an ``IntentClassification``;
``director.stream_intent(text)`` yields ``StreamItem``s (partials and routing events).
The pieces: ``prompts`` (flows, prompt, output constraint), ``parsing`` (input hygiene,
robust answer parsing), ``classifier`` (the LLM path with repair and fallback),
``streaming`` (incremental parsing), ``builtin_flows`` (flows used when none are configured).

Importing this package is cheap (pydantic models only); LiteLLM is imported on first call.
"""

from director_llm.intents.models import (
    STREAM_ITEM_ADAPTER,
    CacheHitEvent,
    FallbackEvent,
    IntentClassification,
    IntentClassificationStream,
    Route,
    StreamItem,
    TierChosenEvent,
    UsageEvent,
)

__all__ = [
    "STREAM_ITEM_ADAPTER",
    "CacheHitEvent",
    "FallbackEvent",
    "IntentClassification",
    "IntentClassificationStream",
    "Route",
    "StreamItem",
    "TierChosenEvent",
    "UsageEvent",
]
