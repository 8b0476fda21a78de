"""What a classification returns: ``IntentClassification`` and the typed stream items.

``stream_intent`` yields a tagged union (``StreamItem``), discriminated by ``type``::

    type="partial"      IntentClassificationStream   partial_flow, confidence, reasoning_steps,
                                                     entities, done (the last one: done=True
                                                     and ``result`` set, validated)
    type="cache_hit"    CacheHitEvent                layer ("memory", "redis", "disk", ...)
    type="tier_chosen"  TierChosenEvent              tier / group and why
    type="fallback"     FallbackEvent                from, to, error class and message
    type="usage"        UsageEvent                   tokens and cost of the whole classification

so a UI can ``match item.type`` (or ``isinstance``) and show routing decisions as they
happen. Every item is a pydantic model: ``item.model_dump_json()`` is its wire form and
``STREAM_ITEM_ADAPTER.validate_json`` reads it back.

Bounds. Entities, reasoning and the route's extra fields come from a model's answer or a
cache entry, neither of which is trusted, and a 300-deep ``entities`` object cannot even be
serialized. So the models *reject* values past the bounds below (``ValidationError``), and
``intents.parsing`` *prunes* a model's answer to fit them before building a result: a
result that exists can always be dumped to JSON, and a forged cache entry past the bounds
reads as invalid (a miss).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from director_llm.bounds import check_json_bounds
from director_llm.route import MAX_ROUTE_EXTRA_DEPTH, Attempt, Route

MAX_ENTITY_DEPTH = 6
"""Containers nested in ``entities``, the top object included (``{"a": {"b": 1}}`` is 2)."""
MAX_ENTITY_NODES = 256
"""Keys, items and scalars in ``entities`` altogether."""
MAX_ENTITY_STRING_CHARS = 1000
"""Characters of one string (or key) in ``entities``."""
MAX_REASONING_CHARS = 4000
"""Characters of ``reasoning`` (the parser keeps 600 of a model's text; notes add a few)."""
MAX_RAW_FLOW_CHARS = 200
"""Characters of ``raw_flow`` kept from what a model wrote."""


def _bounded_entities(value: dict[str, Any]) -> dict[str, Any]:
    check_json_bounds(
        value,
        max_depth=MAX_ENTITY_DEPTH,
        max_nodes=MAX_ENTITY_NODES,
        max_string_chars=MAX_ENTITY_STRING_CHARS,
        what="entities",
    )
    return value


Entities = Annotated[dict[str, Any], AfterValidator(_bounded_entities)]
"""``entities`` as the models accept them: JSON-like and within the ``MAX_ENTITY_*`` bounds."""


__all__ = [
    "MAX_ENTITY_DEPTH",
    "MAX_ENTITY_NODES",
    "MAX_ENTITY_STRING_CHARS",
    "MAX_RAW_FLOW_CHARS",
    "MAX_REASONING_CHARS",
    "MAX_ROUTE_EXTRA_DEPTH",
    "STREAM_ITEM_ADAPTER",
    "Attempt",
    "CacheHitEvent",
    "FallbackEvent",
    "IntentClassification",
    "IntentClassificationStream",
    "Route",
    "StreamItem",
    "TierChosenEvent",
    "UsageEvent",
    "check_json_bounds",
]


class IntentClassification(BaseModel):
    """The result of ``director.classify_intent``."""

    flow: str
    """Always one of the configured flows, or the fallback flow."""
    confidence: float = Field(ge=0.0, le=1.0)
    """The model's confidence, 0..1 (answers below ``confidence_threshold`` become the fallback)."""
    reasoning: str = Field(default="", max_length=MAX_REASONING_CHARS)
    """Short explanation from the model."""
    entities: Entities = Field(default_factory=dict)
    """Entities the model extracted (dates, names...), as it returned them (within the
    ``MAX_ENTITY_*`` bounds: the parser prunes deeper or larger values)."""
    route: Route = Field(default_factory=Route)
    """Which model/provider/tier/cache answered, cost, latency and attempts."""
    raw_flow: str | None = Field(default=None, max_length=MAX_RAW_FLOW_CHARS)
    """The flow name as the model wrote it, when it differs from ``flow`` (mapped or replaced)."""


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)


class IntentClassificationStream(_Event):
    """A partial classification; the last one has ``done=True`` and ``result`` set."""

    type: Literal["partial"] = "partial"
    partial_flow: str | None = None
    """Best guess so far, already mapped onto a configured flow (None until a flow name is complete)."""
    confidence: float | None = None
    """Confidence so far (None until the model wrote it)."""
    reasoning_steps: list[str] = Field(default_factory=list)
    """Reasoning received so far, split into sentences."""
    entities: Entities = Field(default_factory=dict)
    """Entities received so far."""
    done: bool = False
    """True on the final item, whose fields are validated."""
    result: IntentClassification | None = None
    """The full, validated classification (final item only)."""
    elapsed_ms: float = 0.0
    """Milliseconds since the stream was opened."""


class CacheHitEvent(_Event):
    """The classification came from a cache layer; no model is called."""

    type: Literal["cache_hit"] = "cache_hit"
    layer: str


class TierChosenEvent(_Event):
    """The group (tier or pinned deployment) asked first, and why."""

    type: Literal["tier_chosen"] = "tier_chosen"
    tier: str
    reason: str


class FallbackEvent(_Event):
    """A deployment failed or answered unusably; the next one in the chain is asked."""

    type: Literal["fallback"] = "fallback"
    from_deployment: str
    to: str | None
    """The deployment or group asked next (None when it is not known yet)."""
    error_class: str
    message: str = ""


class UsageEvent(_Event):
    """Tokens and cost of the whole classification (sent just before the final item)."""

    type: Literal["usage"] = "usage"
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    deployment: str | None = None


StreamItem = Annotated[
    IntentClassificationStream | CacheHitEvent | TierChosenEvent | FallbackEvent | UsageEvent,
    Field(discriminator="type"),
]
"""One item of ``director.stream_intent``: a partial result or a routing event."""

STREAM_ITEM_ADAPTER: TypeAdapter[Any] = TypeAdapter(StreamItem)
"""Validates/serialises a ``StreamItem`` (e.g. ``STREAM_ITEM_ADAPTER.validate_json(line)``)."""
