"""Tier selection by strategy (cost, latency, quality, adaptive).

This first version picks from the tiers that have usable deployments; the budget- and
complexity-aware selector refines ``choose_tier``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from director_llm.config.semantics import LLM_TIERS

if TYPE_CHECKING:
    from director_llm.director import Director


def choose_tier(director: Director, *, strategy: str) -> tuple[str, str]:
    """(group, reason) for a request that named no model or tier."""
    groups = director.groups()
    tiers = [t for t in LLM_TIERS if t in groups]
    if not tiers:
        from director_llm.errors import ProviderError

        raise ProviderError("no LLM tier has a usable deployment (see `director-llm check-config`)")
    if strategy == "cost":
        return tiers[0], "cost: cheapest tier"
    if strategy == "quality":
        return tiers[-1], "quality: strongest tier"
    if strategy == "latency":
        p50 = {}
        for t in tiers:
            lat = [director.metrics.for_deployment(n).p50_latency_ms for n in groups[t]]
            known = [v for v in lat if v is not None]
            p50[t] = min(known) if known else float("inf")
        best = min(tiers, key=lambda t: p50[t])
        return best, "latency: lowest observed p50" if p50[best] != float("inf") else "latency: no data yet"
    middle = "balanced" if "balanced" in tiers else tiers[len(tiers) // 2]
    return middle, "adaptive: balanced tier"
