"""``Route`` and ``Attempt``: how one request was served, the same type on every path.

A ``Route`` comes back with every answer: ``director.route_of(response)`` for
``acompletion``, ``StreamEnd.route`` for ``stream_response``, ``IntentClassification.route``
for ``classify_intent`` / ``stream_intent``. Errors carry the ``Attempt`` list of the
request (``ProviderError.attempts``). ``attempts`` lists every deployment the request went
through, in order: tried and failed, skipped (breaker open, over budget, at its rate limit),
escalated (the local tier was unsure), and the one that answered (``outcome == "ok"``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

__all__ = ["MAX_ROUTE_EXTRA_DEPTH", "OK", "SKIPPED", "Attempt", "Route"]

MAX_ROUTE_EXTRA_DEPTH = 8
"""Nesting of the extra fields other parts add to ``Route`` (their size is theirs to bound)."""

OK = "ok"
"""``Attempt.outcome`` of the deployment that answered."""
SKIPPED = "skipped"
"""``Attempt.outcome`` of a deployment passed over without a call (the message says why)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One deployment a request went through.

    ``outcome`` is ``ok``, ``skipped`` (no call was made: breaker open, over budget, at its
    limit), ``escalated`` (the local tier was not sure enough), ``InvalidAnswer`` (the reply
    could not be used) or the class of the error (``InternalServerError``, ``Timeout``...).
    ``message`` is redacted; ``status_code`` is the provider's HTTP status when there was one.
    """

    deployment: str
    outcome: str
    message: str = ""
    elapsed_s: float = 0.0
    status_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == OK

    @property
    def called(self) -> bool:
        """Whether a request reached (or was sent towards) the deployment."""
        return self.outcome not in (SKIPPED, "escalated")

    def __iter__(self) -> Iterator[Any]:
        # Backward compatibility: errors used to carry (deployment, error class, message) tuples.
        return iter((self.deployment, self.outcome, self.message))

    def __getitem__(self, index: int) -> Any:
        return (self.deployment, self.outcome, self.message)[index]


class Route(BaseModel):
    """How a request was served: which deployment and tier, why, at what cost and latency,
    and every attempt on the way. Extra keys given to it are kept (extensions)."""

    model_config = ConfigDict(extra="allow")

    deployment: str | None = None
    """Full deployment name (``openai/gpt-4o-mini``); None when a cache answered with no record."""
    model: str | None = None
    """Model name as the provider knows it (``gpt-4o-mini``)."""
    provider: str | None = None
    """Provider section that answered (``openai``, ``ollama``, ``local``...)."""
    tier: str | None = None
    """Tier of the deployment that answered (local, small, balanced, strong)."""
    group: str | None = None
    """The tier or deployment the request asked for first."""
    reason: str | None = None
    """Why that group was chosen first (strategy, cascade, pin) and what happened on the way."""
    strategy: str | None = None
    """The strategy that planned the request (cost, latency, quality, adaptive)."""
    cache: str | None = None
    """Cache layer that answered (memory, redis, disk), or None when a model did."""
    cost_usd: float = 0.0
    """USD spent on this request, summed over every call (failed attempts, repairs)."""
    reserved_cost_usd: float | None = None
    """Worst-case USD the budget held for the call that answered (None: nothing reserved)."""
    latency_ms: float = 0.0
    """Wall time of the whole request."""
    first_token_ms: float | None = None
    """Streams: time until the first text reached the caller."""
    prompt_tokens: int = 0
    """Input tokens summed over calls."""
    completion_tokens: int = 0
    """Output tokens summed over calls."""
    calls: int = 0
    """Upstream calls made (failed ones, repair rounds and the answer; 0 for a cache hit)."""
    attempts: list[Attempt] = Field(default_factory=list)
    """Every deployment the request went through, in order (see ``Attempt``)."""
    repaired: bool = False
    """Classification: the answer came from a repair round (the first reply was invalid)."""
    resumed: bool = False
    """Streams: the answer broke and was continued on another deployment (``resume=True``)."""

    @model_validator(mode="before")
    @classmethod
    def _legacy_attempt_count(cls, data: Any) -> Any:
        # Before the engine, ``attempts`` was a count (and ``tried`` a stored list): read such
        # data (old cache entries, old callers) as ``calls``.
        if isinstance(data, dict):
            if "tried" in data:  # derived from ``attempts``; never stored
                data = {k: v for k, v in data.items() if k != "tried"}
            if isinstance(data.get("attempts"), int):
                data = {**data, "calls": data.get("calls") or data["attempts"], "attempts": []}
        return data

    @model_validator(mode="after")
    def _bounded_extras(self) -> Route:
        if self.model_extra:
            from director_llm.bounds import check_json_bounds

            check_json_bounds(self.model_extra, max_depth=MAX_ROUTE_EXTRA_DEPTH, what="route")
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tried(self) -> list[str]:
        """Deployments called before the one that answered (failed or gave an unusable reply)."""
        return list(dict.fromkeys(a.deployment for a in self.attempts if a.called and not a.ok))

    @property
    def fallbacks(self) -> int:
        """Deployments called (not skipped) before the one that answered."""
        return sum(1 for a in self.attempts if a.called and not a.ok)

    @property
    def first_token_s(self) -> float:
        """Streams: seconds until the first text (``first_token_ms`` / 1000)."""
        return round((self.first_token_ms if self.first_token_ms is not None else self.latency_ms) / 1000, 4)

    @property
    def total_s(self) -> float:
        """Seconds for the whole request (``latency_ms`` / 1000)."""
        return round(self.latency_ms / 1000, 4)

    # Backward compatibility: ``response._hidden_params["director_route"]`` used to be a dict.
    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style read of a field (``route.get("cache")``), for code written for the old dict."""
        return getattr(self, key, default)
