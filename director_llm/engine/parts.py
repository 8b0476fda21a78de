"""The parts a request needs, bundled once per Director and handed to the engine's loops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from director_llm.observability.observer import NOOP_OBSERVER, Observer

if TYPE_CHECKING:
    from director_llm.budget.guard import BudgetGuard
    from director_llm.config.models import LLMConfig
    from director_llm.observability import Metrics
    from director_llm.resilience.breaker import CircuitBreaker
    from director_llm.resilience.keys import KeyPools
    from director_llm.resilience.rate_limits import RateLimiter
    from director_llm.router.dispatch import Dispatcher
    from director_llm.selection.planner import Planner

__all__ = ["Parts"]


@dataclass(frozen=True, slots=True)
class Parts:
    """Planner, dispatcher, budget guard, breaker, metrics, the ``[llm]`` settings, the
    observer every request reports to (``observability.observer``), the rate limiter
    (``resilience.rate_limits``; None: no limits) and the API key pools (``resilience.keys``;
    None: each deployment's key is read from the environment)."""

    planner: Planner
    dispatcher: Dispatcher
    budget: BudgetGuard
    breaker: CircuitBreaker
    metrics: Metrics
    llm: LLMConfig
    observer: Observer = NOOP_OBSERVER
    limiter: RateLimiter | None = None
    keys: KeyPools | None = None
