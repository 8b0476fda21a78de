"""Which tier serves a request: strategies over (complexity, remaining budget, health).

``select`` is a pure function over one ``TierOption`` per tier (cheapest first) and returns
a ``Selection``: an ordered chain of tiers (the first is asked, the rest are the request's
fallbacks) and the reason. ``plan_route`` gathers the options for a real request (one ledger
read, one token count, the breaker's local view) and ``Director.acompletion`` passes the
chain to the Router as the request's ``fallbacks``. The budget hooks still check every
attempt, so a stale read can only make the selector optimistic, never overspend.

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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from director_llm.selection.complexity import Complexity, Level, estimate_complexity
from director_llm.config.semantics import LLM_TIERS
from director_llm.router.build import answered_by

if TYPE_CHECKING:
    from director_llm.director import Director

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


def select(strategy: str, options: Sequence[TierOption], *, complexity: Complexity | None = None,
           remaining_usd: float = math.inf) -> Selection:
    """Order the tiers of ``options`` for ``strategy``. Raises ``NothingAffordable``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
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
            why = ("not configured" if missing is None else "unhealthy" if not missing.healthy
                   else "over budget" if not missing.affordable else "context too small")
            reason += f" ({why}, using {order[0].tier})"
    rest = [o for o in servable if o not in order]
    chain = tuple(o.tier for o in order + rest)
    return Selection(chain=chain, reason=reason + note, strategy=strategy, complexity=complexity,
                     remaining_usd=None if math.isinf(remaining_usd) else remaining_usd, options=tuple(options))


# ------------------------------------------------------------------------------ live inputs


