"""Strategies over (complexity, remaining budget, health): what each picks, as tables."""

import math

import pytest

from director_llm.complexity import Complexity
from director_llm.errors import InputError
from director_llm.selection import NothingAffordable, TierOption, seed_tier, select

# Prices shaped like the real models: a free local small tier, gpt-4o-mini, gpt-4o.
SMALL = TierOption("small", cost_usd=0.0)
BALANCED = TierOption("balanced", cost_usd=0.0006)
STRONG = TierOption("strong", cost_usd=0.0110)


def cx(level: str) -> Complexity:
    return Complexity({"simple": 0.1, "medium": 0.4, "complex": 0.8}[level], level, {})  # type: ignore[arg-type]


def opts(
    remaining: float = math.inf,
    *,
    unhealthy: tuple[str, ...] = (),
    too_small: tuple[str, ...] = (),
    p50: dict[str, float] | None = None,
) -> list[TierOption]:
    """The three tiers as the planner would see them with ``remaining`` USD left."""
    return [
        TierOption(
            o.tier,
            o.cost_usd,
            affordable=o.cost_usd <= remaining,
            healthy=o.tier not in unhealthy,
            fits=o.tier not in too_small,
            p50_ms=(p50 or {}).get(o.tier),
        )
        for o in (SMALL, BALANCED, STRONG)
    ]


# The seed's own table (design doc 2.1), verbatim: ollama -> small, gemini-flash -> balanced,
# openai-gpt4 -> strong. Boundaries are strict as written there.
SEED_TABLE = [
    ("simple", 0.005, "small"),
    ("simple", 0.0099, "small"),
    ("simple", 0.01, "balanced"),
    ("simple", 5.0, "balanced"),
    ("medium", 0.0, "small"),
    ("medium", 0.049, "small"),
    ("medium", 0.05, "balanced"),
    ("medium", 5.0, "balanced"),
    ("complex", 5.0, "strong"),
    ("complex", 0.11, "strong"),
    ("complex", 0.10, "balanced"),
    ("complex", 0.02, "balanced"),
]


@pytest.mark.parametrize(("level", "remaining", "tier"), SEED_TABLE)
def test_seed_table(level: str, remaining: float, tier: str) -> None:
    assert seed_tier(level, remaining) == tier  # type: ignore[arg-type]
    # and adaptive picks it when every tier is healthy and affordable
    assert select("adaptive", opts(), complexity=cx(level), remaining_usd=remaining).tier == tier


# (strategy, complexity, remaining USD, unhealthy tiers, expected first tier, reason contains)
CASES = [
    ("adaptive", "complex", math.inf, (), "strong", "-> strong"),
    ("adaptive", "complex", 0.005, (), "balanced", "-> balanced"),  # strong unaffordable anyway
    ("adaptive", "complex", 0.0003, (), "small", "over budget"),  # balanced unaffordable: move down
    ("adaptive", "complex", 1.0, ("strong",), "balanced", "unhealthy"),  # health: skip dead strong
    ("adaptive", "simple", 1.0, ("balanced",), "small", "unhealthy"),  # target balanced dead: move down
    ("cost", "complex", 1.0, (), "small", "cost"),
    ("cost", "simple", 1.0, ("small",), "balanced", "cost"),
    ("quality", "simple", 1.0, (), "strong", "quality"),
    ("quality", "simple", 0.005, (), "balanced", "over budget: strong"),
    ("quality", "simple", 0.0, (), "small", "over budget"),
    ("quality", "complex", 1.0, ("strong",), "balanced", "unhealthy"),
]


@pytest.mark.parametrize(("strategy", "level", "remaining", "unhealthy", "tier", "why"), CASES)
def test_strategy_table(
    strategy: str, level: str, remaining: float, unhealthy: tuple[str, ...], tier: str, why: str
) -> None:
    options = opts(remaining, unhealthy=unhealthy)
    sel = select(strategy, options, complexity=cx(level), remaining_usd=remaining)
    assert sel.tier == tier, sel
    assert why in sel.reason, sel.reason
    # the chain never contains an unaffordable tier, and unhealthy ones only as a last resort
    by_tier = {o.tier: o for o in options}
    assert all(by_tier[t].affordable for t in sel.chain)


def test_no_budget_and_free_tier_unhealthy_still_tries_the_free_tier() -> None:
    sel = select("adaptive", opts(0.0, unhealthy=("small",)), complexity=cx("simple"), remaining_usd=0.0)
    assert sel.chain == ("small",) and "every tier unhealthy" in sel.reason


def test_latency_prefers_lowest_observed_p50_then_unknown() -> None:
    sel = select("latency", opts(p50={"small": 900.0, "balanced": 120.0, "strong": 450.0}))
    assert sel.chain == ("balanced", "strong", "small")
    assert "120.0 ms" in sel.reason
    sel = select("latency", opts(p50={"strong": 50.0}))
    assert sel.chain[0] == "strong" and sel.chain[1:] == ("small", "balanced")  # unknown: cheapest first
    assert select("latency", opts(0.001, p50={"strong": 50.0})).tier == "small"  # strong unaffordable


def test_context_too_small_is_skipped_by_every_strategy() -> None:
    for strategy in ("cost", "adaptive", "latency"):
        sel = select(strategy, opts(too_small=("small",)), complexity=cx("simple"), remaining_usd=0.001)
        assert "small" not in sel.chain


def test_nothing_affordable_names_the_cheapest_option() -> None:
    priced = [TierOption("balanced", 0.0006, affordable=False), TierOption("strong", 0.011, affordable=False)]
    with pytest.raises(NothingAffordable) as info:
        select("adaptive", priced, complexity=cx("simple"), remaining_usd=0.0)
    assert info.value.cheapest is not None and info.value.cheapest.tier == "balanced"


def test_adaptive_chain_moves_down_before_up() -> None:
    sel = select("adaptive", opts(), complexity=cx("medium"), remaining_usd=1.0)
    assert sel.chain == ("balanced", "small", "strong")


def test_unknown_strategy_is_an_error() -> None:
    with pytest.raises(InputError, match="unknown strategy"):
        select("fastest", opts())
