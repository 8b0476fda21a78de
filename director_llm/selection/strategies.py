"""Which tier serves a request: strategies over (complexity, remaining budget, health).

``select`` is a pure function over one ``TierOption`` per tier (cheapest first) and returns
a ``Selection``: an ordered chain of tiers (the first is asked, the rest are the request's
fallbacks) and the reason. ``selection.planner`` gathers the options for a real request
(one ledger read, the breaker's local view, observed latencies) and turns the chain into
the deployments the engine tries; each attempt's reservation still checks the budget, so a
stale read can only make the selector optimistic, never overspend.

=========  ==============================================================================
strategy   first tier
=========  ==============================================================================
cost       cheapest tier that can serve (healthy, fits the context, affordable)
latency    lowest observed p50 latency (this process's attempts); unknown counts last
quality    strongest affordable tier
adaptive   the seed's complexity x remaining-budget table (``seed_tier``), moved down to the
           nearest affordable tier, skipping tiers whose deployments are all unhealthy
=========  ==============================================================================

Every strategy drops unaffordable tiers (zero-cost tiers are always affordable) and puts
unhealthy tiers last only when no healthy tier is left. Nothing affordable raises
``BudgetExceededError`` naming the window, limit, spend and reset time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from director_llm.config.semantics import LLM_TIERS
from director_llm.errors import InputError
from director_llm.selection.complexity import Complexity, Level

StrategyName = Literal["cost", "latency", "quality", "adaptive"]
STRATEGIES: tuple[str, ...] = ("cost", "latency", "quality", "adaptive")

# The seed's table (design doc, "Cost-Aware Selection"), remaining budget of the hour in USD.
SEED_SIMPLE_LOCAL_BELOW = 0.01  # simple and less than this left -> small (local) model
SEED_MEDIUM_LOCAL_BELOW = 0.05  # medium and less than this left -> small (local) model
SEED_COMPLEX_STRONG_ABOVE = 0.10  # complex and more than this left -> strongest model
# everything else -> the balanced ("gemini-flash") tier


@dataclass(frozen=True, slots=True)
class TierOption:
    """What the selector knows about one tier for this request."""

    tier: str
    cost_usd: float = 0.0
    """Worst-case cost of the request on the tier's cheapest usable deployment."""
    affordable: bool = True
    healthy: bool = True
    """False when every deployment's breaker is open (or the Router cooled them all down)."""
    fits: bool = True
    """False when the prompt exceeds every deployment's context window."""
    p50_ms: float | None = None


@dataclass(frozen=True)
class Selection:
    """The tiers to try in order and why the first was chosen."""

    chain: tuple[str, ...]
    reason: str
    strategy: str
    complexity: Complexity | None = None
    remaining_usd: float | None = None
    options: tuple[TierOption, ...] = field(default=(), repr=False)

    @property
    def tier(self) -> str:
        return self.chain[0]


class NothingAffordable(Exception):
    """Internal: every tier that could serve is over budget (``plan_route`` explains)."""

    def __init__(self, cheapest: TierOption | None) -> None:
        self.cheapest = cheapest
        super().__init__("no affordable tier")


def seed_tier(level: Level, remaining_usd: float) -> str:
    """The seed's table: small / balanced / strong for a complexity level and the USD left."""
    if level == "simple" and remaining_usd < SEED_SIMPLE_LOCAL_BELOW:
        return "small"
    if level == "medium" and remaining_usd < SEED_MEDIUM_LOCAL_BELOW:
        return "small"
    if level == "complex" and remaining_usd > SEED_COMPLEX_STRONG_ABOVE:
        return "strong"
    return "balanced"


def _rank(tier: str) -> int:
    return LLM_TIERS.index(tier) if tier in LLM_TIERS else -1


def select(
    strategy: str,
    options: Sequence[TierOption],
    *,
    complexity: Complexity | None = None,
    remaining_usd: float = math.inf,
) -> Selection:
    """Order the tiers of ``options`` for ``strategy``. Raises ``NothingAffordable``."""
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    servable = [o for o in options if o.fits and o.affordable]
    if not servable:
        priced = [o for o in options if o.fits] or list(options)
        raise NothingAffordable(min(priced, key=lambda o: o.cost_usd) if priced else None)
    healthy = [o for o in servable if o.healthy]
    pool, note = (healthy, "") if healthy else (servable, "; every tier unhealthy, trying anyway")
    skipped = [o.tier for o in servable if not o.healthy] if healthy else []
    if skipped:
        note = f"; skipped unhealthy {', '.join(skipped)}"
    over = [o.tier for o in options if o.fits and not o.affordable]
    if over:
        note += f"; over budget: {', '.join(over)}"
    left = "unlimited" if math.isinf(remaining_usd) else f"${remaining_usd:.4f} left"
    if strategy == "cost":
        order = sorted(pool, key=lambda o: (o.cost_usd, _rank(o.tier)))
        reason = f"cost: cheapest servable tier (${order[0].cost_usd:.6f} worst case)"
    elif strategy == "quality":
        order = sorted(pool, key=lambda o: -_rank(o.tier))
        reason = "quality: strongest affordable tier"
    elif strategy == "latency":
        order = sorted(pool, key=lambda o: (o.p50_ms is None, o.p50_ms or 0.0, o.cost_usd))
        p50 = order[0].p50_ms
        reason = f"latency: lowest observed p50 ({p50:.1f} ms)" if p50 is not None else "latency: no data yet, cheapest"
    else:
        level = complexity.level if complexity is not None else "medium"
        target = seed_tier(level, remaining_usd)
        t = _rank(target)
        # The target, then weaker tiers strongest first (budget moves down), then stronger ones.
        order = sorted(pool, key=lambda o: (0, t - _rank(o.tier)) if _rank(o.tier) <= t else (1, _rank(o.tier)))
        what = f"{complexity} request" if complexity is not None else "request"
        reason = f"adaptive: {what}, {left} -> {target}"
        if order[0].tier != target:
            missing = next((o for o in options if o.tier == target), None)
            why = (
                "not configured"
                if missing is None
                else "unhealthy"
                if not missing.healthy
                else "over budget"
                if not missing.affordable
                else "context too small"
            )
            reason += f" ({why}, using {order[0].tier})"
    rest = [o for o in servable if o not in order]
    chain = tuple(o.tier for o in order + rest)
    return Selection(
        chain=chain,
        reason=reason + note,
        strategy=strategy,
        complexity=complexity,
        remaining_usd=None if math.isinf(remaining_usd) else remaining_usd,
        options=tuple(options),
    )