def observed_p50_ms(director: Director, names: Sequence[str]) -> float | None:
    """Lowest p50 latency among ``names``: the Router's own latency map when it tracks them
    (only latency-based routing fills it), else this process's attempt metrics."""
    best: float | None = None
    latency_map: Mapping[str, Any] = {}
    try:
        latency_map = director.router.health().latency or {}
    except Exception:  # noqa: BLE001 - an older/newer LiteLLM without the view
        latency_map = {}
    for name in names:
        p50 = director.metrics.for_deployment(name).p50_latency_ms if name in director.metrics.deployments else None
        samples = latency_map.get(name)
        if isinstance(samples, list) and samples:
            p50 = sorted(samples)[len(samples) // 2] * 1000
        if p50 is not None and (best is None or p50 < best):
            best = p50
    return best


async def plan_route(director: Director, messages: Sequence[Any], *, strategy: str,
                     request_kwargs: Mapping[str, Any] | None = None,
                     local_confidence: float | None = None) -> tuple[Selection, dict[str, Any]]:
    """Select tiers for a real request. Returns the selection and the metadata the budget
    hooks reuse (``prompt_tokens``, ``budget_remaining``) so they need no extra reads."""
    from director_llm.budget.ledger import BudgetBackendError
    from director_llm.budget.hooks import binding_remaining, count_prompt_tokens, fits

    budget = director.budget
    kwargs = dict(request_kwargs or {})
    kwargs["messages"] = messages
    groups = director.groups()
    infos = {t: [director.providers[n] for n in groups[t] if n in director.providers]
             for t in LLM_TIERS if t in groups}
    priced = [i for ds in infos.values() for i in ds if not budget.is_free(i)]
    token_model = priced[0].litellm_model if priced else "gpt-4o"
    windows = [i.context_window for ds in infos.values() for i in ds if i.context_window]
    if (priced and budget.limited) or (windows and _rough_tokens(messages) * 2 > min(windows)):
        prompt_tokens = count_prompt_tokens(token_model, messages)
    else:  # no budget to reserve against and far from any context limit: skip the tokenizer
        prompt_tokens = _rough_tokens(messages)
    remaining: dict[str, float] = {}
    store_down = False
    if priced and budget.limited:
        try:
            budget.round_trips += 1
            remaining = await budget.ledger.remaining()
        except BudgetBackendError:
            store_down = True
    options = []
    for tier, ds in infos.items():
        usable = [i for i in ds if not (i.context_window and prompt_tokens > i.context_window)]
        costs = []
        for i in usable:
            cost = budget.worst_case(i, kwargs, prompt_tokens)
            ok = cost == 0 or (not store_down and fits(remaining, i.provider, cost))
            costs.append((cost, ok))
        healthy = [i for i in ds if not director.breaker.is_open(i.name)]
        options.append(TierOption(
            tier=tier, cost_usd=min((c for c, _ in costs), default=0.0),
            affordable=any(ok for _, ok in costs), healthy=bool(healthy), fits=bool(usable),
            p50_ms=observed_p50_ms(director, [i.name for i in ds]) if strategy == "latency" else None))
    complexity = estimate_complexity(messages, local_confidence=local_confidence)
    left = 0.0 if store_down else binding_remaining(remaining)
    try:
        sel = select(strategy, options, complexity=complexity, remaining_usd=left)
    except NothingAffordable as exc:
        raise await _explain(director, exc.cheapest, infos, store_down) from None
    meta: dict[str, Any] = {"strategy": strategy, "complexity": complexity.score}
    if priced and budget.limited:
        meta.update(prompt_tokens=prompt_tokens, prompt_tokens_model=token_model)
    if not store_down and remaining:
        meta["budget_remaining"] = remaining
    return sel, meta


def _rough_tokens(messages: Sequence[Any]) -> int:
    """An upper-bound-ish token estimate (~3 characters per token) without a tokenizer."""
    chars = 0
    for m in messages:
        content = m.get("content") if isinstance(m, Mapping) else m
        chars += len(content) if isinstance(content, str) else len(str(content))
    return chars // 3 + 4 * len(messages)


async def _explain(director: Director, cheapest: TierOption | None, infos: Mapping[str, Sequence[Any]],
                   store_down: bool) -> Exception:
    from director_llm.budget.hooks import BudgetStoreDownError

    if store_down:
        return BudgetStoreDownError("the budget store (Redis) is unreachable and no zero-cost tier is "
                                    "configured, so no request can be served without risking overspend")
    if cheapest is None:
        from director_llm.errors import ProviderError

        return ProviderError("no tier can serve this request (prompt larger than every context window?)")
    provider = infos[cheapest.tier][0].provider if infos.get(cheapest.tier) else "-"
    return await director.budget.explain(cheapest.cost_usd, provider)


def choose_tier(director: Director, *, strategy: str) -> tuple[str, str]:
    """(group, reason) without a request at hand (no budget read, medium complexity).
    ``Director.acompletion`` uses ``plan_route``; this serves synchronous callers."""
    groups = director.groups()
    options = [TierOption(tier=t, healthy=not all(director.breaker.is_open(n) for n in groups[t]),
                          p50_ms=observed_p50_ms(director, groups[t]) if strategy == "latency" else None)
               for t in LLM_TIERS if t in groups]
    if not options:
        from director_llm.errors import ProviderError

        raise ProviderError("no LLM tier has a usable deployment (see `director-llm check-config`)")
    sel = select(strategy, options)
    return sel.chain[0], sel.reason


# ------------------------------------------------------------------------------ the route


def describe_route(director: Director, response: Any, *, reason: str, strategy: str | None,
                   started: float) -> dict[str, Any]:
    """The ``Route`` fields of a Router response (see ``intents.models.Route``): which tier and
    model answered, why, what was reserved and what it actually cost."""
    hidden = getattr(response, "_hidden_params", None) or {}
    name = answered_by(response)
    info = director.providers.get(name) if name else None
    usage = getattr(response, "usage", None)
    pt = int(getattr(usage, "prompt_tokens", 0) or 0)
    ct = int(getattr(usage, "completion_tokens", 0) or 0)
    headers = hidden.get("additional_headers") or {}
    attempts = 1 + _int(headers.get("x-litellm-attempted-fallbacks")) + _int(headers.get("x-litellm-attempted-retries"))
    return {
        "model": info.model if info else hidden.get("litellm_model_name"),
        "provider": info.provider if info else hidden.get("custom_llm_provider"),
        "deployment": name, "tier": info.tier if info else None,
        "group": headers.get("x-litellm-model-group"), "cache": None,
        "cost_usd": director.budget.actual_cost(info, pt, ct, hidden.get("response_cost")),
        "reserved_cost_usd": director.budget.reserved_for(hidden.get("litellm_call_id")),
        "latency_ms": round((time.perf_counter() - started) * 1000, 2), "attempts": attempts,
        "reason": reason, "strategy": strategy, "prompt_tokens": pt, "completion_tokens": ct,
    }


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
