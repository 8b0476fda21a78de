"""Which deployments serve a request: strategies, complexity, and the request's plan."""

from director_llm.selection.strategies import (
    STRATEGIES,
    NothingAffordable,
    Selection,
    StrategyName,
    TierOption,
    seed_tier,
    select,
)

__all__ = ["STRATEGIES", "NothingAffordable", "Selection", "StrategyName", "TierOption", "seed_tier", "select"]
